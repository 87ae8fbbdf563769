"""One error tree for the whole library; each error carries the CLI exit code it maps to.

The CLI catches `SandboxError` at the boundary and exits with `exit_code`; library code raises
the most specific child and chains the original cause with `raise ... from`.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_SANDBOX_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
# Refusals of approve/reject/export/review get codes of their own: a script can tell "a person's
# edit is in the way" from "a rule forbids it" without parsing messages. `run` never returns
# them (the command's own status passes through there).
EXIT_CONFLICT = 3
EXIT_FORBIDDEN = 4
EXIT_PROTECTED = 5
EXIT_BUSY = 6


class SandboxError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: int = EXIT_SANDBOX_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class UsageError(SandboxError):
    """Bad command line, bad arguments: exit 2."""

    exit_code = EXIT_USAGE


class PolicyError(UsageError):
    """Malformed or contradictory policy (names file, line, field): exit 2."""


class CeilingError(PolicyError):
    """A layer tried to loosen what an earlier (org) layer fixed: exit 2."""


class ProfileError(UsageError):
    """Malformed seccomp profile (names the JSON path): exit 2."""


class NotFoundError(UsageError):
    """A run, session or path named by the user does not exist: exit 2."""


class EnforcementError(SandboxError):
    """The sandbox cannot enforce what the policy asks (no userns, no overlay...): exit 125."""


class BackendError(SandboxError):
    """The backend failed to start or misbehaved: exit 125."""


class WorkspaceError(SandboxError):
    """The workspace is missing or unreadable: exit 2 (it is the user's input)."""

    exit_code = EXIT_USAGE


class CommitError(SandboxError):
    """A commit could not be applied; the workspace is left as before: exit 125."""


class ConflictError(CommitError):
    """Files changed in the workspace after the run started; nothing was committed: exit 3."""

    exit_code = EXIT_CONFLICT


class ForbiddenChangeError(CommitError):
    """Approving a change that a rule forbids: exit 4 with the rule's name."""

    exit_code = EXIT_FORBIDDEN


class ProtectedChangeError(CommitError):
    """Approving a protected change without --include-protected: exit 5."""

    exit_code = EXIT_PROTECTED


class StateError(SandboxError):
    """The state directory is corrupt or locked by another process: exit 125."""


class SessionBusyError(StateError):
    """A run (or another decision) of the session is going on: exit 6, nothing changed."""

    exit_code = EXIT_BUSY


class SessionClosedError(UsageError):
    """The session is already committed or rejected: exit 2, nothing changed."""


class AuditError(SandboxError):
    """The audit log cannot be written or read: the sandbox cannot record, so exit 125."""
