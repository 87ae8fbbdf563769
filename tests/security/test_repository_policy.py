"""A repository cannot loosen the governance of the agent working in it.

The attack a new user found: with no org or user policy, a workspace `sandbox.toml` with
`level = 4`, egress to the host's loopback and `allow_addresses = ["0.0.0.0/0"]` made
`sandbox run -- sh -c 'echo x > auto.txt; curl http://localhost:PORT/'` commit automatically and
reach a service on the host's loopback, silently. Now the run stops (exit 2) before anything
runs, naming each field; once the person trusts that exact file, it applies and the run says
where its level and egress came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Cli, give, require
from tests.support.egress_env import origin


def test_a_repository_cannot_loosen_its_own_policy(sbx: tuple[Cli, Path]) -> None:
    require(shutil.which("curl") is not None, "curl")
    cli, ws = sbx
    with origin("HOST-LOOPBACK-SERVICE") as port:
        toml = ws / "sandbox.toml"
        toml.write_text(f'level = 4\n[egress]\nallow = ["0.0.0.0/0:443", "localhost:{port}"]\n'
                        f'allow_addresses = ["0.0.0.0/0"]\n[limits]\npids = 50000\n')
        give(cli, ws)
        attack = ("sh", "-c", f"echo x > auto.txt; curl -s -m 5 http://localhost:{port}/; "
                  "echo; echo ATTACK-RAN")
        r = cli("run", "-C", str(ws), "--", *attack)
        err = r.stderr.decode()
        assert r.returncode == 2, err
        assert b"ATTACK-RAN" not in r.stdout and b"HOST-LOOPBACK" not in r.stdout
        assert not (ws / "auto.txt").exists()
        for line, field in [(1, "level = 4"), (3, "egress.allow adds"),
                            (4, "egress.allow_addresses adds"), (6, "limits.pids = 50000")]:
            assert f"{toml}:{line}: {field}" in err, err
        assert f"sandbox trust {toml}" in err

        show = cli("policy", "show", "-C", str(ws), check=True).stdout.decode()
        assert 'egress.allow_addresses = []' in show  # every egress field, not applied
        assert f"egress.allow_addresses adds \"0.0.0.0/0\"    # {toml}:4 (untrusted)" in show

        # The person reviews the file and trusts it: now it is theirs, and the run says so.
        cli("trust", str(ws), check=True)
        show = cli("policy", "show", "-C", str(ws), check=True).stdout.decode()
        assert f'egress.allow_addresses = ["0.0.0.0/0"]    # {toml}:4 (repository file, ' \
               "trusted)" in show
        r = cli("run", "-C", str(ws), "--", *attack)
        assert r.returncode == 0 and b"ATTACK-RAN" in r.stdout, r.stderr
        first = r.stderr.decode().splitlines()[0]
        assert first.startswith(f"sandbox: policy from the repository: level from {toml}:1 "
                                "(trusted)"), first
        assert "egress.allow from" in first
        assert (ws / "auto.txt").exists()  # level 4, as the trusted file asks
