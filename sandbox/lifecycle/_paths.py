"""PATH arguments as a person means them: workspace-relative, relative to the current
directory, or absolute inside the workspace; a directory selects everything pending under it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sandbox.errors import NotFoundError, UsageError
from sandbox.fs import ChangeSet

__all__ = ["normalize_paths"]


def _inside(path: str, workspace: str) -> str | None:
    """`path` (absolute, normalised) relative to `workspace`; None when outside it."""
    if path == workspace:
        return ""
    if path.startswith(workspace.rstrip("/") + "/"):
        return path[len(workspace.rstrip("/")) + 1:]
    return None


def _relative(raw: str, workspace: Path, cwd: Path) -> list[str]:
    """The workspace-relative readings of `raw`, most likely first ("" is the whole tree)."""
    ws = os.path.normpath(workspace)
    if os.path.isabs(raw):
        rel = _inside(os.path.normpath(raw), ws)
        if rel is None:  # through a symlinked path to the workspace
            rel = _inside(os.path.realpath(raw), os.path.realpath(ws))
        return [] if rel is None else [rel]
    here = _inside(os.path.normpath(cwd), ws)
    if here is None:
        here = _inside(os.path.realpath(cwd), os.path.realpath(ws))
    from_cwd = None if here is None else _inside(os.path.normpath(os.path.join(ws, here, raw)), ws)
    if raw.startswith(("./", "../")) or raw in (".", ".."):
        return [] if from_cwd is None else [from_cwd]
    plain = os.path.normpath(raw)
    readings = [] if from_cwd is None or here == "" else [from_cwd]
    if not plain.startswith("../") and plain != "..":
        readings.append("" if plain == "." else plain)
    return readings


def normalize_paths(paths: Sequence[str], cs: ChangeSet, *, workspace: Path,
                    cwd: Path | None = None) -> tuple[str, ...] | None:
    """Workspace-relative paths that each select pending changes; None means all of them.
    A path that selects nothing, or lies outside the workspace, is a usage error naming it."""
    if not paths:
        return None
    here = Path.cwd() if cwd is None else cwd
    out: list[str] = []
    missing: list[str] = []
    for raw in paths:
        if not raw:
            raise UsageError("an empty PATH is not a path",
                             hint="name a pending path, or leave PATH out for all of them")
        readings = _relative(raw, workspace, here)
        if not readings:
            raise UsageError(f"{raw} is outside the workspace {workspace}",
                             hint="PATH is relative to the workspace or the current directory, or "
                                  "absolute inside the workspace")
        if "" in readings:
            return None  # the workspace itself: everything pending
        chosen = next((r for r in readings if cs.select([r])), None)
        if chosen is None:
            missing.append(raw)
        else:
            out.append(chosen)
    if missing:
        raise NotFoundError(f"no pending change at: {', '.join(missing)}",
                            hint="`sandbox diff RUN --stat` lists what is pending")
    return tuple(dict.fromkeys(out))
