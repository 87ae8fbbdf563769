"""The .git/config rewrite the sandbox sees: credentials gone however git spells them, the
rest intact; the hide-list pathspecs used to look for hidden paths in the history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.fs._gitcreds import _pathspec, scrubbed_git_config, scrubbed_paths
from sandbox.policy import merge, read_layer
from tests.conftest import require


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    require(shutil.which("git") is not None, "git (scripts/setup.sh installs it)")
    (tmp_path / ".git").mkdir()
    return tmp_path


def _parsed(content: bytes, tmp_path: Path) -> str:
    f = tmp_path / "out.cfg"
    f.write_bytes(content)
    return subprocess.run(["git", "config", "--file", str(f), "--list"], check=True,
                          capture_output=True, text=True).stdout


def test_every_spelling_of_a_credential_is_removed(ws: Path, tmp_path: Path) -> None:
    (ws / ".git" / "config").write_text(
        '[core]\n\tbare = false\n\tquotepath\n'
        '[HTTP "https://example.com/"]\n\tExtraHeader = "AUTH: \\\n  basic SECRET1"\n'
        '[http]\n\textraheader = SECRET2\n\tsslVerify = true\n'
        '[Credential "https://example.com"]\n\thelper = store --file /x/SECRET3\n'
        '[remote "origin"]\n\turl = ssh://git:SECRET4@example.com/r.git\n'
        '\tpushurl = https://SECRET5@example.com/r.git\n'
        '[url "https://SECRET6@example.com/"]\n\tinsteadOf = ex:\n'
        '[include]\n\tpath = ~/SECRET7.inc\n\tpath = ../../SECRET8.inc\n\tpath = local.inc\n'
        '[includeIf "gitdir:/x/"]\n\tpath = /etc/SECRET9\n'
        '[branch "main"]\n\tremote = origin\n\tmerge = refs/heads/main\n')
    out = scrubbed_git_config(ws)
    assert out is not None
    listed = _parsed(out, tmp_path)
    assert "SECRET" not in listed, listed
    for kept in ("core.bare=false", "core.quotepath", "http.sslverify=true",
                 "remote.origin.url=ssh://example.com/r.git",
                 "remote.origin.pushurl=https://example.com/r.git",
                 "url.https://example.com/.insteadof=ex:", "include.path=local.inc",
                 "branch.main.merge=refs/heads/main"):
        assert kept in listed, (kept, listed)
    assert scrubbed_paths(ws) == (".git/config",)


def test_git_parses_a_config_once_per_content(ws: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run looks at .git/config twice (the view, then the changes) and a server runs
    many: the same bytes are parsed by git once; a changed file (same size) is parsed again."""
    import sandbox._git as git_mod

    calls: list[Path] = []
    real = git_mod.config_list

    def counting(path: Path, timeout: float = 10.0) -> bytes | None:
        calls.append(path)
        return real(path, timeout)

    monkeypatch.setattr(git_mod, "config_list", counting)
    cfg = ws / ".git" / "config"
    cfg.write_text('[remote "origin"]\n\turl = https://tok1@example.com/r.git\n')
    for _ in range(3):
        assert b"tok1" not in (scrubbed_git_config(ws) or b"tok1")
        assert scrubbed_paths(ws) == (".git/config",)
    assert len(calls) == 1
    cfg.write_text('[remote "origin"]\n\turl = https://tok2@example.com/r.git\n')
    out = scrubbed_git_config(ws)
    assert out is not None and b"tok" not in out and b"https://example.com/r.git" in out
    assert len(calls) == 2


def test_a_config_without_credentials_is_left_alone(ws: Path) -> None:
    (ws / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@github.com:o/r.git\n')
    assert scrubbed_git_config(ws) is None and scrubbed_paths(ws) == ()


def test_an_unparsable_config_gets_a_minimal_one(ws: Path) -> None:
    (ws / ".git" / "config").write_text('[http\n\textraheader = SECRET\n')
    out = scrubbed_git_config(ws)
    assert out is not None and b"SECRET" not in out and b"repositoryformatversion" in out


@pytest.mark.parametrize(("pattern", "spec"), [
    (".env*", ":(glob)**/.env*"), ("secrets/", ":(glob)**/secrets/**"),
    (".git/credentials", ":(glob).git/credentials"), ("a/b/", ":(glob)a/b/**"),
])
def test_hide_patterns_as_pathspecs(pattern: str, spec: str) -> None:
    assert _pathspec(pattern) == spec


def test_hide_git_adds_git_to_the_hide_list(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[hide]\ngit = true\n")
    eff = merge([read_layer("user", f)])
    assert eff.policy.hide_git and ".git/" in eff.policy.hide
    assert ".git-credentials" in merge([]).policy.hide  # on the default list


def test_the_history_warning_is_remembered_only_once_the_check_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `git log` that did not finish in time checked nothing: the next run checks again
    (it was marked done, so a repository with a secret in its history never warned)."""
    import os

    from sandbox._home import HomeLayout
    from sandbox._launch import git_history_note
    from sandbox.fs import _gitcreds
    from sandbox.policy import Policy

    git = shutil.which("git")
    require(git is not None, "git (scripts/setup.sh installs it)")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".env").write_text("TOKEN=1\n")
    ident = ["-c", "user.name=p", "-c", "user.email=p@example.com"]
    for args in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "secret"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    shim = tmp_path / "shim"
    shim.mkdir()
    hung = tmp_path / "log-was-asked"
    (shim / "git").write_text(  # `git log` hangs; every other git command is the real one
        f'#!/bin/sh\nfor a; do [ "$a" = log ] && touch {hung} && exec sleep 30; done\n'
        f'exec {git} "$@"\n')
    (shim / "git").chmod(0o755)
    layout = HomeLayout(tmp_path / "home").ensure()
    monkeypatch.setattr(_gitcreds, "HISTORY_TIMEOUT_S", 0.5, raising=False)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    assert git_history_note(layout, repo, Policy()) is None
    assert hung.exists()  # the check was tried, and timed out
    monkeypatch.undo()
    note = git_history_note(layout, repo, Policy())
    assert note is not None and ".env" in note  # checked now, and it warns
    assert git_history_note(layout, repo, Policy()) is None  # once per workspace
