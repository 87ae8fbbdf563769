"""What a run did to the repository, read as git: new commits on a branch, moved refs, a changed
HEAD or config, instead of the object files, logs and index under `.git/` it wrote.

The refs are read from the run's view (its upper dir over the workspace: loose refs first, a
whiteout hides the workspace's, then packed-refs) and the commits from its objects (the upper
dir's object store, with the workspace's as an alternate), with git reading neither the run's
config nor hooks: the repository's config it reads is the person's own.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._git import run_git as _git
from sandbox.fs._changeset import Change, ChangeKind, FileType

__all__ = ["GitCommit", "GitWork", "RefMove", "git_work", "is_git_internal"]

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_MAX_COMMITS = 200  # per ref; a run that made more is summarised past these
# What git writes as a side effect of commits: shown as commits, never file by file.
_INTERNAL = (".git/objects/", ".git/logs/")
_INTERNAL_FILES = (".git/index", ".git/COMMIT_EDITMSG", ".git/ORIG_HEAD", ".git/FETCH_HEAD",
                   ".git/AUTO_MERGE", ".git/description", ".git/objects", ".git/logs")


def is_git_internal(path: str) -> bool:
    """Object files, reflogs, the index...: bookkeeping that the commits and refs explain."""
    return path.startswith(_INTERNAL) or path in _INTERNAL_FILES


@dataclass(frozen=True)
class GitCommit:
    sha: str
    parents: tuple[str, ...]
    author: str  # "Name <email>"
    date: str  # ISO 8601, the author date
    message: str
    files: tuple[tuple[str, int | None, int | None], ...]  # (path, added, removed); None: binary

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {"sha": self.sha, "parents": list(self.parents), "author": self.author,
                "date": self.date, "message": self.message,
                "files": [{"path": p, "added": a, "removed": r} for p, a, r in self.files]}


@dataclass(frozen=True)
class RefMove:
    """A ref the run created, moved or deleted, with the commits it added (newest first)."""

    ref: str  # "refs/heads/main", "refs/tags/v1"...
    old: str | None
    new: str | None
    commits: tuple[GitCommit, ...]
    fast_forward: bool  # every old commit is still reachable (nothing rewritten or dropped)

    def describe(self) -> str:
        name = self.ref.removeprefix("refs/heads/").removeprefix("refs/")
        kind = "branch" if self.ref.startswith("refs/heads/") else "ref"
        if self.new is None:
            return f"{kind} {name} deleted (was {_short(self.old)})"
        if self.old is None:
            return f"new {kind} {name} at {_short(self.new)}, {_count(self.commits)}"
        how = "" if self.fast_forward else ", not a fast-forward (history rewritten)"
        return (f"{kind} {name}: {_short(self.old)} -> {_short(self.new)}, "
                f"{_count(self.commits)}{how}")

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "old": self.old, "new": self.new,
                "fast_forward": self.fast_forward,
                "commits": [c.to_json() for c in self.commits]}


@dataclass(frozen=True)
class GitWork:
    refs: tuple[RefMove, ...]
    head: tuple[str, str] | None  # HEAD's (old, new) when the run switched it
    config_changed: bool
    internal: tuple[str, ...]  # .git paths that the refs and commits stand for

    def __bool__(self) -> bool:
        return bool(self.refs or self.head or self.config_changed)

    def lines(self) -> list[str]:
        """A person's summary: one line per ref, one per commit (with its files)."""
        out: list[str] = []
        if self.head is not None:
            out.append(f"HEAD: {self.head[0]} -> {self.head[1]}")
        for move in self.refs:
            out.append(move.describe())
            for c in move.commits:
                out.append(f"  commit {c.sha[:12]}  {c.author}  {c.date}")
                out.append(f"    {c.subject}")
                for path, added, removed in c.files:
                    counts = "binary" if added is None else f"+{added} -{removed or 0}"
                    out.append(f"      {path}  {counts}")
        if self.config_changed:
            out.append(".git/config changed (shown with the changes)")
        if self.internal:
            out.append(f"{len(self.internal)} git-internal file(s) (objects, logs, index) "
                       "stand for these commits and are not listed")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"refs": [m.to_json() for m in self.refs],
                "head": None if self.head is None else {"old": self.head[0], "new": self.head[1]},
                "config_changed": self.config_changed, "internal_files": len(self.internal)}


def _short(sha: str | None) -> str:
    return "-" if sha is None else sha[:12]


def _count(commits: Sequence[GitCommit]) -> str:
    return f"{len(commits)} new commit{'s' if len(commits) != 1 else ''}"


def _read(path: Path) -> bytes | None:
    """A regular file's bytes; None if absent, not a file, or a whiteout."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def _whiteout(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _packed(data: bytes | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition(" ")
        if name and _SHA.match(sha):
            out[name] = sha
    return out


class _Refs:
    """Ref values as seen from one layering: the run's (upper over workspace) or the
    workspace's own."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self._layers = layers
        packed = None
        for root in layers:
            p = root / ".git" / "packed-refs"
            if _whiteout(p):
                break
            packed = _read(p)
            if packed is not None:
                break
        self._packed = _packed(packed)

    def get(self, name: str) -> str | None:
        for root in self._layers:
            p = root / ".git" / name
            if _whiteout(p):
                break
            data = _read(p)
            if data is not None:
                value = data.decode("utf-8", "replace").strip()
                return value if _SHA.match(value) or value.startswith("ref: ") else None
        return self._packed.get(name)

    def packed_names(self) -> set[str]:
        return set(self._packed)


def _changed_refs(changes: Iterable[Change], before: _Refs, after: _Refs) -> list[str]:
    names: set[str] = set()
    packed_changed = False
    for c in changes:
        if c.path.startswith(".git/refs/") and c.new_type is not FileType.DIR:
            names.add(c.path.removeprefix(".git/"))
        elif c.path == ".git/packed-refs":
            packed_changed = True
    if packed_changed:
        names |= before.packed_names() | after.packed_names()
    return sorted(n for n in names if before.get(n) != after.get(n))


def _commits(workspace: Path, objects: Path, new: str, old: str | None) -> tuple[GitCommit, ...]:
    """The commits `new` has that `old` lacks (for a new ref: that no ref of the workspace
    has), newest first."""
    fmt = "%x01%H%x02%P%x02%an <%ae>%x02%aI%x02%B%x03"
    since = [f"^{old}"] if old is not None else ["--not", "--all"]
    r = _git(workspace, "log", "-z", "--no-renames", "--numstat", f"--format={fmt}",
             f"--max-count={_MAX_COMMITS}", new, *since,
             objects=objects if objects.is_dir() else None)
    if r is None or r.returncode != 0:
        return ()
    out: list[GitCommit] = []
    for record in r.stdout.split(b"\x01")[1:]:
        head, _, stats = record.partition(b"\x03")
        fields = head.decode("utf-8", "replace").split("\x02")
        if len(fields) != 5:
            continue
        sha, parents, author, date, message = fields
        files: list[tuple[str, int | None, int | None]] = []
        for entry in stats.split(b"\0"):
            parts = entry.strip(b"\n").split(b"\t", 2)
            if len(parts) == 3 and parts[2]:
                a, d = parts[0], parts[1]
                files.append((os.fsdecode(parts[2]), int(a) if a.isdigit() else None,
                              int(d) if d.isdigit() else None))
        out.append(GitCommit(sha, tuple(parents.split()), author, date, message.strip(),
                             tuple(files)))
    return tuple(out)


def _is_ancestor(workspace: Path, objects: Path, old: str, new: str) -> bool:
    r = _git(workspace, "merge-base", "--is-ancestor", old, new,
             objects=objects if objects.is_dir() else None)
    return r is not None and r.returncode == 0


def git_work(upper: Path, workspace: Path, changes: Sequence[Change]) -> GitWork | None:
    """The run's git work, or None when it changed nothing under the workspace's `.git/`."""
    git_changes = [c for c in changes if c.path.startswith(".git/") or c.path == ".git"]
    if not git_changes or not (workspace / ".git").is_dir():
        return None
    before, after = _Refs([workspace]), _Refs([upper, workspace])
    objects = upper / ".git" / "objects"
    moves: list[RefMove] = []
    for name in _changed_refs(git_changes, before, after):
        old, new = before.get(name), after.get(name)
        old = old if old is None or _SHA.match(old) else None
        new = new if new is None or _SHA.match(new) else None
        commits = _commits(workspace, objects, new, old) if new is not None else ()
        ff = old is None or (new is not None and _is_ancestor(workspace, objects, old, new))
        moves.append(RefMove(name, old, new, commits, ff))
    head = None
    if any(c.path == ".git/HEAD" for c in git_changes):
        h_old, h_new = before.get("HEAD"), after.get("HEAD")
        if h_old != h_new:
            head = (h_old or "-", h_new or "-")
    config = any(c.path == ".git/config" and c.kind is not ChangeKind.DELETED
                 for c in git_changes)
    internal = tuple(c.path for c in git_changes if is_git_internal(c.path))
    return GitWork(tuple(moves), head, config, internal)


def branch_work(upper: Path, workspace: Path, work: GitWork) -> RefMove | None:
    """The move of the branch the run's HEAD is on, if the run committed to it."""
    head = _Refs([upper, workspace]).get("HEAD") or ""
    name = head.removeprefix("ref: ").strip() if head.startswith("ref: ") else None
    for move in work.refs:
        if move.ref == name and move.new is not None and move.commits:
            return move
    return None


def pack_commits(upper: Path, workspace: Path, tip: str, base: str | None) -> bytes | None:
    """A pack of the objects of the run's commits up to `tip` that the workspace's repository
    lacks (everything reachable from `tip`, less what `base` reaches), for unpack-objects."""
    objects = upper / ".git" / "objects"
    spec = f"{tip}\n" + (f"^{base}\n" if base else "")
    r = _git(workspace, "pack-objects", "--revs", "--stdout", "-q", data=spec.encode(),
             objects=objects if objects.is_dir() else None)
    return r.stdout if r is not None and r.returncode == 0 else None


def commit_patch(upper: Path, workspace: Path, sha: str, limit: int = 1 << 20) -> bytes:
    """The diff a commit made inside introduces (against its first parent), up to `limit`
    bytes; b"" when it cannot be read."""
    objects = upper / ".git" / "objects"
    r = _git(workspace, "show", "--format=", "--no-color",
             "--first-parent", "--patch", sha, objects=objects if objects.is_dir() else None)
    if r is None or r.returncode != 0:
        return b""
    return r.stdout[:limit]
