"""Content digest of a rootfs tree: what a program inside can observe, not when it was written.

Covered per entry, in sorted path order: path, type, permission bits (with setuid/setgid/
sticky), owner ids, file content (sha256), symlink target, device numbers. Not covered:
timestamps (debootstrap stamps install time) and inode numbers. Two builds of the same package
versions therefore get the same digest, and a rootfs changed by hand does not.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TreeDigest:
    digest: str  # "sha256:<hex>"
    files: int
    bytes: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


def tree_digest(root: Path) -> TreeDigest:
    h = hashlib.sha256()
    files = 0
    total = 0
    for rel, st in _walk(root):
        kind = stat.S_IFMT(st.st_mode)
        line = f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0"
        full = os.path.join(root, rel) if rel != "." else str(root)
        if stat.S_ISREG(kind):
            line += _file_sha256(full)
            files += 1
            total += st.st_size
        elif stat.S_ISLNK(kind):
            line += os.readlink(full)
        elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
            line += f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return TreeDigest(digest=f"sha256:{h.hexdigest()}", files=files, bytes=total)


def _walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry, sorted by path bytes; never follows symlinks."""
    out: list[tuple[str, os.stat_result]] = [(".", os.lstat(root))]
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            st = e.stat(follow_symlinks=False)
            out.append((rel, st))
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
    out.sort(key=lambda t: t[0].encode("utf-8", "surrogateescape"))
    return out


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()
