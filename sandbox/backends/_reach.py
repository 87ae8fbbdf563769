"""Can the sandbox reach an image's system dirs? (`sandbox doctor`, before a run fails on it.)

nsjail bind-mounts an image's `/usr`, `/lib*`... from inside its user namespace, so the lookups
are made as the sandbox's outside identity, not as the caller:
- an unprivileged caller: its own uid, along the whole path to the rootfs (a rootfs under the
  caller's own 0700 state dir is fine; under someone else's private dir it is not);
- root: MAPPED_ROOT_ID, but only from the rootfs down, since root stages the rootfs in the
  run's private mount namespace first (see _mountns), whatever dirs lead to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox.backends._base import SYSTEM_DIRS
from sandbox.backends._mountns import MAPPED_ROOT_ID


def _searchable_by(st: os.stat_result, uid: int, gid: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def image_unreachable(rootfs: Path) -> str | None:
    """Why the sandbox could not mount `rootfs`'s system dirs, in one line; None if it can."""
    for d in [rootfs] + [rootfs / d.lstrip("/") for d in SYSTEM_DIRS]:
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            continue  # an image need not have every one (nor the host: /libx32)
        except OSError as exc:
            return f"{d}: {exc.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            continue  # a merged-/usr symlink: nsjail recreates it, nothing to traverse
        if os.getuid() != 0:
            if not os.access(d, os.X_OK):
                return (f"{d} is not traversable by uid {os.getuid()}, whom the sandbox runs "
                        "as (a directory on the way lacks x for it)")
        elif not _searchable_by(st, MAPPED_ROOT_ID, MAPPED_ROOT_ID):
            return (f"{d} ({stat.filemode(st.st_mode)}, uid {st.st_uid}) is not traversable by "
                    f"the sandbox's root (uid {MAPPED_ROOT_ID} outside): it needs o+x")
    return None
