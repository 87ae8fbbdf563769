"""No credential of the workspace's git is readable inside the sandbox, and git still works.

The attack a new user found: `git remote -v` inside printed the token of the remote URL, the
CI checkout's `http.<url>.extraheader` was readable in .git/config, so was `.git-credentials`,
and `git show HEAD~1:.env` printed a hidden file committed once, with no warning.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, give, require

SECRETS = ("ghp_REMOTETOKEN", "EXTRAHEADERSECRET", "HELPERSECRET", "STOREDCRED", "CREDFILE",
           "INSTEADOFTOKEN")


def git(ws: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(ws), "-c", "safe.directory=*", "-c", "user.email=a@b",
                          "-c", "user.name=n",
                          *args], check=True, capture_output=True, text=True)
    return out.stdout


@pytest.fixture
def repo(sbx: tuple[Cli, Path]) -> tuple[Cli, Path]:
    require(shutil.which("git") is not None, "git")
    cli, ws = sbx
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "README.md", "src")
    git(ws, "commit", "-qm", "one")
    git(ws, "remote", "add", "origin", "https://x-access-token:ghp_REMOTETOKEN@github.com/o/r.git")
    git(ws, "config", "http.https://github.com/.extraheader",
        "AUTHORIZATION: basic EXTRAHEADERSECRET")
    git(ws, "config", "credential.helper", "!f() { echo password=HELPERSECRET; }; f")
    git(ws, "config", "include.path", "/etc/sandbox-test-outside.inc")
    git(ws, "config", "url.https://INSTEADOFTOKEN@github.com/.insteadOf", "gh:")
    (ws / ".git-credentials").write_text("https://u:STOREDCRED@github.com\n")
    (ws / ".git" / "credentials").write_text("https://u:CREDFILE@github.com\n")
    give(cli, ws)
    return cli, ws


def test_git_credentials_are_not_readable_inside(repo: tuple[Cli, Path]) -> None:
    cli, ws = repo
    real_config = (ws / ".git" / "config").read_text()
    r = cli("run", "-C", str(ws), "--", "sh", "-c",
            "cat .git/config; git remote -v; git config --list; cat .git-credentials "
            ".git/credentials; grep -r -a -h -o 'SECRET\\|TOKEN\\|CRED' .git .git-credentials; "
            "git status --porcelain; git branch; git log --oneline; "
            "git -c user.email=a@b -c user.name=n commit -qm two --allow-empty && "
            "git log --oneline | wc -l; echo ATTACK-RAN")
    out = r.stdout.decode()
    assert r.returncode == 0 and "ATTACK-RAN" in out, r.stderr
    for secret in SECRETS:
        assert secret not in out, (secret, out)
    assert "origin\thttps://github.com/o/r.git (fetch)" in out  # git still works inside
    assert "* main" in out and out.split("ATTACK-RAN")[0].strip().endswith("2")
    assert (ws / ".git" / "config").read_text() == real_config  # the real file is untouched


def test_the_scrubbed_config_is_never_committed_back(repo: tuple[Cli, Path]) -> None:
    cli, ws = repo
    real_config = (ws / ".git" / "config").read_text()
    r = cli("run", "-C", str(ws), "--level", "4", "--json", "--", "git", "config",
            "core.editor", "vi")
    assert r.returncode == 0, r.stderr
    assert (ws / ".git" / "config").read_text() == real_config
    approve = cli("approve", "last", ".git/config", "--include-protected")
    assert approve.returncode != 0 and b"hidden" in approve.stderr, approve.stderr
    assert (ws / ".git" / "config").read_text() == real_config
    assert "ghp_REMOTETOKEN" in (ws / ".git" / "config").read_text()


def test_a_secret_in_history_warns_once_and_hide_git_closes_it(repo: tuple[Cli, Path]) -> None:
    cli, ws = repo
    (ws / ".env").write_text("DB_PASSWORD=hunter2\n")
    git(ws, "add", "-f", ".env")
    git(ws, "commit", "-qm", "oops")
    git(ws, "rm", "-q", "--cached", ".env")
    git(ws, "commit", "-qm", "remove")
    give(cli, ws)
    first = cli("run", "-C", str(ws), "--", "git", "show", "HEAD~1:.env")
    assert b"hunter2" in first.stdout  # the history is readable: hence the warning
    assert b"history holds hidden path(s) (.env)" in first.stderr, first.stderr
    assert b"[hide] git = true" in first.stderr
    second = cli("run", "-C", str(ws), "--", "true")
    assert b"history holds" not in second.stderr  # once per workspace
    (ws / "sandbox.toml").write_text("[hide]\ngit = true\n")  # tightening: no trust needed
    give(cli, ws)
    hidden = cli("run", "-C", str(ws), "--", "sh", "-c",
                 "git show HEAD~1:.env; ls -a; echo ATTACK-RAN")
    assert b"ATTACK-RAN" in hidden.stdout, hidden.stderr
    assert b"hunter2" not in hidden.stdout and b".git\n" not in hidden.stdout
