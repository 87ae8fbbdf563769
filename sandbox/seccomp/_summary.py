"""What a run summary can say about the profile (issue 3, item 8).

A call the profile answers with KILL/KILL_PROCESS ends the command with SIGSYS (exit 159, or
nsjail's "seccomp violation" log line); that is detectable and worth saying. A call answered
with ERRNO is not visible from outside without tracing: the summary points to `profile test`.
"""

from __future__ import annotations

import signal

SIGSYS_EXIT = 128 + signal.SIGSYS
_NSJAIL_MARK = "syscall/seccomp violation"


def denial_note(exit_code: int, *, profile: str, signal_no: int | None = None,
                backend_log: str = "") -> str | None:
    """A one-line note for the run summary when the profile killed the command, else None."""
    killed = (signal_no == signal.SIGSYS or exit_code == SIGSYS_EXIT
              or _NSJAIL_MARK in backend_log)
    if not killed:
        return None
    return (f"killed by the seccomp profile {profile} (SIGSYS: a call it answers with KILL); "
            f"see which with: sandbox profile test {profile} -- COMMAND")
