"""The Docker backend: the same contract as nsjail, through the Docker Engine API.

Per call: reap what a killed earlier run left behind, stage the snapshot overlay on the host,
create the container (config from _docker_config), attach its output, start it, wait (killing
it at the time limit), then -- always, also on Ctrl-C or an error -- remove the container and
unstage the overlay. Nothing of a run outlives it.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.backends import _docker_lifeline
from sandbox.backends._base import LaunchResult, LaunchSpec
from sandbox.backends._docker_client import DaemonInfo, connect, daemon_info
from sandbox.backends._docker_config import (
    LABEL_BACKEND,
    LABEL_OWNER,
    Identity,
    container_config,
    host_view_tag,
    host_view_tar,
    init_binary,
)
from sandbox.backends._docker_stage import (
    owner_is_gone,
    owner_token,
    reap_stale,
    stage_overlay,
    unstage,
)
from sandbox.backends._docker_watch import UsageSampler
from sandbox.backends._watch import write_watcher
from sandbox.errors import EXIT_TIMEOUT, BackendError, EnforcementError

if TYPE_CHECKING:
    from docker import DockerClient

_STOP_GRACE_S = 0.5  # a signal to `sandbox run` stops the sandbox within a second
_WAIT_CHUNK_S = 300  # one HTTP wait call; re-issued until the container ends


@dataclass(frozen=True)
class Captured:
    stdout: bytes
    stderr: bytes
    truncated: bool


class DockerBackend:
    name = "docker"

    def __init__(self, *, capture: bool = False, client: DockerClient | None = None) -> None:
        self._capture = capture
        self._client = client
        self._info: DaemonInfo | None = None
        self.captured: Captured | None = None

    def _connect(self) -> tuple[DockerClient, DaemonInfo]:
        if self._client is None:
            self._client = connect()
        if self._info is None:
            self._info = daemon_info(self._client)
        return self._client, self._info

    def check(self) -> None:
        if os.geteuid() != 0:
            raise EnforcementError("the docker backend stages the workspace overlay as root",
                                   hint="run sandbox as root, or use the nsjail backend")
        _, info = self._connect()
        if not info.seccomp:
            raise EnforcementError(f"the Docker daemon ({info.version}) has no seccomp support",
                                   hint="use a daemon built with seccomp (Debian's docker.io)")

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        if spec.user != "root":  # the staged workspace belongs to the remapped root
            raise EnforcementError(f"--user {spec.user}: the docker backend runs commands as "
                                   "root inside (never root outside)",
                                   hint="use the nsjail backend for an unprivileged user inside")
        if spec.tracer:  # the container's processes are dockerd's children, not ours
            raise EnforcementError("the docker backend cannot trace a command's system calls",
                                   hint="profile test/record need the nsjail backend")
        self.check()
        client, info = self._connect()
        reap_stale()
        reap_containers(client)
        image, host_view = self._image(client, spec)
        spec.scratch.mkdir(parents=True, exist_ok=True)
        owner = owner_token(os.getpid())
        started = time.monotonic()
        relay_in = _relay_stdin()
        stage = stage_overlay(spec.snapshot, spec.scratch)
        cid: str | None = None
        try:
            config = container_config(spec, image=image, workspace_src=stage.workspace,
                                      identity=Identity.for_daemon(info.userns_root),
                                      host_view=host_view, owner=owner, init=init_binary(),
                                      honours_default_errno=info.honours_default_errno,
                                      stdin=relay_in)
            cid = _create(client, config)
            lifeline = _docker_lifeline.start(cid)
            try:
                return self._run(client, cid, spec, started, relay_in)
            finally:
                _docker_lifeline.stop(lifeline)
        finally:
            if cid is not None:
                _remove(client, cid)
            unstage(stage)

    def _image(self, client: DockerClient, spec: LaunchSpec) -> tuple[str, Path | None]:
        """(docker image, host root to bind system dirs from or None)."""
        if spec.image_root is None:
            return ensure_host_view(client), Path("/")
        from sandbox.images import ensure_docker_image, record_for_rootfs

        rec = record_for_rootfs(spec.image_root)
        if rec is None:
            raise EnforcementError(f"{spec.image_root} is not a built sandbox image",
                                   hint="sandbox image build NAME; then --image NAME")
        return ensure_docker_image(client, rec, spec.image_root), None

    def _run(self, client: DockerClient, cid: str, spec: LaunchSpec, started: float,
             relay_in: bool) -> LaunchResult:
        from docker.errors import DockerException

        cap = spec.limits.output_bytes
        out_buf: list[bytes] = []
        err_buf: list[bytes] = []
        try:
            sock = client.api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1,
                                                         "stdin": int(relay_in)})
        except DockerException as exc:
            raise _start_error(exc) from exc
        pump = _pump(sock, out_buf if self._capture else None, err_buf if self._capture else None,
                     cap, relay_stdout=not self._capture)
        if relay_in:
            _feed_stdin(sock)

        def kill(sig: str = "SIGKILL") -> None:
            with suppress(DockerException):
                client.api.kill(cid, signal=sig)

        sampler = UsageSampler(cid)
        watcher = write_watcher(spec.snapshot.upper, spec.limits.write_bytes, kill)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            kill()

        timer = None if spec.limits.timeout_s is None else threading.Timer(
            spec.limits.timeout_s, on_timeout)
        try:
            # Ctrl-C can land while `start` is still in flight (the command may already be
            # printing): the whole stretch from here on forwards it to the command.
            try:
                client.api.start(cid)
            except DockerException as exc:
                raise _start_error(exc) from exc
            sampler.start()
            watcher.start()
            if timer is not None:
                timer.daemon = True
                timer.start()
            status = _wait(client, cid)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Cancelled)
            # to pid 1 (tini), which passes it to the command's group; SIGKILL after the grace
            kill(signal.Signals(getattr(exc, "signum", signal.SIGINT)).name)
            _wait(client, cid, limit_s=_STOP_GRACE_S, on_limit=kill)
            raise  # the runner records the run as cancelled; `launch` removes the container
        finally:
            if timer is not None:
                timer.cancel()
            watcher.stop()
            sampler.stop()
        pump.join(timeout=5)
        if self._capture:
            self.captured = Captured(b"".join(out_buf), b"".join(err_buf),
                                     truncated=cap is not None and sum(map(len, out_buf)) >= cap)
        duration_ms = int((time.monotonic() - started) * 1000)
        usage = sampler.result()
        if timed_out.is_set():
            code, sig = EXIT_TIMEOUT, None
        else:
            code = status
            sig = status - 128 if 128 < status < 128 + 65 else None
        return LaunchResult(exit_code=code, timed_out=timed_out.is_set(), signal=sig,
                            duration_ms=duration_ms, cpu_ms=usage.cpu_ms,
                            peak_memory_kb=usage.peak_memory_kb,
                            write_limit_hit=watcher.hit, oom_killed=_oom_killed(client, cid))


def ensure_host_view(client: DockerClient) -> str:
    """The skeleton image of the `host` view, imported once per host layout."""
    from docker.errors import DockerException, ImageNotFound

    tar = host_view_tar(Path("/"))
    ref = host_view_tag(tar)
    try:
        client.api.inspect_image(ref)  # type: ignore[no-untyped-call]
        return ref
    except ImageNotFound:
        pass
    repo, tag = ref.split(":", 1)
    try:
        client.api.import_image_from_data(tar, repository=repo, tag=tag)
    except DockerException as exc:
        raise BackendError(f"could not import the host-view skeleton image: {exc}") from exc
    return ref


def _oom_killed(client: DockerClient, cid: str) -> bool:
    """Docker records the container cgroup's OOM kill in its state."""
    from docker.errors import DockerException

    try:
        state = client.api.inspect_container(cid).get("State") or {}
    except DockerException:
        return False
    return bool(state.get("OOMKilled"))


def reap_lost_containers() -> int:
    """For runs found lost (their `sandbox run` was SIGKILLed): remove what they left behind."""
    reap_stale()
    return reap_containers(connect())


def reap_containers(client: DockerClient) -> int:
    """Remove sandbox containers whose owner process is gone (a run killed with SIGKILL)."""
    from docker.errors import DockerException

    try:
        found = client.api.containers(all=True, filters={"label": LABEL_BACKEND})
    except DockerException:
        return 0
    reaped = 0
    for c in found:
        owner = str((c.get("Labels") or {}).get(LABEL_OWNER, ""))
        if not owner_is_gone(owner):
            continue
        _remove(client, str(c["Id"]))
        reaped += 1
    return reaped


def _create(client: DockerClient, config: dict[str, Any]) -> str:
    from docker.errors import DockerException

    try:
        created = client.api.create_container_from_config(config)  # type: ignore[no-untyped-call]
    except DockerException as exc:
        raise _start_error(exc) from exc
    return str(created["Id"])


def _remove(client: DockerClient, cid: str, *, give_up_s: float = 10.0) -> None:
    """Remove the container, retrying while the engine says it cannot yet ("removal already in
    progress", a busy daemon); gone already is done. If it still cannot, say so: the next
    sandbox command reaps it (its owner is gone by then), never silently."""
    from docker.errors import DockerException, NotFound
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, DockerException) and not isinstance(exc, NotFound)

    try:
        for attempt in Retrying(retry=retry_if_exception(transient), reraise=True,
                                stop=stop_after_delay(give_up_s),
                                wait=wait_exponential(multiplier=0.05, max=1.0)):
            with attempt:
                try:
                    client.api.remove_container(cid, force=True, v=True)
                except NotFound:
                    return
    except DockerException as exc:
        print(f"sandbox: could not remove container {cid[:12]}: {exc}; the next sandbox "
              "command removes it", file=sys.stderr)


def _wait(client: DockerClient, cid: str, *, limit_s: float | None = None,
          on_limit: Callable[[], None] | None = None) -> int:
    """The container's exit status. The HTTP wait is re-issued so that no client timeout
    ends it early; the time limit itself is enforced by the timer in `_run`."""
    from docker.errors import DockerException
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    deadline = None if limit_s is None else time.monotonic() + limit_s
    while True:
        chunk = _WAIT_CHUNK_S if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            res = client.api.wait(cid, timeout=max(1, math.ceil(chunk)))
            return int(res.get("StatusCode", 255))
        except (ReadTimeout, RequestsConnectionError):
            if deadline is not None and time.monotonic() >= deadline and on_limit is not None:
                on_limit()
                deadline, on_limit = None, None
        except DockerException as exc:
            raise BackendError(f"lost the container while waiting for it: {exc}") from exc


def _relay_stdin() -> bool:
    """Relay our stdin when it is a pipe or a file, as nsjail's inherited stdin would give it.
    A terminal is not relayed (the container has no tty; a person's keys belong to the
    review prompts), and neither is /dev/null."""
    try:
        st = os.fstat(0)
    except OSError:
        return False
    if os.isatty(0):
        return False
    return stat.S_ISFIFO(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size > 0) or \
        stat.S_ISSOCK(st.st_mode)


def _feed_stdin(sock: Any) -> None:
    """Copy fd 0 into the attach socket, then half-close it: the command reads EOF."""
    raw = getattr(sock, "_sock", sock)

    def run() -> None:
        try:
            while chunk := os.read(0, 65536):
                raw.sendall(chunk)
        except OSError:
            pass  # the container went away, or the command closed its stdin
        with suppress(OSError):
            raw.shutdown(socket.SHUT_WR)

    threading.Thread(target=run, daemon=True).start()


def _start_error(exc: Exception) -> EnforcementError:
    text = str(exc)
    return EnforcementError(f"docker could not start the sandbox: {text[:400]}",
                            hint="run `sandbox doctor`; the daemon log says more")


def _pump(sock: Any, out_keep: list[bytes] | None, err_keep: list[bytes] | None,
          cap: int | None, *, relay_stdout: bool) -> threading.Thread:
    """Relay the attached, multiplexed stdout/stderr live; keep up to `cap` bytes of each."""
    from docker.utils.socket import frames_iter

    def run() -> None:
        kept = {1: 0, 2: 0}
        try:
            for stream, data in frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
                if not data:
                    continue
                fd = 2 if stream == 2 else 1
                if fd == 2 or relay_stdout:
                    with suppress(OSError):
                        os.write(fd, data)
                keep = err_keep if fd == 2 else out_keep
                if keep is not None and (cap is None or kept[fd] < cap):
                    piece = data if cap is None else data[: cap - kept[fd]]
                    keep.append(piece)
                    kept[fd] += len(piece)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sock.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


