"""discard_paths: rejected changes leave upper, every other change stays pending, unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.fs import ChangeKind, compute_changeset, discard_paths
from tests.conftest import require
from tests.support.trees import whiteout, write


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    require(os.geteuid() == 0, "needs root (whiteouts, trusted xattrs)")
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    upper.mkdir()
    lower.mkdir()
    return upper, lower


def pending(upper: Path, lower: Path) -> dict[str, ChangeKind]:
    return {c.path: c.kind for c in compute_changeset(upper, lower)}


def test_reject_one_deletion_under_a_deleted_dir(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    for name in ("a", "b", "c"):
        write(lower / f"d/{name}", name)
    whiteout(upper / "d")
    # keeping d/b means d cannot go; the other deletions stay pending
    discard_paths(upper, ["d", "d/b"], lower=lower)
    assert pending(upper, lower) == {"d/a": ChangeKind.DELETED, "d/c": ChangeKind.DELETED}
    assert (upper / "d").is_dir() and not (upper / "d/b").exists()


def test_reject_deletion_inside_opaque_dir(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "d/x", "x")
    write(lower / "d/y", "y")
    write(lower / "d/sub/z", "z")
    (upper / "d/sub").mkdir(parents=True)
    write(upper / "d/new", "n")
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    before = pending(upper, lower)
    assert before["d/x"] is ChangeKind.DELETED and before["d/sub/z"] is ChangeKind.DELETED
    discard_paths(upper, ["d/x"], lower=lower)
    after = pending(upper, lower)
    del before["d/x"]
    assert after == before
    assert "trusted.overlay.opaque" not in os.listxattr(upper / "d")


def test_reject_everything_empties_upper(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "keep/f", "f")
    write(upper / "keep/f", "changed")
    write(upper / "added/deep/g", "g")
    whiteout(upper / "keep2") if (lower / "keep2").exists() else None
    cs = compute_changeset(upper, lower)
    discard_paths(upper, [c.path for c in cs], lower=lower)
    assert pending(upper, lower) == {}
    assert list(upper.iterdir()) == []


def test_reject_dir_mode_change_keeps_children(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "d/f", "f")
    os.chmod(lower / "d", 0o755)
    (upper / "d").mkdir()
    os.chmod(upper / "d", 0o700)
    write(upper / "d/f", "changed")
    discard_paths(upper, ["d"], lower=lower)
    assert pending(upper, lower) == {"d/f": ChangeKind.MODIFIED}


def test_symlinks_in_upper_are_not_followed(trees: tuple[Path, Path], tmp_path: Path) -> None:
    upper, lower = trees
    outside = tmp_path / "outside"
    write(outside / "victim", "v")
    os.symlink(outside, upper / "link")
    discard_paths(upper, ["link/victim"], lower=lower)
    assert (outside / "victim").read_text() == "v"
    discard_paths(upper, ["link"], lower=lower)
    assert not (upper / "link").is_symlink() and (outside / "victim").exists()
