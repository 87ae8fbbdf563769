"""A docker run's lifeline. The container is dockerd's child, not ours, so no parent-death
signal can reach it when `sandbox run` is killed with SIGKILL. This watcher is our child: the
kernel sends it SIGTERM when `sandbox run` dies (however it dies), and it then removes the
container and unstages the workspace overlay at once, instead of leaving both for the next
invocation to find. On a normal end the launcher kills it with SIGKILL first (nothing to do).

    python -I -m sandbox.backends._docker_lifeline CONTAINER_ID
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}


def start(cid: str) -> subprocess.Popen[bytes] | None:
    """The lifeline of container `cid`, tied to this process; None if it could not start
    (the next invocation still reaps what a killed run left, as before)."""
    from sandbox._parent_death import tied_to_parent

    def block() -> None:
        # Blocked across exec until `main` waits for them: a signal that comes while Python
        # starts stays pending instead of killing the lifeline before it could act.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)

    # A parent that died before prctl took effect: act now.
    preexec = tied_to_parent(signal.SIGTERM, before=block,
                             orphaned=lambda: os.kill(os.getpid(), signal.SIGTERM))

    try:
        # its own session: a Ctrl-C at the terminal is the run's to handle, not the lifeline's
        return subprocess.Popen(
            [sys.executable, "-I", "-m", "sandbox.backends._docker_lifeline", cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=preexec, start_new_session=True, close_fds=True)
    except OSError:
        return None


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """The run ended normally: the launcher removes the container itself."""
    if proc is None:
        return
    proc.kill()
    proc.wait()


def main(argv: list[str]) -> int:
    cid = argv[0]
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    signal.sigwait(_SIGNALS)  # any of them means: the owner is gone
    from sandbox.backends._docker import reap_containers
    from sandbox.backends._docker_client import connect
    from sandbox.backends._docker_stage import reap_stale

    client = connect()
    try:
        client.api.remove_container(cid, force=True, v=True)
    except Exception:  # already gone, or dockerd busy: reap_containers retries by owner
        reap_containers(client)
    reap_stale()  # the owner is gone, so its stage is stale
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
