"""render_patch details that git is strict about: quoting, blob ids, binary literals."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.fs import compute_changeset, diffstat, render_patch
from sandbox.fs._patch import blob_sha, git_quote
from tests.conftest import require


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        (b"plain/name.txt", b"plain/name.txt"),
        (b"with space", b"with space"),
        (b"tab\there", b'"tab\\there"'),
        (b'quote"back\\', b'"quote\\"back\\\\"'),
        ("ü".encode(), b'"\\303\\274"'),
        (b"bell\x07del\x7f", b'"bell\\adel\\177"'),
    ],
)
def test_git_quote(raw: bytes, quoted: bytes) -> None:
    assert git_quote(raw) == quoted


def test_blob_sha_matches_git(tmp_path: Path) -> None:
    require(shutil.which("git") is not None, "git")
    f = tmp_path / "f"
    f.write_bytes(b"hello\0world\n")
    out = subprocess.run(["git", "hash-object", os.fspath(f)], capture_output=True, check=True)
    assert blob_sha(b"hello\0world\n") == out.stdout.strip()


def _apply(tmp_path: Path, lower: Path, patch: bytes) -> Path:
    target = tmp_path / "applied"
    shutil.copytree(lower, target, symlinks=True)
    subprocess.run(["git", "init", "-q", os.fspath(target)], check=True)
    res = subprocess.run(["git", "apply", "-"], cwd=target, input=patch, capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    return target


def test_binary_symlink_and_odd_names_apply(tmp_path: Path) -> None:
    require(shutil.which("git") is not None, "git")
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    upper.mkdir()
    lower.mkdir()
    big = os.urandom(5000)
    (lower / "blob.bin").write_bytes(b"\0" + big)
    (upper / "blob.bin").write_bytes(b"\0" + big[::-1])
    os.symlink("blob.bin", upper / "ln")
    odd = os.path.join(os.fsencode(upper), b'caf\xe9 "q"\ttab')
    with open(odd, "wb") as f:
        f.write(b"no newline")
    (lower / "exec").write_text("#!/bin/sh\n")
    (upper / "exec").write_text("#!/bin/sh\n")
    os.chmod(upper / "exec", 0o755)
    cs = compute_changeset(upper, lower)
    patch = render_patch(cs, upper=upper, lower=lower)
    assert b"GIT binary patch\nliteral " in patch
    assert b"new file mode 120000" in patch and b"\\ No newline at end of file" in patch
    assert b"old mode 100644\nnew mode 100755\n" in patch
    applied = _apply(tmp_path, lower, patch)
    assert (applied / "blob.bin").read_bytes() == b"\0" + big[::-1]
    assert os.readlink(applied / "ln") == "blob.bin"
    assert os.access(applied / "exec", os.X_OK)
    with open(os.path.join(os.fsencode(applied), b'caf\xe9 "q"\ttab'), "rb") as f:
        assert f.read() == b"no newline"


def test_paths_filter_and_diffstat(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (upper / "src").mkdir(parents=True)
    lower.mkdir()
    (upper / "src/a.py").write_text("a\nb\n")
    (upper / "README").write_text("r\n")
    cs = compute_changeset(upper, lower)
    patch = render_patch(cs, upper=upper, lower=lower, paths=["src"])
    assert b"src/a.py" in patch and b"README" not in patch
    stat_text = diffstat(cs)
    assert "src/a.py | 2 ++" in stat_text
    assert stat_text.rstrip().endswith("2 files changed, 3 insertions(+)")
    assert diffstat(cs, paths=["README"]).rstrip().endswith("1 file changed, 1 insertion(+)")


def test_a_moved_file_is_a_rename_git_applies(tmp_path: Path) -> None:
    require(shutil.which("git") is not None, "git")
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (upper / "sub").mkdir(parents=True)
    lower.mkdir()
    (lower / "old.txt").write_text("a\nb\n")
    (lower / "other.txt").write_text("a\nb\n")
    (lower / "keep.txt").write_text("k\n")
    os.mknod(upper / "old.txt", 0o20600, os.makedev(0, 0))  # whiteout: deleted in the run
    (upper / "sub" / "new.txt").write_text("a\nb\n")
    os.chmod(upper / "sub" / "new.txt", 0o755)
    patch = render_patch(compute_changeset(upper, lower), upper=upper, lower=lower)
    assert patch == (b"diff --git a/old.txt b/sub/new.txt\nold mode 100644\nnew mode 100755\n"
                     b"similarity index 100%\nrename from old.txt\nrename to sub/new.txt\n")
    applied = _apply(tmp_path, lower, patch)
    assert (applied / "sub/new.txt").read_text() == "a\nb\n"
    assert not (applied / "old.txt").exists() and (applied / "other.txt").exists()
