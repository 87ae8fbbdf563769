"""`sandbox run --llm`: a virtual key for the run, and the gateway reachable from inside.

The sandbox keeps its loopback-only network. As with the egress proxy, a shim inside (the
egress shim itself: it is generic) creates a listening socket on the sandbox's loopback and
hands it to the host over a one-shot unix socket; the host serves the gateway on it — the
in-process gateway directly, or a relay to the configured gateway URL. So the gateway is the
only destination this adds, the clients inside need no proxy support, and the only credential
inside is the run's virtual key (revoked when the run ends, with a TTL as a backstop).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.backends._base import BindMount
from sandbox.egress._handoff import Handoff, shim_wrapper
from sandbox.egress._plumbing import DEFAULT_PYTHON, _egress_dir
from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.backends._base import LaunchSpec
    from sandbox.gateway._tools import ToolGate
    from sandbox.policy import Policy

__all__ = ["INSIDE_PORT", "attach_llm"]

INSIDE_DIR = "/run/sandbox-llm"
INSIDE_PORT = 8787
_DEFAULT_TTL_S = 24 * 3600.0


class _Relay:
    """Forwards each connection on `listener` to the gateway at (host, port), byte for byte."""

    def __init__(self, listener: socket.socket, target: tuple[str, int]) -> None:
        self.listener, self.target = listener, target
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="sandbox-llm-relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(self.target, timeout=10)
                outside.settimeout(None)
            except OSError:
                inside.close()
                continue
            with self._lock:
                self._conns |= {inside, outside}
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for c in self._conns:
                c.close()


def _relay_target(url: str) -> tuple[tuple[str, int], str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"[llm] gateway {url!r}: expected an http://HOST:PORT[/PREFIX] URL "
                         "(TLS gateways are reached through --allow)")
    return (parts.hostname, parts.port or 80), parts.path.rstrip("/")


def attach_llm(stack: contextlib.ExitStack, spec: LaunchSpec, *, home: Path, policy: Policy,
               run_id: str, session_id: str, tools: ToolGate | None = None) -> LaunchSpec:
    """Mint the run's key, start (or reach) the gateway, and bridge it into `spec`.

    `tools`: the key may offer the model only these tools (enforced by whichever gateway serves
    the key); the in-process gateway also refuses any tools before `tools.ready()`, and reports
    each refusal to `tools.on_refused` as it happens.
    A configured gateway URL is reached through a byte relay, which tells no one: there the
    audit log's `llm.blocked` records are the only word of a refusal."""
    from sandbox.gateway._config import find_config, load_config
    from sandbox.gateway._keys import KeyStore
    from sandbox.gateway._serve import gateway_env

    url = policy.llm_gateway or os.environ.get("SANDBOX_GATEWAY_URL") or None
    target, prefix = _relay_target(url) if url else (None, "")
    cfg = None if url else load_config(find_config(None))  # a bad config stops the run here

    store = KeyStore.at_home(home)
    stack.callback(store.close)
    budget = policy.llm_budget_usd
    if budget is not None:  # the policy's budget is per session: what earlier runs left
        budget = max(0.0, budget - store.spent(f"session:{session_id}"))
    ttl = (policy.limits.timeout_s + 300) if policy.limits.timeout_s else _DEFAULT_TTL_S
    secret, key = store.create(label=f"run {run_id}", budget_usd=budget, ttl_s=ttl,
                               models=policy.llm_models, session=session_id, run=run_id,
                               tools=tools.restriction if tools is not None else None)
    stack.callback(store.revoke, key.id)

    def serve(listener: socket.socket) -> None:
        if cfg is not None:
            from sandbox.gateway._serve import EmbeddedGateway

            embedded = EmbeddedGateway.start(cfg, home, listener, tools)
            stack.callback(embedded.close)
        else:
            assert target is not None
            stack.callback(_Relay(listener, target).close)

    (spec.scratch / "llm").mkdir(parents=True, exist_ok=True)
    handoff = Handoff(_egress_dir(spec.scratch / "llm", f"{run_id}-llm"), "gateway.sock", serve,
                      what="LLM gateway hand-off")
    stack.callback(shutil.rmtree, handoff.dir, ignore_errors=True)
    stack.callback(handoff.stop)
    env = dict(gateway_env(f"http://127.0.0.1:{INSIDE_PORT}{prefix}", secret))
    # The gateway is on the sandbox's own loopback: never through the egress proxy.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return replace(spec, env={**spec.env, **env},
                   extra_mounts=(*spec.extra_mounts, BindMount(handoff.dir, INSIDE_DIR, rw=False)),
                   wrapper=(*shim_wrapper(DEFAULT_PYTHON, INSIDE_DIR, "gateway.sock", INSIDE_PORT),
                            *spec.wrapper))
