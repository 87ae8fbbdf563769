"""Ignored output: what the workspace's .gitignore files and `[changes] ignore` leave out.

Build output and caches (`__pycache__`, a venv, `node_modules`) would bury the change a person
has to review, so they are not proposed: `split_ignored` takes them out of a change set and
reports how many there were and their size. The .gitignore files are read from the real
workspace (never from the run's upper dir: the run cannot ignore its own changes away), with
git's precedence: a deeper file overrides a shallower one, the last matching line wins, and
nothing below an ignored directory can be re-included. Forbidden changes are never ignored.
The cost follows the changes: one .gitignore read per directory that holds a change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.fs._changeset import Change, ChangeSet, FileType
from sandbox.fs._globs import PathMatcher
from sandbox.fs._safeio import DirFds, UnsafePathError

_MAX_GITIGNORE = 1 << 20


@dataclass(frozen=True)
class Ignored:
    """The changes left out as ignored output."""

    changes: tuple[Change, ...] = ()

    @property
    def count(self) -> int:
        return sum(1 for c in self.changes if FileType.DIR not in (c.new_type, c.old_type))

    @property
    def size(self) -> int:
        return sum(c.new_size or 0 for c in self.changes)

    def describe(self) -> str:
        """"3 ignored files (1.2 MB) not proposed" (empty when nothing was ignored)."""
        if not self.changes:
            return ""
        n = self.count
        return (f"{n:,} ignored file{'s' if n != 1 else ''} ({self.size / 1e6:.1f} MB) "
                "not proposed (approve --include-ignored to commit them)")

    def to_json(self) -> dict[str, int]:
        return {"files": self.count, "bytes": self.size}


@dataclass
class _GitIgnores:
    """.gitignore semantics without git (a workspace that is not a repository)."""

    dirs: DirFds
    specs: dict[str, Any] = field(default_factory=dict)  # dir -> GitIgnoreSpec | None

    def _spec(self, rel_dir: str) -> Any:
        if rel_dir in self.specs:
            return self.specs[rel_dir]
        spec = None
        try:
            fd = os.open(".gitignore", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=self.dirs.get(rel_dir))
        except (OSError, UnsafePathError):
            pass
        else:
            with os.fdopen(fd, "rb") as f:
                text = f.read(_MAX_GITIGNORE).decode("utf-8", "surrogateescape")
            import pathspec  # only for a .gitignore outside a repository (~25 ms to import)

            spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
        self.specs[rel_dir] = spec
        return spec

    def _decided(self, comps: list[str], is_dir: bool) -> bool:
        """git's answer for one path: the deepest .gitignore with a matching line decides."""
        verdict: bool | None = None
        for i in range(len(comps)):
            spec = self._spec("/".join(comps[:i]))
            if spec is None:
                continue
            rel = "/".join(comps[i:]) + ("/" if is_dir else "")
            result = spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)

    def ignores(self, path: str, is_dir: bool) -> bool:
        comps = path.split("/")
        for i in range(1, len(comps)):  # an ignored directory takes everything in it
            if self._decided(comps[:i], True):
                return True
        return self._decided(comps, is_dir)


def split_ignored(cs: ChangeSet, workspace: Path, patterns: Sequence[str]) -> tuple[ChangeSet,
                                                                                    Ignored]:
    """(the changes to propose, the ignored ones)."""
    if not cs:
        return cs, Ignored()
    matcher = PathMatcher.of(patterns)

    def is_dir(c: Change) -> bool:
        return FileType.DIR in (c.new_type, c.old_type)

    candidates = [c for c in cs.changes if not c.forbidden
                  and matcher.match(c.path, is_dir=is_dir(c)) is None]
    by_git = _git_ignored(workspace, candidates, is_dir)
    out: set[str] = {c.path for c in cs.changes if not c.forbidden} - {c.path for c in candidates}
    if by_git is not None:
        out |= by_git
    elif (workspace / ".gitignore").exists() or any("/" in c.path for c in candidates):
        with DirFds(workspace) as dirs:
            rules = _GitIgnores(dirs)
            out |= {c.path for c in candidates if rules.ignores(c.path, is_dir(c))}
    kept = tuple(c for c in cs.changes if c.path not in out)
    return ChangeSet(kept), Ignored(tuple(c for c in cs.changes if c.path in out))


def _git_ignored(workspace: Path, changes: list[Change],
                 is_dir: Callable[[Change], bool]) -> set[str] | None:
    """What git itself ignores of `changes` in a repository (None: not one, or no git).

    Asked without the index (reading a 100,000-entry index costs more than the whole diff);
    git ignores untracked files only, so a matched path the workspace has is then checked
    against the index, which is needed only in that rare case."""
    if not (workspace / ".git").exists():
        return None
    if not changes:
        return set()
    from sandbox._git import literal, run_git

    r = run_git(workspace, "check-ignore", "--no-index", "-z", "--stdin",
                data=b"".join(os.fsencode(c.path + ("/" if is_dir(c) else "")) + b"\0"
                              for c in changes))
    if r is None or r.returncode not in (0, 1):
        return None
    found = {os.fsdecode(p).rstrip("/") for p in r.stdout.split(b"\0") if p}
    existing = [c.path for c in changes if c.path in found and c.old_type is not None]
    if existing:
        r = run_git(workspace, "ls-files", "-z", "--", *literal(existing))
        if r is None or r.returncode != 0:
            return found - set(existing)
        tracked = {os.fsdecode(p) for p in r.stdout.split(b"\0") if p}
        found -= {p for p in existing
                  if p in tracked or any(t.startswith(p + "/") for t in tracked)}
    return found
