"""The one-shot hand-off of a listening socket from inside a sandbox to a server on the host.

The shim (`_shim.py`, first inside) creates a listening TCP socket on the sandbox's loopback and
passes it over a bind-mounted unix socket (SCM_RIGHTS); the host adopts it only if it is a
listening TCP socket, gives it to `serve`, acknowledges, then closes and unlinks the control
socket, so the sandboxed command can never talk to the control channel. The egress proxy and
the LLM gateway (`run --llm`) are both reached this way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from sandbox.errors import EnforcementError

__all__ = ["SHIM", "Handoff", "bind_unix", "shim_wrapper"]

SHIM = Path(__file__).with_name("_shim.py")
_ATTACH_TIMEOUT = 10.0


def sandbox_only(path: Path) -> None:
    """Let the sandbox, and no one else, connect to the unix socket at `path`.

    As root the socket's directory sits under /run/sandbox-egress, whose name any local user
    can read in the sandbox's /proc/PID/mountinfo (world-readable): a socket anyone may write
    to would let another account drive the run's MCP session or hand over the proxy's
    listener. Every root sandbox runs as MAPPED_ROOT_ID outside (nsjail's one-id map, Docker's
    user or remapped root), so the socket is that id's alone. Unprivileged, the directory is
    under the caller's 0700 state dir: only the caller and its sandbox reach it at all.
    """
    if os.geteuid() == 0:
        from sandbox.backends._mountns import MAPPED_ROOT_ID

        os.chown(path, MAPPED_ROOT_ID, MAPPED_ROOT_ID, follow_symlinks=False)
        path.chmod(0o600)
    else:
        path.chmod(0o666)  # a Docker sandbox runs as MAPPED_ROOT_ID: the directory guards it


def bind_unix(path: Path) -> socket.socket:
    """Bind a unix socket at `path`, even past the 108-byte sun_path limit: long paths go
    through the /proc/self/fd/N alias of their directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    if len(os.fsencode(path)) < 100:
        sock.bind(str(path))
        return sock
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
    finally:
        os.close(dir_fd)
    return sock


def _valid_listener(fd: int) -> socket.socket | None:
    """Adopt fd only if it is a listening TCP socket (defence in depth: the shim is ours)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return None
    ok = (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    )
    if not ok:
        sock.close()
        return None
    return sock


def shim_wrapper(python: str, inside_dir: str, sock_name: str, port: int) -> tuple[str, ...]:
    """The argv prefix that runs the shim inside before the command."""
    return (python, "-I", "-S", f"{inside_dir}/shim.py", "--socket", f"{inside_dir}/{sock_name}",
            "--listen", f"127.0.0.1:{port}", "--")


class Handoff:
    """Waits (in a thread) for the shim's socket in `dir`/`sock_name` and gives it to `serve`.

    `serve` raising, or a socket that is not a TCP listener, answers the shim "E": the command
    then never runs (the shim exits 125)."""

    def __init__(self, dir: Path, sock_name: str, serve: Callable[[socket.socket], None], *,
                 what: str) -> None:
        self.dir = dir
        self._path = dir / sock_name
        try:
            shutil.copyfile(SHIM, dir / "shim.py")
            (dir / "shim.py").chmod(0o644)
            self._control = bind_unix(self._path)
            sandbox_only(self._path)
            self._control.listen(1)
        except OSError as exc:
            shutil.rmtree(dir, ignore_errors=True)
            raise EnforcementError(
                f"cannot set up the {what} in {dir}: {exc}",
                hint="check free space and permissions of the state directory",
            ) from exc
        self._serve = serve
        self.attached = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._attach, name=f"sandbox-{sock_name}", daemon=True)
        self._thread.start()

    def _attach(self) -> None:
        try:
            conn, _ = self._control.accept()
        except OSError:
            return  # stop() before the sandbox started
        with conn:
            try:
                conn.settimeout(_ATTACH_TIMEOUT)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 4)
                listener = _valid_listener(fds[0]) if len(fds) == 1 else None
                for extra in fds[1:] if listener else fds:
                    os.close(extra)
                if listener is not None:
                    try:
                        self._serve(listener)
                        self.attached.set()
                    except Exception as exc:  # reported to the caller; the shim refuses to run
                        self.errors.append(exc)
                conn.sendall(b"K" if self.attached.is_set() else b"E")
            except OSError:
                pass
            finally:
                self._close_control()

    def _close_control(self) -> None:
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)  # wakes a pending accept()
        self._control.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def stop(self) -> None:
        """Close the control channel and wait for the hand-off thread. Idempotent."""
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        self._thread.join(_ATTACH_TIMEOUT)
