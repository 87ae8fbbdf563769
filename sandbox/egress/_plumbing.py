"""Per-run egress plumbing: the proxy, its unix control socket, the shim, env and mounts.

`start()` returns an `EgressHandle` the run flow turns into `LaunchSpec.extra_mounts`,
`env` and `wrapper`. The handle's dir (bind-mounted read-only at /run/sandbox-egress; on the
host `run_dir/egress`, or /run/sandbox-egress/<run>-<random> as root, see `_egress_dir`) holds
`shim.py` and `proxy.sock`. The shim, first inside, passes its listening socket to the proxy
over `proxy.sock`; the proxy accepts exactly one such hand-off, then closes and unlinks
`proxy.sock`, so the sandboxed command cannot talk to the control channel at all. One handle
serves one launch: a second launch with the same handle fails closed (exit 125).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sandbox.backends._base import BindMount
from sandbox.egress._events import EgressEvent, Verdict
from sandbox.egress._handoff import Handoff, shim_wrapper
from sandbox.egress._proxy import AskHook, EgressProxy, ProxyConfig
from sandbox.egress._resolve import Resolver, default_resolver, host_addresses
from sandbox.egress._rules import EgressPolicy, IPAddress
from sandbox.errors import EnforcementError

INSIDE_DIR = "/run/sandbox-egress"
RUNTIME_BASE = Path("/run/sandbox-egress")  # host side, root only (see _egress_dir)
DEFAULT_PORT = 3128
DEFAULT_PYTHON = "/usr/bin/python3"


def _egress_dir(run_dir: Path, run_id: str) -> Path:
    """Where the shim and control socket live: a bind-mount source nsjail can reach.

    nsjail bind-mounts from inside the sandbox's user namespace, as the sandbox's outside uid.
    Unprivileged, that is the caller, who can walk to `run_dir`. As root, the sandbox maps to
    an unprivileged uid that cannot cross the 0700 state dir, so the dir goes under
    /run/sandbox-egress (0711: traversable, not listable) with an unguessable name.
    """
    if os.geteuid() != 0:
        path = run_dir / "egress"
        path.mkdir(parents=True, exist_ok=False)
    else:
        base = RUNTIME_BASE
        with contextlib.suppress(FileExistsError):
            base.mkdir(mode=0o711)
        st = os.lstat(base)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise EnforcementError(
                f"{base} is not a root-owned directory writable only by root",
                hint=f"remove {base}; the sandbox recreates it",
            )
        base.chmod(0o711)
        path = base / f"{run_id}-{os.urandom(8).hex()}"
        path.mkdir(mode=0o711)
    path.chmod(0o711)  # the sandbox's uid, whatever it is, must reach the socket and shim
    return path


class EgressHandle:
    """The running egress plumbing of one run. Use as a context manager, or call stop()."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        run_id: str,
        run_dir: Path,
        on_event: Callable[[EgressEvent], None],
        resolver: Resolver,
        ask: AskHook | None,
        port: int,
        python: str,
        addresses: frozenset[IPAddress],
    ) -> None:
        self.run_id = run_id
        try:
            self.dir = _egress_dir(run_dir, run_id)
        except OSError as exc:
            raise EnforcementError(
                f"cannot create the egress dir for run {run_id}: {exc}",
                hint="check free space and permissions of the state directory",
            ) from exc
        self._stopped = False
        self._proxy = EgressProxy(ProxyConfig(run_id, policy, resolver, addresses, ask), on_event=on_event)
        self._handoff = Handoff(self.dir, "proxy.sock", self._proxy.serve, what="egress proxy")
        url = f"http://127.0.0.1:{port}"
        self.proxy_url = url
        self.env: dict[str, str] = {
            **{k: url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            **{k.lower(): url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            "NO_PROXY": "",
            "no_proxy": "",
        }
        self.mounts: tuple[BindMount, ...] = (BindMount(self.dir, INSIDE_DIR, rw=False),)
        self.wrapper: tuple[str, ...] = shim_wrapper(python, INSIDE_DIR, "proxy.sock", port)

    def wait_attached(self, timeout: float | None = None) -> bool:
        """True once the sandbox's listening socket is being served."""
        return self._handoff.attached.wait(timeout)

    @property
    def attached(self) -> bool:
        return self._handoff.attached.is_set()

    def events(self) -> tuple[EgressEvent, ...]:
        return self._proxy.events()

    def denied(self) -> tuple[EgressEvent, ...]:
        return tuple(e for e in self.events() if e.verdict is Verdict.DENIED)

    def callback_errors(self) -> tuple[BaseException, ...]:
        """Exceptions raised by `on_event` (e.g. the audit writer); the run should fail."""
        return self._proxy.callback_errors()

    def live_connections(self) -> int:
        return self._proxy.live_connections()

    def stop(self) -> None:
        """Kill every connection, stop serving, remove the egress dir. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._handoff.stop()
        self._proxy.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EgressHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    policy: EgressPolicy,
    *,
    run_id: str,
    run_dir: Path,
    on_event: Callable[[EgressEvent], None] | None = None,
    resolver: Resolver | None = None,
    ask: AskHook | None = None,
    port: int = DEFAULT_PORT,
    python: str = DEFAULT_PYTHON,
    addresses: frozenset[IPAddress] | None = None,
) -> EgressHandle:
    """Start the egress proxy of one run. `on_event` is called once per decision, serially,
    from proxy threads; `ask(host, port)` (level 1 with a terminal) is consulted for hosts not
    in the allowlist; `resolver` defaults to the system resolver, or the hosts-format file
    named by $SANDBOX_EGRESS_HOSTS. `addresses` are the host's own (default: read from /proc)."""
    return EgressHandle(
        policy,
        run_id=run_id,
        run_dir=run_dir,
        on_event=on_event or (lambda _e: None),
        resolver=resolver or default_resolver(),
        ask=ask,
        port=port,
        python=python,
        addresses=host_addresses() if addresses is None else addresses,
    )
