"""compute_changeset over hand-built upper/lower trees (whiteouts via mknod, opaque xattrs)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sandbox.errors import EnforcementError
from sandbox.fs import ChangeKind, ChangeSet, FileType, compute_changeset
from tests.conftest import require, require_root
from tests.support.trees import whiteout, write


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    upper.mkdir()
    lower.mkdir()
    return upper, lower


def kinds(cs: ChangeSet) -> dict[str, ChangeKind]:
    return {c.path: c.kind for c in cs}


def test_empty_upper_is_no_change(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "a.txt", "a\n")
    cs = compute_changeset(upper, lower)
    assert len(cs) == 0
    assert cs.to_json()["summary"]["total"] == 0


def test_identical_copy_up_is_not_a_change(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "d/a.txt", "same\n")
    write(upper / "d/a.txt", "same\n")
    os.utime(upper / "d/a.txt", (1, 1))  # touched: mtime alone is no change
    assert len(compute_changeset(upper, lower)) == 0


def test_added_modified_mode_changed(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "mod.txt", "one\ntwo\nthree\n")
    write(upper / "mod.txt", "one\nTWO\nthree\nfour\n")
    write(lower / "run.sh", "echo\n")
    write(upper / "run.sh", "echo\n", 0o755)
    write(upper / "new.txt", "x\ny\n")
    cs = compute_changeset(upper, lower)
    assert kinds(cs) == {
        "mod.txt": ChangeKind.MODIFIED,
        "new.txt": ChangeKind.ADDED,
        "run.sh": ChangeKind.MODE_CHANGED,
    }
    mod = cs.by_path("mod.txt")
    assert mod is not None and (mod.added_lines, mod.removed_lines) == (2, 1)
    new = cs.by_path("new.txt")
    assert new is not None and (new.added_lines, new.removed_lines) == (2, 0)
    run = cs.by_path("run.sh")
    assert run is not None and run.executable_added and not run.forbidden


def test_same_size_different_content_is_modified(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "f", "abc")
    write(upper / "f", "abd")
    assert kinds(compute_changeset(upper, lower)) == {"f": ChangeKind.MODIFIED}


def test_added_directory_is_one_change_plus_entries(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(upper / "pkg/sub/m.py", "pass\n")
    assert kinds(compute_changeset(upper, lower)) == {
        "pkg": ChangeKind.ADDED,
        "pkg/sub": ChangeKind.ADDED,
        "pkg/sub/m.py": ChangeKind.ADDED,
    }


def test_whiteouts_are_deletions(trees: tuple[Path, Path]) -> None:
    require_root()
    upper, lower = trees
    write(lower / "gone.txt", "a\nb\n")
    write(lower / "dir/x", "1\n")
    write(lower / "dir/y/z", "2\n")
    whiteout(upper / "gone.txt")
    whiteout(upper / "dir")
    whiteout(upper / "never-existed")  # a whiteout over nothing is no change
    cs = compute_changeset(upper, lower)
    assert kinds(cs) == {
        "dir": ChangeKind.DELETED,
        "dir/x": ChangeKind.DELETED,
        "dir/y": ChangeKind.DELETED,
        "dir/y/z": ChangeKind.DELETED,
        "gone.txt": ChangeKind.DELETED,
    }
    gone = cs.by_path("gone.txt")
    assert gone is not None and gone.removed_lines == 2 and gone.old_type is FileType.FILE


def test_xattr_whiteout_is_a_deletion(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "gone", "x")
    write(upper / "gone", b"")
    try:
        os.setxattr(upper / "gone", "user.overlay.whiteout", b"y")
    except OSError as exc:
        require(False, f"a filesystem with user xattrs for the test tree: {exc}")
    assert kinds(compute_changeset(upper, lower)) == {"gone": ChangeKind.DELETED}


@pytest.mark.parametrize("xattr", ["trusted.overlay.opaque", "user.overlay.opaque"])
def test_opaque_dir_deletes_lower_entries_it_lacks(trees: tuple[Path, Path], xattr: str) -> None:
    if xattr.startswith("trusted."):
        require_root()
    upper, lower = trees
    write(lower / "d/old1", "1\n")
    write(lower / "d/sub/old2", "2\n")
    write(lower / "d/kept", "same\n")
    write(upper / "d/kept", "same\n")
    write(upper / "d/new", "n\n")
    try:
        os.setxattr(upper / "d", xattr, b"y")
    except OSError as exc:
        require(False, f"setting {xattr} on the test tree: {exc}")
    assert kinds(compute_changeset(upper, lower)) == {
        "d/new": ChangeKind.ADDED,
        "d/old1": ChangeKind.DELETED,
        "d/sub": ChangeKind.DELETED,
        "d/sub/old2": ChangeKind.DELETED,
    }


def test_opaque_propagates_to_subdirs(trees: tuple[Path, Path]) -> None:
    require_root()
    upper, lower = trees
    write(lower / "d/sub/hidden", "h\n")
    (upper / "d/sub").mkdir(parents=True)
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    assert kinds(compute_changeset(upper, lower)) == {"d/sub/hidden": ChangeKind.DELETED}


def test_type_changes(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "was_file", "f\n")
    (upper / "was_file").mkdir()
    write(upper / "was_file/inner", "i\n")
    write(lower / "was_dir/child", "c\n")
    write(upper / "was_dir", "now a file\n")
    write(lower / "was_link_target", "t")
    os.symlink("was_link_target", lower / "link")
    write(upper / "link", "plain\n")
    cs = compute_changeset(upper, lower)
    assert kinds(cs) == {
        "link": ChangeKind.TYPE_CHANGED,
        "was_dir": ChangeKind.TYPE_CHANGED,
        "was_dir/child": ChangeKind.DELETED,
        "was_file": ChangeKind.TYPE_CHANGED,
        "was_file/inner": ChangeKind.ADDED,
    }
    link = cs.by_path("link")
    assert link is not None
    assert (link.old_type, link.new_type) == (FileType.SYMLINK, FileType.FILE)


def test_lower_symlinked_dir_is_never_followed(trees: tuple[Path, Path], tmp_path: Path) -> None:
    upper, lower = trees
    outside = tmp_path / "outside"
    write(outside / "secret", "s\n")
    os.symlink(outside, lower / "link")
    # upper replaced the symlink with a real dir holding a same-named file
    write(upper / "link/secret", "s\n")
    cs = compute_changeset(upper, lower)
    assert kinds(cs) == {"link": ChangeKind.TYPE_CHANGED, "link/secret": ChangeKind.ADDED}


def test_directory_mode_change(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    (lower / "d").mkdir(mode=0o755)
    (upper / "d").mkdir()
    os.chmod(upper / "d", 0o700)
    os.chmod(lower / "d", 0o755)
    cs = compute_changeset(upper, lower)
    assert kinds(cs) == {"d": ChangeKind.MODE_CHANGED}


def test_symlink_retarget_is_modified(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    os.symlink("a", lower / "l")
    os.symlink("b", upper / "l")
    cs = compute_changeset(upper, lower)
    change = cs.by_path("l")
    assert change is not None and change.kind is ChangeKind.MODIFIED
    assert change.link_target == "b" and not change.forbidden


@pytest.mark.parametrize(
    ("target", "where", "escapes"),
    [
        ("/etc/passwd", "l", True),
        ("../outside", "l", True),
        ("../../x", "d/l", True),
        ("../sibling", "d/l", False),
        ("./a/../b", "l", False),
        ("a/../../b", "l", True),
    ],
)
def test_symlink_escape_rule(trees: tuple[Path, Path], target: str, where: str, escapes: bool) -> None:
    upper, lower = trees
    (upper / where).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, upper / where)
    change = compute_changeset(upper, lower).by_path(where)
    assert change is not None
    assert ("symlink-escape" in change.forbidden_rules) is escapes


def test_special_files_and_setid_are_forbidden(trees: tuple[Path, Path]) -> None:
    require_root()
    upper, lower = trees
    os.mkfifo(upper / "fifo")
    os.mknod(upper / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(upper / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    write(upper / "suid", "x", 0o4755)
    write(upper / "sgid", "x", 0o2755)
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fspath(upper / "sock"))
    sock.close()
    cs = compute_changeset(upper, lower)
    rules = {c.path: c.forbidden_rules for c in cs}
    assert rules == {
        "blk": ("device-node",),
        "dev": ("device-node",),
        "fifo": ("fifo",),
        "sgid": ("setid",),
        "sock": ("socket",),
        "suid": ("setid",),
    }
    assert all(c.setid for c in cs if c.path in ("suid", "sgid"))


def test_setgid_directory_is_not_forbidden(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    (upper / "shared").mkdir()
    os.chmod(upper / "shared", 0o2775)
    change = compute_changeset(upper, lower).by_path("shared")
    assert change is not None and change.setid and not change.forbidden


def test_control_characters_and_non_utf8_names(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(upper / "bad\x1bname", "x")
    raw = os.path.join(os.fsencode(upper), b"caf\xe9")
    with open(raw, "wb") as f:
        f.write(b"latin1 name\n")
    cs = compute_changeset(upper, lower)
    bad = cs.by_path("bad\x1bname")
    assert bad is not None and bad.forbidden_rules == ("control-char",)
    latin = cs.by_path(os.fsdecode(b"caf\xe9"))
    assert latin is not None and not latin.forbidden
    assert os.fsencode(latin.path) == b"caf\xe9"
    json.dumps(cs.to_json())  # surrogates survive JSON (escaped)
    assert ChangeSet.from_json(json.loads(json.dumps(cs.to_json()))) == cs


def test_hidden_paths_are_forbidden(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / ".env", "SECRET=1\n")
    write(upper / ".env", "clobbered\n")
    write(upper / ".ssh/id_rsa", "k")
    write(upper / "ok.txt", "fine\n")
    cs = compute_changeset(upper, lower, hidden=[".env", ".ssh"])
    assert {c.path: c.forbidden_rules for c in cs} == {
        ".env": ("hidden-path",),
        ".ssh": ("hidden-path",),
        ".ssh/id_rsa": (),  # inside a directory the run created: nothing to clobber
        "ok.txt": (),
    }


def test_binary_detection_and_no_line_counts(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "img", b"\x89PNG\0\0data")
    write(upper / "img", b"\x89PNG\0\0DATA!")
    change = compute_changeset(upper, lower).by_path("img")
    assert change is not None and change.binary
    assert change.added_lines is None and change.removed_lines is None


@pytest.mark.parametrize("xattr", ["trusted.overlay.redirect", "trusted.overlay.metacopy"])
def test_redirect_and_metacopy_are_refused(trees: tuple[Path, Path], xattr: str) -> None:
    require_root()
    upper, lower = trees
    write(upper / "f", "x")
    os.setxattr(upper / "f", xattr, b"/elsewhere")
    with pytest.raises(EnforcementError, match="redirect_dir"):
        compute_changeset(upper, lower)


def test_json_schema_is_stable(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(lower / "a", "1\n")
    write(upper / "a", "2\n")
    data = compute_changeset(upper, lower).to_json()
    assert set(data) == {"changes", "summary"}
    assert set(data["changes"][0]) == {
        "path", "kind", "old_type", "new_type", "old_mode", "new_mode", "old_size", "new_size",
        "binary", "link_target", "executable_added", "setid", "forbidden", "added_lines",
        "removed_lines", "conflict",
    }  # fmt: skip
    assert data["summary"]["modified"] == 1
    assert data["summary"]["added_lines"] == 1 and data["summary"]["removed_lines"] == 1


def test_changes_sorted_parents_first(trees: tuple[Path, Path]) -> None:
    upper, lower = trees
    write(upper / "a-c", "1")
    write(upper / "a/b", "2")
    assert [c.path for c in compute_changeset(upper, lower)] == ["a", "a/b", "a-c"]


def test_select_and_unmatched() -> None:
    from sandbox.fs import Change

    cs = ChangeSet(
        (
            Change("src", ChangeKind.ADDED, new_type=FileType.DIR),
            Change("src/a.py", ChangeKind.ADDED, new_type=FileType.FILE),
            Change("srcx", ChangeKind.ADDED, new_type=FileType.FILE),
        )
    )
    assert [c.path for c in cs.select(["src"])] == ["src", "src/a.py"]
    assert [c.path for c in cs.select(["src/"])] == ["src", "src/a.py"]
    assert cs.unmatched(["src", "nope"]) == ("nope",)
    assert cs.counts()["added"] == 3


def test_hide_patterns_also_forbid(trees: tuple[Path, Path]) -> None:
    # Judged later without the run's mask, the policy's patterns must still protect secrets.
    upper, lower = trees
    (lower / "sub").mkdir()
    write(upper / "sub/.env.prod", "x")
    write(upper / "keys/.ssh/id", "k")
    write(upper / "sub/app.py", "x")
    cs = compute_changeset(upper, lower, hidden=[".env*", ".ssh/"])
    assert {c.path for c in cs if c.forbidden} == {"sub/.env.prod"}  # keys/ is the run's own
