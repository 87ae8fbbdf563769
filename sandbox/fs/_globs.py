"""gitignore-like path patterns, shared by the hide list, protected paths and level-3 rules.

Rules (decided here once so every user of patterns agrees):
- a leading '/' anchors the pattern at the workspace root; otherwise it may match starting at
  any depth (`.git/hooks/*` also matches `sub/.git/hooks/pre-commit`, like a nested repo);
- a trailing '/' makes the pattern match directories only;
- `*`, `?` and `[...]` never cross a '/'; a `**` segment spans zero or more directories
  (a trailing `**` spans at least one, so `dir/**` is what is inside `dir`, not `dir` itself);
- a pattern that matches a directory matches everything below it (hiding or protecting a
  directory must cover its contents).
Matching is case-sensitive, like the Linux filesystems it describes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class _Pattern:
    text: str
    anchored: bool
    dir_only: bool
    segments: tuple[str, ...]


def _compile(pattern: str) -> _Pattern:
    anchored = pattern.startswith("/")
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    segments = tuple(s for s in body.split("/") if s not in ("", "."))
    # Collapse runs of `**`: they mean the same thing and would only slow matching down.
    collapsed: list[str] = []
    for seg in segments:
        if seg == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(seg)
    return _Pattern(pattern, anchored, dir_only, tuple(collapsed))


def _ends(segs: tuple[str, ...], comps: tuple[str, ...], start: int) -> set[int]:
    """Every index `end` such that `segs` matches exactly comps[start:end]."""
    positions = {start}
    for i, seg in enumerate(segs):
        nxt: set[int] = set()
        last = i == len(segs) - 1
        for pos in positions:
            if seg == "**":
                first = pos + 1 if last else pos
                nxt.update(range(first, len(comps) + 1))
            elif pos < len(comps) and fnmatch.fnmatchcase(comps[pos], seg):
                nxt.add(pos + 1)
        positions = nxt
        if not positions:
            break
    return positions


def _matches(pat: _Pattern, comps: tuple[str, ...], is_dir: bool) -> bool:
    if not pat.segments or not comps:
        return False
    starts = range(1) if pat.anchored else range(len(comps))
    for start in starts:
        for end in _ends(pat.segments, comps, start):
            if end < len(comps):
                return True  # matched an ancestor directory: everything below it matches
            if end == len(comps) and (is_dir or not pat.dir_only):
                return True
    return False


def _components(path: str) -> tuple[str, ...]:
    return tuple(c for c in path.split("/") if c not in ("", "."))


@dataclass(frozen=True)
class PathMatcher:
    """Patterns parsed once, for hot loops (the mask walk); `match_path` is the one-shot form."""

    patterns: tuple[_Pattern, ...]

    @classmethod
    def of(cls, patterns: Sequence[str]) -> PathMatcher:
        return cls(tuple(_compile(p) for p in patterns))

    def match(self, path: str, *, is_dir: bool = False) -> str | None:
        return self.match_components(_components(path), is_dir=is_dir or path.endswith("/"))

    def match_components(self, comps: tuple[str, ...], *, is_dir: bool) -> str | None:
        for pat in self.patterns:
            if _matches(pat, comps, is_dir):
                return pat.text
        return None


def match_path(path: str, patterns: Sequence[str], *, is_dir: bool = False) -> str | None:
    """Return the first pattern matching the workspace-relative `path`, or None.

    `is_dir` says whether `path` itself is a directory (for patterns ending in '/'); a path
    given with a trailing '/' counts as a directory too.
    """
    return PathMatcher.of(patterns).match(path, is_dir=is_dir)
