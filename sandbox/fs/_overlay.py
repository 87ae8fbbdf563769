"""What overlayfs leaves in an upper dir: whiteouts, opaque dirs, and features we refuse.

Both xattr namespaces are accepted: `trusted.overlay.*` (mounted by real root) and
`user.overlay.*` (mounted with `userxattr` inside a user namespace).
"""

from __future__ import annotations

import errno
import os
import stat

from sandbox.errors import EnforcementError

_PREFIXES = ("trusted.overlay.", "user.overlay.")
_OPAQUE = tuple(p + "opaque" for p in _PREFIXES)
_WHITEOUT = tuple(p + "whiteout" for p in _PREFIXES)
# Present only when the overlay was mounted with redirect_dir/metacopy: the upper entry then
# stands for some other lower path or has no data of its own, and a naive diff would lie.
_UNSUPPORTED = tuple(p + s for p in _PREFIXES for s in ("redirect", "metacopy"))


def listxattr(path: str | os.PathLike[str]) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return []
        raise


def check_supported(path: str | os.PathLike[str], names: list[str]) -> None:
    bad = [n for n in names if n in _UNSUPPORTED]
    if bad:
        raise EnforcementError(
            f"overlay upper entry {os.fsdecode(path)!r} carries {bad[0]}; "
            "redirect_dir/metacopy overlays cannot be diffed safely",
            hint="mount the snapshot overlay with redirect_dir=off,metacopy=off",
        )


def is_whiteout(st: os.stat_result, names: list[str]) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and any(n in _WHITEOUT for n in names)


def opaque_xattr(path: str | os.PathLike[str], names: list[str]) -> str | None:
    """The name of the xattr making this upper dir opaque, or None."""
    for name in names:
        if name in _OPAQUE:
            try:
                if os.getxattr(path, name, follow_symlinks=False) == b"y":
                    return name
            except OSError:
                continue
    return None


def make_whiteout(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
    # A 0:0 char device is the whiteout format every overlay version understands; creating
    # it needs no privilege since Linux 5.8.
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)
