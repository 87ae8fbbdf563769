"""Is the process that holds a run still alive? Lost runs, and stopping a run from elsewhere.

A run records its launcher (the `sandbox run` process): its pid and a moment just after it
started, so a process that reuses the pid later is never taken for it. A run still recorded
`running` whose launcher is gone (SIGKILL, a crash, a power cut) is marked `lost` by the next
invocation; its sandbox died with the launcher (the backend ties it to its parent's life), and
a Docker container left behind is removed.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from sandbox.audit import AuditEvent
from sandbox.store import RunRecord, RunStatus

if TYPE_CHECKING:
    from sandbox.audit import AuditLog
    from sandbox.store import Store

__all__ = ["alive", "launcher_identity", "reap_lost", "stop_run"]


# psutil's create_time is derived from the boot time, which the kernel gives in whole seconds.
_CLOCK_SLACK_S = 1.5


def launcher_identity() -> tuple[int, float]:
    """(pid, a moment after its start) of this process. psutil is not imported here: this is
    on every run's path, and the check below needs only an upper bound of the start time (a
    process that reuses the pid later was necessarily created after this moment)."""
    return os.getpid(), time.time()


def alive(run: RunRecord) -> bool:
    """Whether the run's launcher is still the process that started it."""
    if run.launcher_pid is None:
        return False  # recorded before launchers were kept: nothing holds it any more
    import psutil

    try:
        proc = psutil.Process(run.launcher_pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.Error:
        return False
    return run.launcher_start is None or created <= run.launcher_start + _CLOCK_SLACK_S


def reap_lost(store: Store, audit: AuditLog) -> list[RunRecord]:
    """Mark runs whose launcher died as lost (one indexed query when there are none)."""
    lost: list[RunRecord] = []
    for run in store.running_runs():
        if run.launcher_pid == os.getpid() or alive(run):
            continue
        lost.append(store.finish_run(run.id, status=RunStatus.LOST, exit_code=None,
                                     summary={"notes": ["lost: its `sandbox run` process died "
                                                        "without recording the end"]}))
        audit.append(AuditEvent.RUN_FINISHED, run=run.id, session=run.session_id,
                     data={"status": RunStatus.LOST.value, "launcher_pid": run.launcher_pid})
    if any(r.backend == "docker" for r in lost):
        _reap_docker()
    return lost


def _reap_docker() -> None:
    """Containers whose owning `sandbox run` died go (the Docker backend labels its owner)."""
    from sandbox.errors import SandboxError

    try:
        from sandbox.backends._docker import reap_lost_containers

        reap_lost_containers()
    except (ImportError, SandboxError, OSError):
        pass  # no daemon now: the next Docker run reaps them


def stop_run(run: RunRecord, *, grace_s: float = 5.0) -> bool:
    """Ask the run's launcher to stop it (SIGTERM: recorded as cancelled, changes kept);
    wait until it is gone. False if it was not running any more."""
    if run.status is not RunStatus.RUNNING or not alive(run):
        return False
    assert run.launcher_pid is not None
    import psutil

    try:
        proc = psutil.Process(run.launcher_pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except psutil.TimeoutExpired:
        proc.kill()  # it did not stop: its sandbox dies with it (parent-death signal)
        time.sleep(0.05)
    except psutil.NoSuchProcess:
        pass
    return True
