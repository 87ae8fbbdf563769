"""Start nsjail without forking this (large) process: one spawner thread per process.

Why: a `preexec_fn` makes subprocess fork() the whole caller (copying a server's page tables
cost 5-6 ms per run) instead of vfork(). nsjail needs two things from the child before exec:
- to die with us (PR_SET_PDEATHSIG), and to notice if we died before that was set;
- as root, to start in a private mount namespace holding the staged overlay (_mountns).
Both are now done without running Python in a forked child:
- the overlay is staged by the spawner thread itself: it unshares its own fs context and mount
  namespace (a thread may: CLONE_FS is per thread), stages there, starts nsjail by vfork (the
  child inherits the thread's mount namespace), then returns to the host namespace. The staged
  namespace is then held by nsjail alone and dies with it, exactly as before; nothing of it is
  ever visible on the host.
- `setpriv --pdeathsig KILL` (util-linux) sets the parent-death signal and execs `sh`, which
  exits 125 unless its parent is still us (the fork-to-prctl race: if we died in between, the
  signal would never come), then execs nsjail. The script is a constant; every argument goes
  as its own argv entry, never through the shell's parser.
The spawner thread lives as long as the process: the parent-death signal is tied to the thread
that started the child, so nsjail must not outlive that thread, only the process.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sandbox.errors import BackendError

__all__ = ["spawn"]

# $0 is the pid we must still be the child of; the rest is the command.
_CHECK_PARENT = 'if [ "$PPID" != "$0" ]; then exit 125; fi; exec "$@"'


@dataclass(frozen=True)
class _Request:
    argv: Sequence[str]
    stdout: int | None
    pass_fds: tuple[int, ...]
    stage: Callable[[], None] | None
    done: Future[subprocess.Popen[bytes]]


_QUEUE: queue.SimpleQueue[_Request] = queue.SimpleQueue()
_LOCK = threading.Lock()
_THREAD: list[threading.Thread] = []


def _wrapper() -> list[str]:
    setpriv, sh = shutil.which("setpriv"), shutil.which("sh")
    if setpriv is None or sh is None:
        raise BackendError("setpriv (util-linux) or sh is not on PATH",
                           hint="apt-get install util-linux; run `sandbox doctor`")
    return [setpriv, "--pdeathsig=KILL", "--", sh, "-c", _CHECK_PARENT,
            str(os.getpid())]


def spawn(argv: Sequence[str], *, stdout: int | None, pass_fds: tuple[int, ...],
          stage: Callable[[], None] | None) -> subprocess.Popen[bytes]:
    """Start argv (stderr piped, stdin inherited) tied to this process's life; `stage` runs
    first in a private mount namespace the command then starts in. Raises what Popen or
    `stage` raised."""
    if shutil.which(argv[0]) is None:
        # Through setpriv and sh a missing binary would be sh's exit 127, indistinguishable
        # from the command's own: say it here, as Popen of the binary itself would.
        raise FileNotFoundError(errno.ENOENT, "no such executable file", argv[0])
    req = _Request(argv=argv, stdout=stdout, pass_fds=pass_fds, stage=stage, done=Future())
    with _LOCK:
        if not _THREAD or not _THREAD[0].is_alive():
            t = threading.Thread(target=_serve, args=(_wrapper(),), name="sandbox-spawner",
                                 daemon=True)
            t.start()
            _THREAD[:] = [t]
    _QUEUE.put(req)
    return req.done.result()


def _serve(wrapper: list[str]) -> None:
    # Our own fs context (cwd, root, mount namespace) from here on: setns needs it, and the
    # other threads' cwd must not move when this one changes namespace.
    os.unshare(os.CLONE_FS)
    host = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    while True:
        req = _QUEUE.get()
        proc: subprocess.Popen[bytes] | None = None
        error: BaseException | None = None
        try:
            proc = _start(req, wrapper)
        except BaseException as exc:  # the caller's to handle, in its own thread
            error = exc
        finally:
            if req.stage is not None:  # back to the host's namespace, and our cwd there
                os.setns(host, os.CLONE_NEWNS)
                os.fchdir(cwd)
        # Only now is the caller told: by then this thread holds no staged namespace.
        if error is not None:
            req.done.set_exception(error)
        else:
            assert proc is not None
            req.done.set_result(proc)


def _start(req: _Request, wrapper: list[str]) -> subprocess.Popen[bytes]:
    if req.stage is not None:
        req.stage()  # unshares this thread's mount namespace, as root
    return subprocess.Popen(
        [*wrapper, *req.argv],
        stdin=None,
        stdout=req.stdout,
        stderr=subprocess.PIPE,
        pass_fds=req.pass_fds,
        start_new_session=False,
    )
