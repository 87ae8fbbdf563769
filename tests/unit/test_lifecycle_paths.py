"""RUN's PATHs as a person means them, and the workspace as git sees it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox._workspace import locate_workspace
from sandbox.errors import UsageError
from sandbox.fs import Change, ChangeKind, ChangeSet, FileType
from sandbox.lifecycle import normalize_paths


def _cs(*paths: str) -> ChangeSet:
    return ChangeSet(tuple(Change(path=p, kind=ChangeKind.ADDED, new_type=FileType.FILE)
                           for p in paths))


CS = _cs("src/x.py", "src/pkg/y.py", "README.md")


@pytest.mark.parametrize(("raw", "cwd", "want"), [
    ("src/x.py", "", ("src/x.py",)),  # workspace-relative
    ("./src/x.py", "", ("src/x.py",)),  # ./ from the top
    ("x.py", "src", ("src/x.py",)),  # relative to the current subdirectory
    ("./x.py", "src", ("src/x.py",)),
    ("src/x.py", "src", ("src/x.py",)),  # workspace-relative still works from a subdir
    ("../README.md", "src", ("README.md",)),
    ("pkg", "src", ("src/pkg",)),  # a directory: everything under it
    ("src/", "", ("src",)),
])
def test_relative_readings(tmp_path: Path, raw: str, cwd: str, want: tuple[str, ...]) -> None:
    ws = tmp_path / "ws"
    (ws / "src" / "pkg").mkdir(parents=True)
    got = normalize_paths([raw], CS, workspace=ws, cwd=ws / cwd)
    assert got == want
    assert CS.select(list(got or ()))


def test_absolute_inside_and_outside(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    assert normalize_paths([str(ws / "src/x.py")], CS, workspace=ws, cwd=tmp_path) == ("src/x.py",)
    assert normalize_paths([str(ws)], CS, workspace=ws, cwd=tmp_path) is None  # all of it
    with pytest.raises(UsageError, match="outside the workspace"):
        normalize_paths(["/etc/passwd"], CS, workspace=ws, cwd=ws)
    with pytest.raises(UsageError, match="outside the workspace"):
        normalize_paths(["../../x"], CS, workspace=ws, cwd=ws)
    with pytest.raises(UsageError, match="no pending change at: nope"):
        normalize_paths(["nope"], CS, workspace=ws, cwd=ws)


def test_workspace_is_the_git_toplevel(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    got = locate_workspace(None, cwd=repo / "src" / "deep")
    assert got.workspace == repo.resolve() and got.subdir == "src/deep"
    assert locate_workspace(None, cwd=repo).subdir == ""
    plain = tmp_path / "plain"
    plain.mkdir()
    assert locate_workspace(None, cwd=plain).workspace == plain.resolve()
    assert locate_workspace(str(repo / "src"), cwd=plain).workspace == repo / "src"  # -C wins
