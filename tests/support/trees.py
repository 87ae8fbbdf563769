"""Building and comparing file trees in tests (upper dirs, workspaces, whiteouts)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

Tree = dict[str, tuple[Any, ...]]


def write(path: Path, data: str | bytes = "x", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def whiteout(path: Path) -> None:
    """An overlay whiteout (char device 0:0): the entry is deleted in the merged view."""
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def snapshot(root: Path) -> Tree:
    """Every entry below root: type, permission bits, content or link target."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), full.read_bytes())
            else:
                out[rel] = ("special", st.st_mode)
    return out
