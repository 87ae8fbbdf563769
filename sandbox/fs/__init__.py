"""Filesystem side of a run: hide mask, ChangeSet diff, git patch, journaled safe commit.

Typical flow: `build_mask` before the run (hidden paths), `compute_changeset` after it,
`render_patch`/`diffstat` to show it, `commit_changeset` to apply the approved part, then
`discard_paths` to drop committed/rejected entries from the upper dir. Every CLI invocation
starts with `recover_interrupted`.
"""

from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._commit import CommitResult, commit_changeset, run_start_ns
from sandbox.fs._diff import compute_changeset
from sandbox.fs._discard import discard_paths
from sandbox.fs._globs import PathMatcher, match_path
from sandbox.fs._journal import recover_interrupted
from sandbox.fs._mask import build_mask, find_hidden
from sandbox.fs._patch import diffstat, render_patch
from sandbox.fs._rules import RULE_IDS, symlink_escapes

__all__ = [
    "RULE_IDS",
    "Change",
    "ChangeKind",
    "ChangeSet",
    "CommitResult",
    "FileType",
    "PathMatcher",
    "build_mask",
    "commit_changeset",
    "compute_changeset",
    "diffstat",
    "discard_paths",
    "find_hidden",
    "match_path",
    "recover_interrupted",
    "render_patch",
    "run_start_ns",
    "symlink_escapes",
]
