"""Per-session exclusive lock, so runs of one session serialize and approve/reject cannot race a
run that is still writing into the session's upper dir.

flock on locks_dir/<id>.lock: the kernel drops it when the holder dies, so a crashed run never
leaves a stale lock. Lock files are never deleted (unlinking a lock file another process has
open would let two holders each lock a different inode). Not re-entrant: taking the same
session's lock twice in one process deadlocks (or times out), by design of flock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox._home import HomeLayout, check_id
from sandbox.errors import SessionBusyError, StateError

__all__ = ["session_lock"]

_POLL_S = 0.05


def _acquire(fd: int, timeout: float | None) -> bool:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


@contextmanager
def session_lock(
    layout: HomeLayout, session_id: str, *, timeout: float | None = None
) -> Iterator[Path]:
    """Hold the session's lock for the `with` body; yields the lock file's path.

    timeout None waits as long as it takes; a number waits at most that many seconds (0: try
    once) and then raises SessionBusyError naming the busy session.
    """
    path = layout.locks_dir / f"{check_id('session', session_id)}.lock"
    try:
        layout.locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open lock {path}: {exc.strerror}") from exc
    try:
        if not _acquire(fd, timeout):
            raise SessionBusyError(
                f"session {session_id} is busy (another run, approve or reject holds it)",
                hint="wait for it to finish, or check `sandbox ls`",
            )
        yield path
    finally:
        os.close(fd)  # releases the lock
