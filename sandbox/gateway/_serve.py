"""Running the gateway: in the foreground (`gateway serve`), or embedded in a thread for one run.

The foreground server re-reads its config and credentials on SIGHUP (`gateway reload` sends
it): a bad new config is reported and the old one kept, so a typo never takes the gateway down.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from sandbox.errors import SandboxError, StateError, UsageError
from sandbox.gateway._app import Gateway
from sandbox.gateway._config import Config, ConfigError, load_config
from sandbox.gateway._tools import ToolGate

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["EmbeddedGateway", "parse_listen", "pid_file", "serve", "signal_reload"]


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pid_file(home: Path) -> Path:
    return home / "gateway" / "serve.pid"


def _uvicorn_config(app: Starlette, host: str = "127.0.0.1", port: int = 0,
                    tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    # Graceful shutdown waits for in-flight streams (agents' turns can take minutes). uvloop and
    # httptools (dependencies) serve it; no per-request work the gateway does not use: no
    # access log, no X-Forwarded-* rewriting (nothing reads the client's address), no Server
    # header.
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          loop="uvloop", http="httptools", proxy_headers=False, server_header=False,
                          lifespan="on", timeout_graceful_shutdown=600,
                          ssl_certfile=str(tls[0]) if tls else None,
                          ssl_keyfile=str(tls[1]) if tls else None)


def serve(config_path: Path | None, listen: str | None, allow_remote: bool, home: Path) -> int:
    cfg = load_config(config_path)
    host, port = parse_listen(listen or cfg.listen)
    if not _loopback(host):
        if not (allow_remote or cfg.allow_remote):
            raise UsageError(
                f"refusing to listen on {host}, which is not loopback",
                hint="pass --allow-remote (and configure gateway.tls_cert/tls_key)",
            )
        if cfg.tls_cert is None or cfg.tls_key is None:
            raise ConfigError(f"listening on {host} needs TLS: set gateway.tls_cert and gateway.tls_key")
    gw = Gateway(cfg, home)

    def reload(_sig: int, _frame: FrameType | None) -> None:
        try:
            gw.reload(load_config(config_path))
            print("sandbox gateway: configuration reloaded", file=sys.stderr)
        except SandboxError as exc:
            print(f"sandbox gateway: reload failed, keeping the old config: {exc}", file=sys.stderr)

    tls = (cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
    server = uvicorn.Server(_uvicorn_config(gw.app(), host, port, tls))
    pid = pid_file(home)
    pid.write_text(f"{os.getpid()}\n")
    old = signal.signal(signal.SIGHUP, reload)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM (in-flight streams finish), then re-raises
    # the signal to the handler it found: make that a no-op so the cleanup below runs and the
    # exit status says the shutdown was clean.
    quiet = {sig: signal.signal(sig, lambda _s, _f: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheme = "https" if tls else "http"
    print(f"sandbox gateway: listening on {scheme}://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGHUP, old)
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        pid.unlink(missing_ok=True)
        gw.recorder.close()
        gw.keys.close()
    return 0 if server.started else 125


def signal_reload(home: Path) -> int:
    path = pid_file(home)
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError) as exc:
        raise StateError(f"no running gateway ({path} is missing or stale)") from exc
    if b"gateway" not in cmdline:
        raise StateError(f"no running gateway (pid {pid} in {path} is something else)")
    os.kill(pid, signal.SIGHUP)
    return pid


@dataclass
class EmbeddedGateway:
    """A gateway serving on `sock` from a thread of this process, for the length of one run."""

    gateway: Gateway
    server: uvicorn.Server
    thread: threading.Thread

    @classmethod
    def start(cls, cfg: Config, home: Path, sock: socket.socket,
              gate: ToolGate | None = None) -> EmbeddedGateway:
        gw = Gateway(cfg, home)
        gw.gate = gate
        server = uvicorn.Server(_uvicorn_config(gw.app()))
        errors: list[BaseException] = []

        def main() -> None:
            try:
                # uvicorn's own loop (uvloop), as `serve` has it.
                asyncio.run(server.serve(sockets=[sock]), loop_factory=server.config.get_loop_factory())
            except BaseException as exc:  # reported by start(); the thread must not die silently
                errors.append(exc)

        thread = threading.Thread(target=main, name="gateway", daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            thread.join(0.005)
        if not server.started:
            raise StateError(f"the embedded LLM gateway did not start: {errors[:1]}")
        return cls(gw, server, thread)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.gateway.recorder.close()
        self.gateway.keys.close()


def gateway_env(url: str, key: str) -> Mapping[str, str]:
    """What a client needs to use the gateway: the variables `run --llm` sets in the sandbox."""
    base = url.rstrip("/")
    return {
        "ANTHROPIC_BASE_URL": f"{base}/anthropic",
        "ANTHROPIC_API_KEY": key,
        "OPENAI_BASE_URL": f"{base}/openai/v1",
        "OPENAI_API_KEY": key,
    }
