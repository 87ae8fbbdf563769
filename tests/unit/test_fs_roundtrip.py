"""End to end over a real overlay: random edits through the mount, then diff, patch, commit.

Also: rejecting a random (consistent) subset of changes leaves exactly the others pending.

For each random session: `git apply` of render_patch onto a copy of the workspace, and
commit_changeset onto another copy, must both reproduce the merged view the run saw; after
discard_paths of everything committed, nothing is pending any more.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.fs import (
    ChangeKind,
    ChangeSet,
    FileType,
    commit_changeset,
    compute_changeset,
    diffstat,
    discard_paths,
    render_patch,
)
from tests.conftest import require

Tree = dict[str, tuple[Any, ...]]



def snapshot(root: Path, *, git_view: bool = False) -> Tree:
    """Entries below root. git_view: only what git tracks (files with their x bit, links)."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames and git_view:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                if not git_view:
                    out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif git_view:
                out[rel] = ("file", bool(st.st_mode & stat.S_IXUSR), full.read_bytes())
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), full.read_bytes())
    return out


@contextlib.contextmanager
def overlay(lower: Path, upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    res = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, os.fspath(merged)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    require(res.returncode == 0, f"cannot mount overlay: {res.stderr.strip()}")
    try:
        yield merged
    finally:
        subprocess.run(["umount", os.fspath(merged)], check=True)


def _content(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))  # binary
    lines = [f"line {rng.randrange(30)} {'x' * rng.randrange(5)}\n" for _ in range(rng.randrange(40))]
    data = "".join(lines).encode()
    if choice < 0.35 and data:
        data = data[:-1]  # no newline at end of file
    if choice > 0.9:
        data += b" spaced\ttab\r\n"
    return data


def _base_tree(root: Path, rng: random.Random) -> None:
    names = ["a.txt", "b.py", "with space.md", "ü.txt", "run.sh", "data.bin"]
    for d in ["", "src", "src/pkg", "docs", "empty_dir", "deep/er/est"]:
        (root / d).mkdir(parents=True, exist_ok=True)
        for name in rng.sample(names, 3):
            (root / d / name).write_bytes(_content(rng))
    os.chmod(root / "src", 0o750)
    os.symlink("a.txt", root / "docs/link") if (root / "docs/a.txt").exists() else os.symlink(
        "../src", root / "docs/link"
    )


def _random_edits(m: Path, rng: random.Random) -> None:
    for _ in range(rng.randrange(5, 25)):
        entries = [p for p in m.rglob("*")]
        files = [p for p in entries if p.is_file() and not p.is_symlink()]
        dirs = [m, *(p for p in entries if p.is_dir() and not p.is_symlink())]
        op = rng.randrange(10)
        try:
            if op == 0 and files:
                rng.choice(files).write_bytes(_content(rng))
            elif op == 1 and files:
                f = rng.choice(files)
                f.write_bytes(f.read_bytes() + b"appended\n")
            elif op == 2 and files:
                rng.choice(files).unlink()
            elif op == 3:
                d = rng.choice(dirs) / f"new{rng.randrange(100)}"
                d.mkdir(exist_ok=True)
                (d / "n.txt").write_bytes(_content(rng))
            elif op == 4 and len(dirs) > 1:
                shutil.rmtree(rng.choice(dirs[1:]))
            elif op == 5 and files:
                f = rng.choice(files)
                os.chmod(f, f.stat().st_mode ^ 0o111)
            elif op == 6:
                d = rng.choice(dirs)
                targets = ["a.txt", "sub/y", "."] + (["../x"] if d != m else [])
                os.symlink(rng.choice(targets), d / f"ln{rng.randrange(9)}")
            elif op == 7 and files:  # file -> dir
                f = rng.choice(files)
                f.unlink()
                f.mkdir()
                (f / "inner").write_bytes(_content(rng))
            elif op == 8 and len(dirs) > 1:  # dir -> file
                d = rng.choice(dirs[1:])
                shutil.rmtree(d)
                d.write_bytes(_content(rng))
            elif op == 9 and files:  # rename a file (copy-up + whiteout)
                f = rng.choice(files)
                f.rename(f.with_name(f.name + ".moved"))
        except (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue


@pytest.mark.parametrize("seed", range(int(os.environ.get("FS_SEEDS", "10"))))
def test_patch_and_commit_reproduce_the_merged_view(tmp_path: Path, seed: int) -> None:
    require(os.geteuid() == 0, "needs root to mount overlayfs")
    require(shutil.which("git") is not None, "needs git")
    rng = random.Random(seed)
    lower = tmp_path / "lower"
    _base_tree(lower, rng)
    upper = tmp_path / "upper"
    with overlay(lower, upper, tmp_path / "work", tmp_path / "merged") as merged:
        _random_edits(merged, rng)
        expected = snapshot(merged)
        expected_git = snapshot(merged, git_view=True)
    cs = compute_changeset(upper, lower)
    assert cs, "random edits should change something"
    assert diffstat(cs).rstrip().endswith(("changed", "(+)", "(-)"))

    # git apply of our patch onto a copy of the workspace
    patched = tmp_path / "patched"
    shutil.copytree(lower, patched, symlinks=True)
    subprocess.run(["git", "init", "-q", os.fspath(patched)], check=True)
    patch = render_patch(cs, upper=upper, lower=lower)
    res = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", "-"], cwd=patched, input=patch,
        capture_output=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr.decode() + "\n" + patch.decode(errors="replace")
    assert snapshot(patched, git_view=True) == expected_git

    # commit onto another copy: exact, including directory modes
    ws = tmp_path / "ws"
    shutil.copytree(lower, ws, symlinks=True)
    started = os.stat(ws).st_ctime_ns + 1  # copytree is "before the run"
    allowed = [c.path for c in cs if not c.forbidden]
    assert len(allowed) == len(cs)  # relative links inside the tree, no specials
    result = commit_changeset(
        cs, upper=upper, workspace=ws, journal_dir=tmp_path / "j",
        started_ns=max(started, max(os.lstat(p).st_ctime_ns for p in ws.rglob("*")) + 1),
    )  # fmt: skip
    assert snapshot(ws) == expected

    # after a full commit, discarding what was committed leaves nothing pending
    discard_paths(upper, result.committed + result.skipped, lower=ws)
    assert len(compute_changeset(upper, ws)) == 0
    # committed entries left upper (identical copy-ups, never changes, may stay behind)
    for path in result.committed:
        assert not (upper / path).exists() or (upper / path).is_dir(), path


def _reject_closure(cs: ChangeSet, picked: list[str]) -> set[str]:
    """A consistent rejection: subtrees, plus ancestors whose removal the rejection undoes."""
    rejected = {c.path for c in cs.select(picked)}
    for path in list(rejected):
        parts = path.split("/")
        for i in range(1, len(parts)):
            anc = cs.by_path("/".join(parts[:i]))
            if (
                anc is not None
                and anc.old_type is FileType.DIR
                and anc.kind in (ChangeKind.DELETED, ChangeKind.TYPE_CHANGED)
            ):
                rejected.update(c.path for c in cs.select([anc.path]) if c.path == anc.path)
                if anc.kind is ChangeKind.TYPE_CHANGED:
                    # the replacement's own contents go with it
                    rejected.update(c.path for c in cs.select([anc.path]) if c.kind is not ChangeKind.DELETED)
    return rejected


@pytest.mark.parametrize("seed", range(int(os.environ.get("FS_SEEDS", "10"))))
def test_random_rejections_keep_the_rest_pending(tmp_path: Path, seed: int) -> None:
    require(os.geteuid() == 0, "needs root to mount overlayfs")
    rng = random.Random(seed)
    lower = tmp_path / "lower"
    _base_tree(lower, rng)
    upper = tmp_path / "upper"
    with overlay(lower, upper, tmp_path / "work", tmp_path / "merged") as merged:
        _random_edits(merged, rng)
    cs = compute_changeset(upper, lower)
    picked = [c.path for c in cs if rng.random() < 0.3]
    rejected = _reject_closure(cs, picked)
    discard_paths(upper, sorted(rejected), lower=lower)
    expected = {c.path: c.to_json() for c in cs if c.path not in rejected}
    got = {c.path: c.to_json() for c in compute_changeset(upper, lower)}
    # A restored directory is a copy-up of the lower one: identical, hence no change.
    assert got == expected
    shutil.rmtree(upper)
