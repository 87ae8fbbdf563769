"""Hidden files a repository tracks (.env, config/server.key) look untouched to git inside the
sandbox, stay unreadable, and no git work inside can delete, replace or re-add them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, give

pytestmark = pytest.mark.parametrize("sbx", ["root", "user"], indirect=True)

GIT = ["git", "-c", "user.email=agent@example.com", "-c", "user.name=agent", "-c", "safe.directory=*"]


def _repo(cli: Cli, ws: Path) -> None:
    (ws / ".env").write_text("SECRET=1\n")
    (ws / "config").mkdir()
    (ws / "config" / "server.key").write_text("-----BEGIN KEY-----\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run([*GIT, "-C", str(ws), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(ws), "commit", "-qm", "init"], check=True)
    give(cli, ws)


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), *args],
                          capture_output=True, check=True).stdout.decode()


def test_agent_commits_keep_hidden_tracked_files(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    _repo(cli, ws)
    r = cli("run", "-C", str(ws), "--session", "g", "--", "sh", "-c",
            "echo STATUS; git status --porcelain; echo END; cat .env || echo UNREADABLE; "
            "echo more >> README.md; git add -A && "
            + " ".join(GIT) + " commit -qm 'agent work' && echo COMMITTED", check=True)
    out = r.stdout.decode()
    assert "STATUS\nEND\n" in out, out  # nothing shows as deleted (or modified) inside
    assert "UNREADABLE" in out and "SECRET" not in out and "COMMITTED" in out
    cli("approve", "g", "--include-protected", check=True)
    assert _git(ws, "log", "-1", "--format=%s") == "agent work\n"
    touched = _git(ws, "show", "--name-only", "--format=", "HEAD").split()
    assert touched == ["README.md"], touched
    tracked = _git(ws, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert ".env" in tracked and "config/server.key" in tracked
    assert _git(ws, "status", "--porcelain") == ""  # the person's index: no leftover marks
    assert "h " not in _git(ws, "ls-files", "-v")


def test_git_work_deleting_a_hidden_file_is_forbidden(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    _repo(cli, ws)
    head = _git(ws, "rev-parse", "HEAD")
    r = cli("run", "-C", str(ws), "--session", "h", "--", "sh", "-c",
            "git rm -q --cached .env config/server.key && " + " ".join(GIT)
            + " commit -qm 'drop secrets' && echo COMMITTED", check=True)
    assert b"COMMITTED" in r.stdout
    assert b"refused .git/refs/heads/" in r.stderr and b"hidden-tracked" in r.stderr
    cli("approve", "h", "--include-protected")
    assert _git(ws, "rev-parse", "HEAD") == head
    assert set(_git(ws, "ls-files").split()) >= {".env", "config/server.key"}
