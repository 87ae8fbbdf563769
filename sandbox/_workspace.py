"""Which workspace a command means: the enclosing git work tree's top level (as git and the
agents see it), else the current directory; the command starts in the current subdirectory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Located", "locate_workspace"]


@dataclass(frozen=True)
class Located:
    workspace: Path
    subdir: str  # where the command starts, relative to the workspace ("" at its top)


def _git_toplevel(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding `.git` (a dir, or a worktree's file).
    A walk of stats, not a `git` process: this is on every tool call's path."""
    here = start
    while True:
        if os.path.lexists(here / ".git"):
            return here
        if here.parent == here:
            return None
        here = here.parent


def locate_workspace(explicit: str | os.PathLike[str] | None, cwd: Path | None = None) -> Located:
    """`-C DIR` is taken as given; without it, the git top level (else the current directory),
    starting in the current subdirectory."""
    if explicit is not None:
        return Located(Path(explicit), "")
    here = Path(os.path.realpath(Path.cwd() if cwd is None else cwd))
    top = _git_toplevel(here)
    if top is None:
        return Located(here, "")
    return Located(top, "" if top == here else str(here.relative_to(top)))
