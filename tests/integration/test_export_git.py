"""`sandbox export RUN --branch NAME`: a branch whose tree is HEAD plus the run's changes,
written without touching the working tree or the index; real runs under nsjail, real git."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, require

IDENT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
         "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    # GIT_OPTIONAL_LOCKS=0: our own `git status` must not refresh (rewrite) the index either.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "LC_ALL": "C",
           "GIT_OPTIONAL_LOCKS": "0", **IDENT}
    r = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env,
                       check=False)
    assert r.returncode == 0, f"git {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout


@pytest.fixture
def repo(workspace: Path) -> Path:
    require(shutil.which("git") is not None, "git")
    (workspace / ".gitignore").write_text("__pycache__/\n")
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "base")
    return workspace


def _snapshot(ws: Path) -> dict[str, object]:
    """Everything export must not touch: index bytes, HEAD, status, the working tree."""
    files = {}
    for root, dirs, names in os.walk(ws):
        dirs[:] = [d for d in dirs if d != ".git"]
        for n in names:
            p = Path(root) / n
            files[str(p.relative_to(ws))] = (p.lstat().st_mode, hashlib.sha256(
                os.readlink(p).encode() if p.is_symlink() else p.read_bytes()).hexdigest())
    status = git(ws, "status", "--porcelain", "--ignored")
    index = ws / ".git" / "index"
    return {"index": (index.read_bytes(), index.stat().st_mtime_ns),
            "head": git(ws, "rev-parse", "HEAD"), "refs": git(ws, "symbolic-ref", "HEAD"),
            "status": status, "files": files}


RUN = ("echo more >> README.md; echo 'x = 2' > src/new.py; rm old.txt; chmod +x src/app.py; "
       "ln -s README.md link; mkdir __pycache__; echo c > __pycache__/app.pyc; "
       "mkdir -p .github/workflows; echo 'run: evil' > .github/workflows/ci.yml; "
       "ln -s /etc/passwd escape")
EXPORTED = ["README.md", "link", "old.txt", "src/app.py", "src/new.py"]


def test_branch_tree_is_head_plus_the_changes_and_nothing_else_moves(
        cli: Cli, repo: Path, base_dir: Path) -> None:
    cli("run", "-C", str(repo), "--", "sh", "-c", RUN, check=True)
    before = _snapshot(repo)
    r = cli("export", "last", "--branch", "agent/fix", "--json", check=True)
    out = json.loads(r.stdout)
    assert _snapshot(repo) == before  # working tree, index, HEAD, status: untouched
    assert sorted(out["paths"]) == EXPORTED
    skipped = {s["path"]: s["reason"] for s in out["skipped"]}
    assert "pass --include-protected" in skipped[".github/workflows/ci.yml"]
    assert skipped["escape"].startswith("forbidden: symlink-escape")
    assert skipped["__pycache__/app.pyc"] == "ignored by git (.gitignore)"
    head = git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "rev-parse", "agent/fix^").strip() == head
    # Oracle: apply the exported paths' patch to HEAD in a clone; the trees must be equal.
    clone = base_dir / "clone"
    git(base_dir, "clone", "-q", str(repo), str(clone))
    patch = cli("diff", "last", *EXPORTED, check=True).stdout
    git(clone, "apply", "--index", "-", input=patch)
    assert git(clone, "write-tree") == git(repo, "rev-parse", "agent/fix^{tree}")
    names = git(repo, "diff", "--name-status", "HEAD", "agent/fix").decode().splitlines()
    assert sorted(names) == ["A\tlink", "A\tsrc/new.py", "D\told.txt", "M\tREADME.md",
                             "M\tsrc/app.py"]
    assert b"100755" in git(repo, "ls-tree", "agent/fix", "src/app.py")
    assert git(repo, "cat-file", "-p", "agent/fix:link") == b"README.md"
    # The changes are still pending: exporting decides nothing.
    assert b"src/new.py" in cli("diff", "last", "--stat", check=True).stdout
    assert "to branch agent/fix (commit " in cli("audit", "last", check=True).stdout.decode()


def test_existing_branch_bad_name_and_no_repository_are_refused(
        cli: Cli, repo: Path, base_dir: Path) -> None:
    cli("run", "-C", str(repo), "--", "sh", "-c", "echo x > x.txt", check=True)
    git(repo, "branch", "taken")
    taken = git(repo, "rev-parse", "taken")
    r = cli("export", "last", "--branch", "taken")
    assert r.returncode == 2 and b"already exists" in r.stderr
    assert git(repo, "rev-parse", "taken") == taken
    r = cli("export", "last", "--branch", "bad..name")
    assert r.returncode == 2 and b"invalid branch name" in r.stderr
    plain = base_dir / "plain"
    plain.mkdir()
    cli("run", "-C", str(plain), "--", "sh", "-c", "echo x > x.txt", check=True)
    r = cli("export", "last", "--branch", "b")
    assert r.returncode == 2 and b"not in a git repository" in r.stderr


def test_protected_on_request_subdirectory_workspace_and_escaped_message(
        cli: Cli, repo: Path) -> None:
    sub = repo / "src"
    cli("run", "-C", str(sub), "--", "sh", "-c",
        "mkdir -p .github/workflows; echo ci > .github/workflows/ci.yml; echo y >> app.py",
        "\x1b[31mred", check=True)
    cli("export", "last", "--branch", "with-ci", "--include-protected", check=True)
    files = git(repo, "ls-tree", "-r", "--name-only", "with-ci").decode().split()
    assert "src/.github/workflows/ci.yml" in files and "src/app.py" in files
    assert git(repo, "show", "with-ci:src/app.py") == b"print('hi')\ny\n"
    message = git(repo, "log", "-1", "--format=%B", "with-ci")
    assert b"\x1b" not in message and b"\\x1b[31mred" in message


def test_repository_without_commits(cli: Cli, workspace: Path) -> None:
    require(shutil.which("git") is not None, "git")
    git(workspace, "init", "-q")
    cli("run", "-C", str(workspace), "--", "sh", "-c", "echo n > n.txt", check=True)
    cli("export", "last", "--branch", "first", "-m", "agent work", check=True)
    assert git(workspace, "rev-list", "--count", "first").strip() == b"1"
    assert git(workspace, "ls-tree", "-r", "--name-only", "first").split() == [b"n.txt"]
    assert git(workspace, "log", "-1", "--format=%s", "first").strip() == b"agent work"
    assert not (workspace / ".git" / "index").exists()
