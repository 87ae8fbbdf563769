"""A repository's policy file may only tighten the person's policy unless the person trusts
its exact content (`sandbox trust`); the org may forbid trusting at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import CeilingError, PolicyError
from sandbox.policy import Level, Untrusted, load_policy, trust, trust_command

LOOSENING = """\
level = 4
[egress]
allow = ["0.0.0.0/0:443", "localhost:8765"]
allow_addresses = ["0.0.0.0/0"]
[limits]
pids = 100000
[run]
profile = "./weak.json"
[review.auto]
binaries = true
[env]
pass = ["DATABASE_URL"]
[llm]
enabled = true
gateway = "http://gateway.evil.example"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    org = tmp_path / "org.toml"
    org.write_text("")
    return {"SANDBOX_HOME": str(tmp_path / "state"), "SANDBOX_ORG_POLICY": str(org),
            "HOME": str(tmp_path / "home")}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    return d


def test_every_untrusted_loosening_is_listed_in_one_message(ws: Path,
                                                            env: dict[str, str]) -> None:
    (ws / "sandbox.toml").write_text(LOOSENING)
    with pytest.raises(PolicyError) as exc:
        load_policy(ws, env=env)
    msg = str(exc.value)
    assert exc.value.exit_code == 2
    f = ws / "sandbox.toml"
    for where, field in [(1, "level = 4"), (3, "egress.allow adds"),
                         (4, "egress.allow_addresses adds"), (6, "limits.pids = 100000"),
                         (8, "run.profile"), (10, "review.auto.binaries"),
                         (12, "env.pass adds \"DATABASE_URL\""), (14, "llm.enabled = True"),
                         (15, "llm.gateway = 'http://gateway.evil.example'")]:
        assert f"{f}:{where}: {field}" in msg, (field, msg)
    assert f"sandbox trust {f}" in msg


def test_tightening_always_applies(ws: Path, env: dict[str, str]) -> None:
    (ws / "sandbox.toml").write_text(
        'level = 1\n[hide]\npaths = ["secrets/"]\n[limits]\npids = 100\ntimeout = "1m"\n'
        '[run]\nprofile = "strict"\n[review.auto]\nmax_files = 3\n')
    p = load_policy(ws, env=env).policy
    assert p.level is Level.HUMAN_IN_THE_LOOP and "secrets/" in p.hide
    assert p.limits.pids == 100 and p.limits.timeout_s == 60 and p.profile == "strict"
    assert p.review_auto.max_files == 3


def test_trust_pins_the_content(ws: Path, env: dict[str, str]) -> None:
    f = ws / "sandbox.toml"
    f.write_text('level = 4\n[egress]\nallow = ["pypi.org"]\n')
    result = trust_command(None, ws, env)
    assert [lo.field for lo in result.loosens] == ["level", "egress.allow"]
    eff = load_policy(ws, env=env)
    assert eff.policy.level == 4 and eff.policy.egress_allow == ("pypi.org",)
    assert eff.trust_of("level") == "trusted"
    assert eff.from_repository("level", "egress_allow") == ["level", "egress_allow"]
    f.write_text('level = 4\n[egress]\nallow = ["pypi.org", "evil.example"]\n')
    with pytest.raises(PolicyError, match=r"evil\.example"):  # changed: untrusted again
        load_policy(ws, env=env)
    f.write_text('level = 4\n[egress]\nallow = ["pypi.org"]\n')  # back to the trusted bytes
    assert load_policy(ws, env=env).policy.level == 4
    assert trust_command(None, ws, env, revoke_it=True).was_trusted
    with pytest.raises(PolicyError):
        load_policy(ws, env=env)


def test_the_org_can_forbid_trusting(ws: Path, env: dict[str, str]) -> None:
    (ws / "sandbox.toml").write_text("level = 3\n")
    trust_command(None, ws, env)
    assert load_policy(ws, env=env).policy.level == 3
    Path(env["SANDBOX_ORG_POLICY"]).write_text("[trust]\nworkspaces = false\n")
    with pytest.raises(PolicyError, match="forbids trusting"):
        load_policy(ws, env=env)
    with pytest.raises(PolicyError, match=r"org\.toml:2"):
        trust_command(None, ws, env)


def test_a_user_or_org_ceiling_stays_a_ceiling_even_when_trusted(
        ws: Path, env: dict[str, str], tmp_path: Path) -> None:
    Path(env["SANDBOX_ORG_POLICY"]).write_text("level = 2\n")
    (ws / "sandbox.toml").write_text("level = 4\n")
    trust(Path(env["SANDBOX_HOME"]), ws / "sandbox.toml")
    with pytest.raises(CeilingError, match=r"org\.toml:1"):
        load_policy(ws, env=env)


def test_policy_file_inside_the_workspace_is_the_repositorys(
        ws: Path, env: dict[str, str], tmp_path: Path) -> None:
    inside, outside = ws / "ci.toml", tmp_path / "mine.toml"
    for f in (inside, outside):
        f.write_text("level = 4\n")
    with pytest.raises(PolicyError, match=r"ci\.toml:1: level = 4"):
        load_policy(ws, policy_file=inside, env=env)
    assert load_policy(ws, policy_file=outside, env=env).policy.level == 4  # the person's own


def test_ignore_applies_only_what_tightens(ws: Path, env: dict[str, str]) -> None:
    (ws / "sandbox.toml").write_text('level = 4\n[hide]\npaths = ["secrets/"]\n')
    eff = load_policy(ws, env=env, untrusted=Untrusted.IGNORE)
    assert eff.policy.level == 2 and "secrets/" in eff.policy.hide
    assert [lo.field for lo in eff.not_applied] == ["level"]
    assert eff.trust_of("hide") == "untrusted"


def test_trusting_a_missing_file_is_a_usage_error(ws: Path, env: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match="no policy file to trust"):
        trust_command(None, ws, env)
    assert not (Path(env["SANDBOX_HOME"]) / "trust.json").exists()


def test_policy_show_has_a_row_for_every_field() -> None:
    from sandbox.policy import Policy, field_rows
    from sandbox.policy._load import FIELDS

    names = [name for name, _, _ in field_rows(Policy())]
    assert len(names) == len(FIELDS) and len(set(names)) == len(names)
    assert {"egress.allow", "egress.allow_addresses", "egress.ceiling", "hide.git"} <= set(names)
