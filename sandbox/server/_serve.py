"""Running `sandbox serve` in the foreground: the signing key, the listener, uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from sandbox._home import HomeLayout
from sandbox.audit import AuditLog
from sandbox.audit._sign import SigningKey
from sandbox.errors import UsageError
from sandbox.server._app import Server
from sandbox.server._checkpoint import Checkpointer
from sandbox.server._forward import parse_forward
from sandbox.server._listen import Listen, parse_listen
from sandbox.server._sender import Sender, cursor_path
from sandbox.server._tokens import TokenStore

if TYPE_CHECKING:
    from sandbox.gateway._app import Gateway

__all__ = ["ServeOptions", "default_key_path", "serve", "token_store"]


def serve_dir(layout: HomeLayout) -> Path:
    return layout.root / "serve"


def token_store(layout: HomeLayout) -> TokenStore:
    return TokenStore(serve_dir(layout) / "tokens.json")


def default_key_path(layout: HomeLayout) -> Path:
    return serve_dir(layout) / "audit-key"


@dataclass(frozen=True)
class ServeOptions:
    listen: str | None = None
    allow_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    audit_key: Path | None = None
    forward: Sequence[str] = ()
    interval: float = 1.0
    gateway_config: Path | None = None


def _unix_socket(path: Path) -> socket.socket:
    """A listening unix socket only its owner can connect to (0600 in a 0700 directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()  # a stale socket from a server that died
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no window in which the socket is reachable by others
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on unix:{path}: {exc.strerror}") from exc
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _gateway(opts: ServeOptions, layout: HomeLayout) -> Gateway | None:
    """The LLM gateway, hosted at /llm, when a gateway config is found (as `gateway serve`
    finds it: --gateway-config, $SANDBOX_GATEWAY_CONFIG, $SANDBOX_HOME/gateway.toml, /etc)."""
    from sandbox.gateway import find_config
    from sandbox.gateway._app import Gateway
    from sandbox.gateway._config import load_config

    path = find_config(str(opts.gateway_config) if opts.gateway_config else None)
    if path is None:
        return None
    return Gateway(load_config(path), layout.root)


def _hosts(where: Listen) -> tuple[str, ...]:
    """Host header values a client of this listener sends (MCP's DNS-rebinding check)."""
    if where.unix is not None:
        return ("localhost",)
    names = {where.host, "localhost"} if where.loopback else {where.host}
    return tuple(f"{n}:{where.port}" for n in sorted(names))


def _check_listen(where: Listen, opts: ServeOptions) -> None:
    if where.loopback:
        return
    if not opts.allow_remote:
        raise UsageError(f"refusing to listen on {where}, which is not loopback",
                         hint="pass --allow-remote with --tls-cert and --tls-key")
    if opts.tls_cert is None or opts.tls_key is None:
        raise UsageError(f"listening on {where} needs TLS: pass --tls-cert and --tls-key")


def serve(opts: ServeOptions, layout: HomeLayout) -> int:
    where = parse_listen(opts.listen or f"unix:{serve_dir(layout) / 'serve.sock'}")
    _check_listen(where, opts)
    log = AuditLog(layout.audit)
    senders = [Sender(parse_forward(t), log, cursor_path(serve_dir(layout) / "forward", t))
               for t in opts.forward]
    key = SigningKey.load_or_create(opts.audit_key or default_key_path(layout))
    checkpointer = Checkpointer(log, key)
    checkpointer.start()
    server = Server(layout, checkpointer, token_store(layout), socket_owner=where.unix is not None,
                    interval=opts.interval, gateway=_gateway(opts, layout),
                    hosts=_hosts(where), senders=senders)
    tls = opts.tls_cert is not None and opts.tls_key is not None
    config = uvicorn.Config(
        server.app(), host=where.host or "127.0.0.1", port=where.port, log_level="warning",
        access_log=False, lifespan="on",
        # Event streams never end on their own: give requests in flight a moment, then stop.
        timeout_graceful_shutdown=3,
        ssl_certfile=str(opts.tls_cert) if tls else None,
        ssl_keyfile=str(opts.tls_key) if tls else None)
    userver = uvicorn.Server(config)
    sockets = [_unix_socket(where.unix)] if where.unix is not None else None
    # uvicorn re-raises SIGINT/SIGTERM to the handler it found after a graceful shutdown: make
    # that a no-op so the final checkpoint is written and the exit status says it was clean.
    quiet = {s: signal.signal(s, lambda _s, _f: None) for s in (signal.SIGINT, signal.SIGTERM)}
    scheme = "https" if tls else "http"
    shown = str(where) if where.unix is not None else f"{scheme}://{where}"
    if server.gateway is not None:
        shown += " (LLM gateway at /llm)"
    print(f"sandbox serve: listening on {shown}; audit signing key {key.id} "
          f"({key.path}, public half {key.public_path})", file=sys.stderr, flush=True)
    try:
        userver.run(sockets=sockets)
    finally:
        for s, handler in quiet.items():
            signal.signal(s, handler)
        if where.unix is not None:
            where.unix.unlink(missing_ok=True)
    return 0 if userver.started else 125
