"""Egress shim: the first program of an egress-enabled sandbox (stdlib only, Python >= 3.9).

Runs inside the sandbox's network namespace, before the command. It creates the proxy's
listening TCP socket on the sandbox loopback, hands that socket to the proxy on the host over
the bind-mounted unix socket (SCM_RIGHTS), waits for the proxy to acknowledge, then execs the
command, which becomes the main process: same pid, exit status and signals. If any step fails
the command never runs (exit 125): no proxy, no network. This file is copied into the run's
egress dir and run as `python3 -I -S shim.py --socket PATH --listen HOST:PORT -- CMD...`.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # C modules: socket/signal.py cost ~7 ms
import _socket
import os
import sys

TYPE_CHECKING = False  # no `typing` import at run time: it is on every sandboxed call's path
if TYPE_CHECKING:
    from typing import NoReturn


def _fail(message: str, code: int = 125) -> NoReturn:
    sys.stderr.write(f"sandbox: egress: {message}\n")
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> None:
    try:
        sep = argv.index("--")
        opts, cmd = argv[:sep], argv[sep + 1 :]
        sock_path = opts[opts.index("--socket") + 1]
        host, _, port = opts[opts.index("--listen") + 1].rpartition(":")
    except (ValueError, IndexError):
        _fail("usage: shim.py --socket PATH --listen HOST:PORT -- COMMAND [ARG...]", 2)
    if not cmd:
        _fail("no command given", 2)
    try:
        listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(1024)
        ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        ctl.settimeout(10)
        ctl.connect(sock_path)
        fd = listener.fileno().to_bytes(4, sys.byteorder)  # struct cmsghdr's int[1]
        ctl.sendmsg([b"L"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd)])
        ack = ctl.recv(1)
        ctl.close()
        listener.close()  # the proxy holds its own reference now
    except OSError as exc:
        _fail(f"cannot attach the egress proxy ({exc}); refusing to run without it")
    if ack != b"K":
        _fail("the egress proxy refused the listening socket; refusing to run")
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec, so restore them.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        _fail(f"{cmd[0]}: command not found", 127)
    except OSError as exc:
        _fail(f"{cmd[0]}: {exc.strerror}", 126)


if __name__ == "__main__":
    main(sys.argv[1:])
