"""Where sandbox keeps its state: run records, pending upper dirs, the journal, the audit log.

State lives outside every workspace so nothing a sandboxed command can see or write reaches it.
The directory is created 0700 because it holds other runs' pending changes and the audit log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import StateError, UsageError

__all__ = ["HomeLayout", "SessionDirs", "check_id", "ensure_home", "sandbox_home"]

# Ids become directory and lock-file names: refuse anything that could escape the parent
# (separators, "..", leading dots) or upset a terminal.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def sandbox_home(env: Mapping[str, str] | None = None) -> Path:
    """$SANDBOX_HOME, else $XDG_STATE_HOME/sandbox, else ~/.local/state/sandbox (not created)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    explicit = environ.get("SANDBOX_HOME")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = environ.get("XDG_STATE_HOME")
    # XDG says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "sandbox"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "state" / "sandbox"


def ensure_home(path: Path) -> Path:
    """Create `path` (and parents) with mode 0700 if missing; return it.

    An existing directory keeps its mode, but it must be a real directory (not a symlink
    someone planted) owned by us, since everything below it is trusted.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise StateError(
            f"cannot create state directory {path}: {exc.strerror}",
            hint="set SANDBOX_HOME to a writable directory",
        ) from exc
    if path.is_symlink() or not path.is_dir():
        raise StateError(f"state directory {path} is not a directory")
    if st.st_uid != os.getuid():
        raise StateError(
            f"state directory {path} is owned by uid {st.st_uid}, not by you ({os.getuid()})",
            hint="set SANDBOX_HOME to a directory you own",
        )
    return path


def check_id(kind: str, value: str) -> str:
    """Validate an id used as a file name; return it unchanged."""
    if not _ID_RE.fullmatch(value):
        raise UsageError(f"invalid {kind} id {value!r}")
    return value


@dataclass(frozen=True)
class SessionDirs:
    """The overlay dirs of one session: upper (the changes), work (overlayfs scratch), mask."""

    root: Path

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def mask(self) -> Path:
        return self.root / "mask"

    def create(self) -> SessionDirs:
        """Create root/upper/work/mask with mode 0700 (idempotent)."""
        try:
            for d in (self.root, self.upper, self.work, self.mask):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create session directory {self.root}: {exc}") from exc
        return self


@dataclass(frozen=True)
class HomeLayout:
    """Paths inside the state directory; pure, creates nothing until `ensure()`."""

    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HomeLayout:
        return cls(sandbox_home(env))

    @property
    def db(self) -> Path:
        return self.root / "state.db"

    @property
    def audit(self) -> Path:
        return self.root / "audit.log"

    @property
    def journal_dir(self) -> Path:
        return self.root / "journal"

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    def session_dir(self, session_id: str) -> Path:
        """sessions/<id>; it holds upper/, work/ and mask/ (see `session_dirs`)."""
        return self.sessions_dir / check_id("session", session_id)

    def session_dirs(self, session_id: str) -> SessionDirs:
        return SessionDirs(self.session_dir(session_id))

    def ensure(self) -> HomeLayout:
        """Create the root and its fixed subdirectories (0700); cheap when they exist."""
        ensure_home(self.root)
        try:
            for d in (self.journal_dir, self.sessions_dir, self.cache_dir, self.locks_dir):
                d.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create {exc.filename}: {exc.strerror}") from exc
        return self
