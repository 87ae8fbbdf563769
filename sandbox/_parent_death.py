"""A child that dies with its parent: prctl(PR_SET_PDEATHSIG), the one way a process started
by `sandbox` is tied to the life of the one that started it, however that one dies (even by
SIGKILL, which no handler sees). nsjail (its jail goes with it), the Docker lifeline and the
ptrace tracer all use it."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

__all__ = ["die_with_parent", "tied_to_parent"]

_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int, libc: ctypes.CDLL | None = None) -> None:
    """This process gets `sig` when its parent dies; OSError if the kernel refused."""
    if (libc or _libc()).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def tied_to_parent(sig: int, *, orphaned: Callable[[], None],
                   before: Callable[[], None] | None = None,
                   after: Callable[[], None] | None = None) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `sig` when the calling process dies. The parent may
    die between fork and prctl, which then never fires: the child sees it is orphaned and
    calls `orphaned`. `before`/`after` run around it in the child."""
    libc = _libc()  # loaded before fork: no dlopen in the child
    parent = os.getpid()

    def preexec() -> None:
        if before is not None:
            before()
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            orphaned()
        if after is not None:
            after()

    return preexec
