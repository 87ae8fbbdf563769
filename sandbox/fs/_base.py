"""What a session saw at each path it changed: its base, and whether the workspace moved since.

The pending changes are always re-diffed against the workspace as it is now, so by itself a
diff cannot tell the agent's change from a person's: a file the person deleted after the run
looks "added" by the agent. At the end of every run the state of the workspace at each newly
changed path (and at the directories above it) is recorded here, once per session: type, mode,
size, times and a content digest. Later, any difference between that record and the workspace
is a conflict (`moved`), and a change whose content equals its base is only a mode change
(`rebase`). The cost follows the number of changed paths, never the workspace size.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._safeio import DirFds, UnsafePathError, lstat_at, split

BASE_FILE = "base.json"
BLOBS = "base-blobs"  # content of small base files, by digest: shown against in diffs
_PERM = 0o7777
# Keeping what the session saw lets a diff show the session's own change after the workspace
# moved; beyond these sizes only the digest is kept (the diff then says so).
_BLOB_MAX = 1 << 20
_BLOBS_PER_RUN = 64 << 20


@dataclass(frozen=True)
class Seen:
    """The workspace at one path when the session first changed it (`kind` None: nothing)."""

    kind: FileType | None
    mode: int = 0
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    digest: str = ""  # sha256 of a file's bytes, or a symlink's target
    # The workspace changed this path while the run that first changed it was going: what the
    # run saw may be either version, so the path is a conflict until a person decides.
    during_run: bool = False

    def to_json(self) -> list[object]:
        return [None if self.kind is None else self.kind.value, self.mode, self.size,
                self.mtime_ns, self.ctime_ns, self.digest, self.during_run]

    @classmethod
    def from_json(cls, data: list[object]) -> Seen:
        kind, mode, size, mtime, ctime, digest, during = data
        return cls(None if kind is None else FileType(str(kind)), int(str(mode)), int(str(size)),
                   int(str(mtime)), int(str(ctime)), str(digest), bool(during))


ABSENT = Seen(None)


def load(session_dir: Path) -> dict[str, Seen] | None:
    """The session's bases; None for a session recorded before bases existed."""
    try:
        data = json.loads((session_dir / BASE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: every change is then a conflict, the safe way
    if not isinstance(data, dict):
        return {}
    return {str(k): Seen.from_json(v) for k, v in data.items()}


def save(session_dir: Path, bases: Mapping[str, Seen]) -> None:
    path = session_dir / BASE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v.to_json() for k, v in sorted(bases.items())}))
    os.replace(tmp, path)


def forget(session_dir: Path, paths: Iterable[str]) -> None:
    """Committed or discarded paths start afresh: their next change records a new base."""
    bases = load(session_dir)
    if not bases:
        return
    gone = set(paths)
    kept = {k: v for k, v in bases.items() if k not in gone}
    if len(kept) != len(bases):
        save(session_dir, kept)


def record(session_dir: Path, cs: ChangeSet, workspace: Path, run_started_ns: int) -> None:
    """Note the base of every change path (and the directories above it) not seen before."""
    bases = load(session_dir) or {}
    added = False
    budget = _BLOBS_PER_RUN
    with DirFds(workspace) as dirs:
        for change in cs.changes:
            for path in (*_ancestors(change.path), change.path):
                if path in bases:
                    continue
                seen, content = _observe(dirs, path, run_started_ns,
                                         keep=min(_BLOB_MAX, budget))
                bases[path] = seen
                added = True
                if content is not None:
                    budget -= len(content)
                    _keep_blob(session_dir, seen.digest, content)
    if added or not (session_dir / BASE_FILE).exists():
        save(session_dir, bases)


def _keep_blob(session_dir: Path, digest: str, data: bytes) -> None:
    """Keep `data` (the bytes `digest` was computed from: one read, so they cannot differ)."""
    blob = session_dir / BLOBS / digest
    if blob.exists():
        return
    blob.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = blob.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, blob)


def seen_content(session_dir: Path, seen: Seen) -> bytes | None:
    """The bytes the session saw (a file's content, a symlink's target), if kept."""
    match seen.kind:
        case FileType.SYMLINK:
            return os.fsencode(seen.digest)
        case FileType.FILE:
            try:
                return (session_dir / BLOBS / seen.digest).read_bytes()
            except OSError:
                return None
        case None | FileType.DIR | FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | \
                FileType.BLOCKDEV:
            return None


def reobserve(session_dir: Path, workspace: Path, paths: Iterable[str]) -> None:
    """After committing part of a file, what is in the workspace now is the session's base."""
    bases = load(session_dir)
    if bases is None:
        return
    with DirFds(workspace) as dirs:
        for path in paths:
            seen, content = _observe(dirs, path, 0, keep=_BLOB_MAX)
            bases[path] = seen
            if content is not None:
                _keep_blob(session_dir, seen.digest, content)
    save(session_dir, bases)


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _observe(dirs: DirFds, path: str, run_started_ns: int,
             keep: int = -1) -> tuple[Seen, bytes | None]:
    """What is at `path` now; with the file's bytes when it holds at most `keep` of them
    (read once for both the digest and the kept copy: they were read twice)."""
    parent, name = split(path)
    try:
        fd = dirs.get(parent)
    except UnsafePathError:
        return ABSENT, None
    st = lstat_at(fd, name)
    if st is None:
        return ABSENT, None
    kind = FileType.of_mode(st.st_mode)
    during = bool(run_started_ns) and st.st_ctime_ns > run_started_ns
    content = _read_upto(fd, name, keep) if kind is FileType.FILE and st.st_size <= keep \
        else None
    digest = hashlib.sha256(content).hexdigest() if content is not None \
        else _digest(fd, name, kind)
    return Seen(kind, st.st_mode & _PERM, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                digest, during_run=during and kind is not FileType.DIR), content


def _read_upto(dir_fd: int, name: str, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than `limit` (it grew since its lstat)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                 dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def _digest(dir_fd: int, name: str, kind: FileType) -> str:
    match kind:
        case FileType.FILE:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        case FileType.SYMLINK:
            return os.readlink(name, dir_fd=dir_fd)
        case (FileType.DIR | FileType.FIFO | FileType.SOCKET | FileType.CHARDEV
              | FileType.BLOCKDEV):
            return ""


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


def moved(dirs: DirFds, path: str, bases: Mapping[str, Seen]) -> str | None:
    """How the workspace at `path` differs from what the session saw there, or None."""
    for anc in _ancestors(path):
        seen = bases.get(anc)
        if seen is None or seen.kind is not FileType.DIR:
            continue
        why = _differs(dirs, anc, seen)
        if why is not None:
            return f"its directory {anc!r} {why}"
    seen = bases.get(path)
    if seen is None:
        return "changed in the workspace since the session saw it"
    return _differs(dirs, path, seen)


def _current(dirs: DirFds, path: str) -> tuple[os.stat_result | None, int | None, str]:
    """(stat, dir fd, what is missing above it) of `path` in the workspace now."""
    parent, name = split(path)
    try:
        fd = dirs.get(parent)
    except UnsafePathError as exc:
        return None, None, exc.rel
    return lstat_at(fd, name), fd, ""


def _removed_ns(dirs: DirFds, path: str) -> int:
    """When `path` went away: the last change of the nearest directory above it still there."""
    parts = path.split("/")
    for i in range(len(parts) - 1, -1, -1):
        try:
            return os.fstat(dirs.get("/".join(parts[:i]))).st_mtime_ns
        except UnsafePathError:
            continue
    return time.time_ns()


def _differs(dirs: DirFds, path: str, seen: Seen) -> str | None:
    st, fd, _ = _current(dirs, path)
    if st is None:
        if seen.kind is None:
            return None
        return f"was deleted from the workspace (at {_when(_removed_ns(dirs, path))})"
    kind = FileType.of_mode(st.st_mode)
    if seen.kind is None:
        return f"was created in the workspace at {_when(st.st_ctime_ns)}"
    if kind is not seen.kind:
        return f"was replaced by a {kind.value} in the workspace at {_when(st.st_ctime_ns)}"
    if seen.during_run:
        return f"was changed in the workspace while the run was going ({_when(seen.ctime_ns)})"
    if st.st_mode & _PERM != seen.mode:
        return (f"had its mode changed in the workspace ({seen.mode:o} -> "
                f"{st.st_mode & _PERM:o}) at {_when(st.st_ctime_ns)}")
    if kind is FileType.DIR or (st.st_ctime_ns == seen.ctime_ns and st.st_size == seen.size
                                and st.st_mtime_ns == seen.mtime_ns):
        return None
    assert fd is not None
    if _digest(fd, split(path)[1], kind) == seen.digest:
        return None  # touched, same bytes
    if kind is FileType.SYMLINK:
        return f"was re-pointed in the workspace at {_when(st.st_ctime_ns)}"
    return f"was modified in the workspace at {_when(st.st_mtime_ns)}"


def rebase(cs: ChangeSet, session_dir: Path, workspace: Path, upper: Path) -> ChangeSet:
    """Each change as the session made it: marked `conflict` where the workspace moved since
    the session saw it (its line counts then those of the session's own edit, when what it
    saw is kept), and a mode change where the session changed only the mode (so a commit
    applies a chmod and never writes back old content over a person's edit)."""
    bases = load(session_dir)
    if bases is None or not cs:
        return cs
    out: list[Change] = []
    with DirFds(workspace) as dirs, DirFds(upper) as src:
        for change in cs.changes:
            why = moved(dirs, change.path, bases)
            if why is None:
                out.append(change)
                continue
            out.append(_as_made(replace(change, conflict=why), bases.get(change.path), src,
                                session_dir))
    return ChangeSet(tuple(out))


def _as_made(change: Change, seen: Seen | None, src: DirFds, session_dir: Path) -> Change:
    if (seen is None or seen.kind is not FileType.FILE or change.new_type is not FileType.FILE
            or change.new_mode is None):
        return change
    parent, name = split(change.path)
    try:
        if change.new_size != seen.size or _digest(src.get(parent), name,
                                                   FileType.FILE) != seen.digest:
            return _counted(change, seen_content(session_dir, seen), src)
    except (OSError, UnsafePathError):
        return change
    return replace(change, kind=ChangeKind.MODE_CHANGED, old_type=FileType.FILE,
                   old_mode=stat.S_IFREG | seen.mode, old_size=seen.size, binary=False,
                   executable_added=bool(change.new_mode & 0o111 & ~seen.mode),
                   added_lines=None, removed_lines=None)


def _counted(change: Change, old: bytes | None, src: DirFds) -> Change:
    """Line counts of the session's own edit (what it saw -> its version)."""
    from sandbox.fs._textdiff import MAX_TEXT_DIFF, line_counts, looks_binary

    if old is None or (change.new_size or 0) > MAX_TEXT_DIFF:
        return change
    parent, name = split(change.path)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                 dir_fd=src.get(parent))
    with os.fdopen(fd, "rb") as f:
        new = f.read()
    if looks_binary(old) or looks_binary(new):
        return change
    added, removed = line_counts(old, new)
    return replace(change, added_lines=added, removed_lines=removed)
