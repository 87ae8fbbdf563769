"""Egress says the real fix, and level 1 offers unknown hosts to the person.

Found by a new user: `--allow localhost:PORT` was refused with "not named by policy" (the fix,
`[egress] allow_addresses`, was named nowhere); at level 1 with a terminal, a host was offered
to the person only when some --allow had started the proxy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pexpect

from tests.conftest import SANDBOX_BIN, Cli, require
from tests.support.egress_env import origin


def test_an_allowed_name_on_loopback_names_allow_addresses(cli: Cli, workspace: Path) -> None:
    require(shutil.which("curl") is not None, "curl")
    with origin("HOST-SERVICE") as port:
        r = cli("run", "-C", str(workspace), "--allow", f"localhost:{port}", "--",
                "sh", "-c", f"curl -s -m 5 http://localhost:{port}/; echo; echo RAN")
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "RAN" in out and "HOST-SERVICE" not in out, out  # asked, refused
    assert "[egress] allow_addresses does not name" in out, out  # the proxy's 403 body
    assert "`[egress] allow_addresses` names them" in err and "sandbox trust" in err, err


def test_level1_offers_an_unknown_host_without_any_allow(cli: Cli, workspace: Path) -> None:
    require(shutil.which("curl") is not None, "curl")
    env = cli.env({"PAGER": "cat", "TERM": "xterm", "NO_COLOR": "1"})
    child = pexpect.spawn(str(SANDBOX_BIN), ["run", "-C", str(workspace), "--level", "1", "--",
                                             "curl", "-s", "-m", "10", "http://offered.test/"],
                          env=env, timeout=60, dimensions=(24, 80))
    child.expect(r"Run it\? \[y/N\]")
    child.sendline("y")
    child.expect(r"wants to reach offered\.test:80, which is not in the allowlist")
    child.sendline("d")
    child.expect(pexpect.EOF)
    child.close()
    records = cli("audit", "--json", check=True).stdout.decode()
    assert "offered.test" in records and "denied-by-user" in records
