"""Filesystem side of a run: hide mask, ChangeSet diff, git patch, journaled safe commit.

Typical flow: `build_mask` before the run (hidden paths), `compute_changeset` after it,
`render_patch`/`diffstat` to show it, `commit_changeset` to apply the approved part, then
`discard_paths` to drop committed/rejected entries from the upper dir. Every CLI invocation
starts with `recover_interrupted`.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.fs._base import Seen, rebase, reobserve
from sandbox.fs._base import load as load_bases
from sandbox.fs._base import record as record_bases
from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._diff import compute_changeset
from sandbox.fs._gitview import present as present_to_git
from sandbox.fs._gitview import withdraw as withdraw_from_git
from sandbox.fs._globs import PathMatcher, match_path
from sandbox.fs._ignore import Ignored, split_ignored
from sandbox.fs._mask import build_mask, find_hidden
from sandbox.fs._rules import RULE_IDS, symlink_escapes
from sandbox.fs._textdiff import LineDiff, grouped, line_diff, lines_of, opcodes

if TYPE_CHECKING:
    from sandbox.fs._commit import CommitResult, commit_changeset
    from sandbox.fs._discard import discard_paths
    from sandbox.fs._gitwork import (
        GitCommit,
        GitWork,
        RefMove,
        branch_work,
        commit_patch,
        git_work,
        is_git_internal,
        pack_commits,
    )
    from sandbox.fs._journal import recover_interrupted
    from sandbox.fs._patch import diffstat, iter_patch, render_patch

# Commit, journal, discard and patch rendering are not needed by most invocations: they are
# imported on first use so `sandbox run` stays fast (the run path is on every tool call).
_LAZY = {
    "CommitResult": "sandbox.fs._commit",
    "commit_changeset": "sandbox.fs._commit",
    "discard_paths": "sandbox.fs._discard",
    "recover_interrupted": "sandbox.fs._journal",
    "diffstat": "sandbox.fs._patch",
    "render_patch": "sandbox.fs._patch",
    "iter_patch": "sandbox.fs._patch",
    **dict.fromkeys(("GitCommit", "GitWork", "RefMove", "branch_work", "commit_patch",
                     "git_work", "is_git_internal", "pack_commits"), "sandbox.fs._gitwork"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox.fs' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def run_start_ns(probe_dir: Path | None = None) -> int:
    """The `started_ns` to record when a run starts, for commit's conflict check.

    File ctimes come from the kernel's coarse clock, which lags time.time_ns() by up to a
    tick. With `probe_dir`, read that clock itself: create a file there and take its ctime, so
    the baseline is on the same scale as the workspace's ctimes (`ctime > baseline` then means
    "changed after the run started", and our own commit just before is not a conflict).
    Without it, go back 20 ms, erring the safe way.
    """
    import os
    import time

    if probe_dir is not None:
        try:
            fd = os.open(probe_dir, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError:
            pass
        else:
            try:
                return os.fstat(fd).st_ctime_ns
            finally:
                os.close(fd)
    return time.time_ns() - 20_000_000


__all__ = [
    "RULE_IDS",
    "Change",
    "ChangeKind",
    "ChangeSet",
    "CommitResult",
    "FileType",
    "GitCommit",
    "GitWork",
    "Ignored",
    "LineDiff",
    "PathMatcher",
    "RefMove",
    "Seen",
    "branch_work",
    "build_mask",
    "commit_changeset",
    "commit_patch",
    "compute_changeset",
    "diffstat",
    "discard_paths",
    "find_hidden",
    "git_work",
    "grouped",
    "is_git_internal",
    "iter_patch",
    "line_diff",
    "lines_of",
    "load_bases",
    "match_path",
    "opcodes",
    "pack_commits",
    "present_to_git",
    "rebase",
    "record_bases",
    "recover_interrupted",
    "render_patch",
    "reobserve",
    "run_start_ns",
    "split_ignored",
    "symlink_escapes",
    "withdraw_from_git",
]
