"""Policy layering: later layers only tighten; provenance; malformed input names file+line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import CeilingError, PolicyError
from sandbox.policy import Layer, Level, load_policy, merge, read_layer


def _layer(tmp_path: Path, name: str, kind: str, text: str) -> Layer:
    p = tmp_path / name
    p.write_text(text)
    return read_layer(kind, p)


def test_defaults_without_layers() -> None:
    eff = merge([])
    assert eff.policy.level is Level.HUMAN_ON_THE_LOOP
    assert ".env*" in eff.policy.hide and ".git/hooks/**" in eff.policy.protected
    assert eff.source_of("level") == "built-in"


def test_first_setter_chooses_freely_later_only_tighten(tmp_path: Path) -> None:
    org = _layer(tmp_path, "org.toml", "org", "level = 3\n[limits]\nmemory = '2g'\n")
    ws = _layer(tmp_path, "ws.toml", "workspace", "level = 2\n[limits]\nmemory = '1g'\n")
    eff = merge([org, ws])
    assert eff.policy.level == 2
    assert eff.policy.limits.memory_bytes == 1 << 30
    assert eff.source_of("limits.memory_bytes") == f"{tmp_path / 'ws.toml'}:3"
    assert eff.source_of("level") == f"{tmp_path / 'ws.toml'}:1"


def test_flag_loosening_org_ceiling_is_an_error_naming_it(tmp_path: Path) -> None:
    org = _layer(tmp_path, "org.toml", "org", "level = 2\n")
    with pytest.raises(CeilingError) as exc:
        merge([org, Layer("flags", "--level", {"level": 4})])
    assert exc.value.exit_code == 2
    assert "--level" in str(exc.value) and "org.toml:1" in str(exc.value)


@pytest.mark.parametrize(("text", "flag"), [
    ("[limits]\ntimeout = 60\n", {"limits": {"timeout": 120.0}}),
    ("[review.auto]\nbinaries = false\n", {"review": {"auto": {"binaries": True}}}),
    ("[run]\nprofile = 'strict'\n", {"run": {"profile": "default"}}),
])
def test_each_kind_of_loosening_is_refused(tmp_path: Path, text: str, flag: dict[str, object]) -> None:
    org = _layer(tmp_path, "org.toml", "org", text)
    with pytest.raises(CeilingError):
        merge([org, Layer("flags", "--x", flag)])


def test_lists_only_grow(tmp_path: Path) -> None:
    ws = _layer(tmp_path, "ws.toml", "workspace", "[hide]\npaths = ['secrets/']\n")
    eff = merge([ws])
    assert "secrets/" in eff.policy.hide and ".env*" in eff.policy.hide  # defaults kept


def test_egress_ceiling(tmp_path: Path) -> None:
    org = _layer(tmp_path, "org.toml", "org", "[egress]\nceiling = ['*.example.com', 'pypi.org:443']\n")
    ok = merge([org, Layer("flags", "--allow", {"egress": {"allow": ["api.example.com", "pypi.org:443"]}})])
    assert ok.policy.egress_allow == ("api.example.com", "pypi.org:443")
    with pytest.raises(CeilingError) as exc:
        merge([org, Layer("flags", "--allow", {"egress": {"allow": ["evil.test"]}})])
    assert "ceiling" in str(exc.value)


def test_only_org_sets_ceiling(tmp_path: Path) -> None:
    ws = _layer(tmp_path, "ws.toml", "workspace", "[egress]\nceiling = ['*']\n")
    with pytest.raises(PolicyError, match="only be set by the org"):
        merge([ws])


def test_unknown_field_names_file_and_line(tmp_path: Path) -> None:
    ws = _layer(tmp_path, "ws.toml", "workspace", "level = 2\n\n[limits]\nmemroy = '1g'\n")
    with pytest.raises(PolicyError) as exc:
        merge([ws])
    assert f"{tmp_path / 'ws.toml'}:4" in str(exc.value) and "memroy" in str(exc.value)


def test_bad_value_names_field(tmp_path: Path) -> None:
    ws = _layer(tmp_path, "ws.toml", "workspace", "[limits]\npids = -3\n")
    with pytest.raises(PolicyError, match=r"ws.toml:2: field 'limits.pids'"):
        merge([ws])


def test_malformed_toml_names_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"line 2"):
        _layer(tmp_path, "ws.toml", "workspace", "level = 2\n[limits\n")


def test_secret_env_pass_refused(tmp_path: Path) -> None:
    ws = _layer(tmp_path, "ws.toml", "workspace", "[env]\npass = ['ANTHROPIC_API_KEY']\n")
    with pytest.raises(PolicyError, match="secret"):
        merge([ws])


def test_load_policy_reads_workspace_and_org(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text("[limits]\npids = 100\n")
    org = tmp_path / "org.toml"
    org.write_text("[limits]\npids = 200\n")
    eff = load_policy(tmp_path, env={"SANDBOX_ORG_POLICY": str(org), "HOME": str(tmp_path)})
    assert eff.policy.limits.pids == 100
    assert eff.layers == (str(org), str(tmp_path / "sandbox.toml"))


def test_digest_changes_with_policy(tmp_path: Path) -> None:
    a = merge([]).policy.digest()
    b = merge([Layer("flags", "--level", {"level": 1})]).policy.digest()
    assert a != b and a.startswith("sha256:")
