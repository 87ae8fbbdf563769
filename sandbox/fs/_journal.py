"""The commit journal: enough to finish or undo a commit after a crash at any instant.

Protocol (one JSON file per commit, `<id>.json`, replaced atomically and fsync'd):
1. state "preparing" is written *before* anything touches the workspace; it lists every temp
   name that staging may create. Recovery of a "preparing" journal removes those temps: the
   workspace is back to exactly its before-state.
2. staging writes new contents as temps next to their targets (fsync'd);
3. state "staged" is written; from here the commit is decided. Every op is idempotent, so
   recovery simply replays all of them: the workspace reaches exactly its after-state.
A live commit holds an flock on `<id>.lock`; recovery skips journals whose lock is held, so a
commit in progress in another process is never "recovered" under its feet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, assert_never

from sandbox.fs._safeio import DirFds, UnsafePathError, fsync_fd, lstat_at, rmtree_at, split

VERSION = 1
COMMIT_LOCK = "commit.lock"


class JournalState(StrEnum):
    PREPARING = "preparing"
    STAGED = "staged"


class OldKind(StrEnum):
    """What a ReplaceOp's target held before: decides how it is cleared before the rename."""

    NONE = "none"
    NONDIR = "nondir"  # a file/symlink: rename replaces it atomically unless the new one is a dir
    DIR = "dir"  # an (by then emptied) directory: removed first


@dataclass(frozen=True)
class DeleteOp:
    path: str
    is_dir: bool


@dataclass(frozen=True)
class ReplaceOp:
    """Rename staged temp `tmp` in `dir` to `name`; a missing temp means it was done."""

    dir: str
    tmp: str
    name: str
    old: OldKind
    new_is_dir: bool


@dataclass(frozen=True)
class ChmodOp:
    path: str
    mode: int


Op = DeleteOp | ReplaceOp | ChmodOp


@dataclass(frozen=True)
class Journal:
    id: str
    workspace: str
    state: JournalState
    temps: tuple[tuple[str, str], ...]  # (dir, temp name) that staging may create
    ops: tuple[Op, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "id": self.id,
            "workspace": self.workspace,
            "state": self.state.value,
            "temps": [list(t) for t in self.temps],
            "ops": [_op_to_json(op) for op in self.ops],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Journal:
        if data.get("version") != VERSION:
            raise ValueError(f"unknown journal version {data.get('version')!r}")
        return cls(
            id=str(data["id"]),
            workspace=str(data["workspace"]),
            state=JournalState(data["state"]),
            temps=tuple((str(d), str(t)) for d, t in data["temps"]),
            ops=tuple(_op_from_json(o) for o in data["ops"]),
        )


def _op_to_json(op: Op) -> dict[str, Any]:
    match op:
        case DeleteOp(path=path, is_dir=is_dir):
            return {"op": "delete", "path": path, "is_dir": is_dir}
        case ReplaceOp(dir=d, tmp=tmp, name=name, old=old, new_is_dir=new_is_dir):
            return {
                "op": "replace",
                "dir": d,
                "tmp": tmp,
                "name": name,
                "old": old.value,
                "new_is_dir": new_is_dir,
            }
        case ChmodOp(path=path, mode=mode):
            return {"op": "chmod", "path": path, "mode": mode}
        case _:
            assert_never(op)


def _op_from_json(data: dict[str, Any]) -> Op:
    kind = data["op"]
    if kind == "delete":
        return DeleteOp(str(data["path"]), bool(data["is_dir"]))
    if kind == "replace":
        return ReplaceOp(
            str(data["dir"]),
            str(data["tmp"]),
            str(data["name"]),
            OldKind(data["old"]),
            bool(data["new_is_dir"]),
        )
    if kind == "chmod":
        return ChmodOp(str(data["path"]), int(data["mode"]))
    raise ValueError(f"unknown journal op {kind!r}")


def journal_path(journal_dir: Path, jid: str) -> Path:
    return journal_dir / f"{jid}.json"


def write_journal(journal_dir: Path, journal: Journal) -> None:
    """Atomically (re)write a journal: temp, fsync, rename, fsync the directory."""
    final = journal_path(journal_dir, journal.id)
    tmp = final.with_name(final.name + ".tmp")
    # ensure_ascii keeps surrogate-escaped (non UTF-8) names representable and lossless.
    data = json.dumps(journal.to_json(), ensure_ascii=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        fsync_fd(fd)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    sync_dir(journal_dir)


def remove_journal(journal_dir: Path, jid: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(journal_dir, jid))
    sync_dir(journal_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_dir / f"{jid}.json.tmp")


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def lock(path: Path, *, blocking: bool, create: bool = True) -> int | None:
    """An flock'd fd on `path`, or None when not blocking and held (or missing, create=False)."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        if create:
            raise
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_owner_lock(journal_dir: Path, jid: str) -> int:
    """The lock a live commit holds; it appears under its final name already locked (rename),
    so recovery can never find it unlocked while its owner is alive."""
    tmp = journal_dir / f"{jid}.locktmp"
    fd = lock(tmp, blocking=True)
    assert fd is not None
    try:
        os.rename(tmp, journal_dir / f"{jid}.lock")
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_owner_lock(journal_dir: Path, jid: str, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_dir / f"{jid}.lock")
    os.close(fd)


def step_delay() -> float:
    """Test hook: SANDBOX_COMMIT_STEP_DELAY seconds slept after each step (crash tests)."""
    try:
        return max(0.0, float(os.environ.get("SANDBOX_COMMIT_STEP_DELAY", "0")))
    except ValueError:
        return 0.0


def rollback(dirs: DirFds, temps: tuple[tuple[str, str], ...]) -> None:
    """Remove every staged temp that exists; the workspace is then as before."""
    for d, tmp in temps:
        try:
            fd = dirs.get(d)
        except UnsafePathError:
            continue  # its directory is gone or swapped: nothing of ours can be in it
        rmtree_at(fd, tmp)


def roll_forward(dirs: DirFds, ops: tuple[Op, ...], delay: float = 0.0) -> list[str]:
    """Apply every op (idempotent); returns the ops that could not be applied, as messages."""
    failures: list[str] = []
    for op in ops:
        try:
            _apply(dirs, op)
        except (OSError, UnsafePathError) as exc:
            failures.append(f"{_op_path(op)}: {exc}")
        if delay:
            time.sleep(delay)
    return failures


def _op_path(op: Op) -> str:
    match op:
        case DeleteOp(path=path) | ChmodOp(path=path):
            return path
        case ReplaceOp(dir=d, name=name):
            return f"{d}/{name}" if d else name
        case _:
            assert_never(op)


def _apply(dirs: DirFds, op: Op) -> None:
    match op:
        case DeleteOp(path=path, is_dir=is_dir):
            parent, name = split(path)
            try:
                fd = dirs.get(parent)
            except UnsafePathError:
                return  # parent already gone (or replaced): nothing left to delete there
            st = lstat_at(fd, name)
            if st is None:
                return
            if is_dir and stat.S_ISDIR(st.st_mode):
                dirs.forget(path)
                os.rmdir(name, dir_fd=fd)
            elif not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
            else:
                raise OSError(errno.EISDIR, "expected a non-directory, found a directory")
        case ReplaceOp(dir=d, tmp=tmp, name=name, old=old, new_is_dir=new_is_dir):
            fd = dirs.get(d)
            if lstat_at(fd, tmp) is None:
                return  # renamed already (replay after a crash)
            cur = lstat_at(fd, name)
            if cur is not None:
                cur_is_dir = stat.S_ISDIR(cur.st_mode)
                match old:
                    case OldKind.DIR if cur_is_dir:
                        dirs.forget(f"{d}/{name}" if d else name)
                        os.rmdir(name, dir_fd=fd)  # its contents were deleted by earlier ops
                    case OldKind.NONDIR | OldKind.NONE if new_is_dir and not cur_is_dir:
                        os.unlink(name, dir_fd=fd)
                    case OldKind.NONE | OldKind.NONDIR | OldKind.DIR:
                        pass  # rename replaces a non-directory atomically
                    case _:
                        assert_never(old)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        case ChmodOp(path=path, mode=mode):
            parent, name = split(path)
            fd = dirs.get(parent)
            st = lstat_at(fd, name)
            if st is None or stat.S_ISLNK(st.st_mode):
                return
            os.chmod(name, mode, dir_fd=fd, follow_symlinks=False)
        case _:
            assert_never(op)


def recover_interrupted(journal_dir: Path) -> tuple[str, ...]:
    """Finish or undo commits interrupted by a crash; one listdir when there is none.

    Returns one "<journal id>: rolled forward|rolled back[: failures]" line per journal.
    """
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return ()
    ids = {n.split(".", 1)[0] for n in names if n.endswith((".json", ".lock")) and n != COMMIT_LOCK}
    done: list[str] = []
    for jid in sorted(ids):
        message = _recover_one(journal_dir, jid)
        if message is not None:
            done.append(message)
    return tuple(done)


def _recover_one(journal_dir: Path, jid: str) -> str | None:
    lock_path = journal_dir / f"{jid}.lock"
    has_journal = journal_path(journal_dir, jid).exists()
    # A journal always has its lock file beside it while its commit lives, so only a journal
    # whose lock file is gone (removed by hand) may have it recreated here.
    fd = lock(lock_path, blocking=False, create=has_journal)
    if fd is None:
        return None  # a live commit owns it, or there is nothing to recover
    try:
        try:
            raw = journal_path(journal_dir, jid).read_bytes()
        except FileNotFoundError:
            # The owner died before its first journal write (nothing touched) or after
            # removing its journal (all done): only the stale lock is left.
            remove_journal(journal_dir, jid)
            return None
        try:
            journal = Journal.from_json(json.loads(raw))
            dirs = DirFds(journal.workspace)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            # Keep the journal: dropping it could strand the workspace half-committed.
            return f"{jid}: cannot recover yet ({exc}); journal kept"
        with dirs:
            match journal.state:
                case JournalState.PREPARING:
                    rollback(dirs, journal.temps)
                    message = f"{jid}: rolled back"
                case JournalState.STAGED:
                    failures = roll_forward(dirs, journal.ops)
                    message = f"{jid}: rolled forward"
                    if failures:
                        message += ": " + "; ".join(failures)
                case _:
                    assert_never(journal.state)
            sync_dirs(dirs, journal)
        remove_journal(journal_dir, jid)
        return message
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def sync_dirs(dirs: DirFds, journal: Journal) -> None:
    """fsync every directory the journal touches, so its removal cannot outlive the changes."""
    touched = {d for d, _ in journal.temps}
    for op in journal.ops:
        touched.add(split(_op_path(op))[0])
    for d in sorted(touched):
        try:
            fsync_fd(dirs.get(d))
        except UnsafePathError:
            continue
