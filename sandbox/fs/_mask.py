"""The hide mask: an overlay lower layer of whiteouts that hides secret files from the run.

Walking the workspace is unavoidable here, so it is kept cheap: os.scandir (file types come
free from getdents), hidden directories are pruned, symlinks are never followed, and an
optional cache maps each directory to its listing keyed by (path, mtime_ns). Adding,
removing or renaming an entry changes its directory's mtime, so an unchanged workspace costs
one lstat per directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.fs import _overlay
from sandbox.fs._globs import PathMatcher
from sandbox.fs._safeio import rmtree_at

_CACHE_VERSION = 1
# A directory modified this recently may be modified again within the same timestamp tick;
# caching it could then miss that change (git's "racy" entries), so it is always rescanned.
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class _Listing:
    mtime_ns: int
    subdirs: tuple[str, ...]  # real (non-symlink) subdirectories not hidden
    hidden: tuple[str, ...]  # entry names matching a pattern


def _patterns_key(patterns: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(patterns).encode("utf-8", "surrogateescape")).hexdigest()


def _load_cache(cache_file: Path | None, key: str) -> dict[str, _Listing]:
    if cache_file is None:
        return {}
    try:
        data: Any = json.loads(cache_file.read_bytes())
        if data.get("version") != _CACHE_VERSION or data.get("patterns") != key:
            return {}
        return {rel: _Listing(int(v[0]), tuple(v[1]), tuple(v[2])) for rel, v in data["dirs"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return {}  # a missing or damaged cache only costs a full scan


def _save_cache(cache_file: Path, key: str, listings: dict[str, _Listing]) -> None:
    data = {
        "version": _CACHE_VERSION,
        "patterns": key,
        "dirs": {r: [v.mtime_ns, list(v.subdirs), list(v.hidden)] for r, v in listings.items()},
    }
    tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode())
    os.replace(tmp, cache_file)


def _scan(ws: str, rel: str, comps: tuple[str, ...], mtime_ns: int, matcher: PathMatcher,
          unhide: PathMatcher) -> _Listing:
    subdirs: list[str] = []
    hidden: list[str] = []
    with os.scandir(os.path.join(ws, rel) if rel else ws) as it:
        for entry in it:
            is_dir = entry.is_dir(follow_symlinks=False)
            path = (*comps, entry.name)
            if (matcher.match_components(path, is_dir=is_dir) is not None
                    and unhide.match_components(path, is_dir=is_dir) is None):
                hidden.append(entry.name)
            elif is_dir:
                subdirs.append(entry.name)
    return _Listing(mtime_ns, tuple(sorted(subdirs)), tuple(sorted(hidden)))


def find_hidden(
    workspace: Path, patterns: Sequence[str], *, cache_file: Path | None = None,
    unhide: Sequence[str] = (),
) -> tuple[str, ...]:
    """Workspace-relative paths matching `patterns` but not `unhide` (`[hide] except`); a
    hidden directory is not entered, so an exception cannot reach inside one."""
    if not patterns:
        return ()
    ws = os.fspath(workspace)
    matcher = PathMatcher.of(patterns)
    unhider = PathMatcher.of(unhide)
    key = _patterns_key([*patterns, "\0except", *unhide])
    cached = _load_cache(cache_file, key)
    fresh: dict[str, _Listing] = {}
    racy_after = time.time_ns() - _RACY_NS
    found: list[str] = []
    stack: list[tuple[str, tuple[str, ...]]] = [("", ())]
    while stack:
        rel, comps = stack.pop()
        try:
            st = os.lstat(os.path.join(ws, rel)) if rel else os.stat(ws)
        except FileNotFoundError:
            continue  # removed while we walk
        if rel and not stat.S_ISDIR(st.st_mode):
            continue  # replaced by a symlink/file since its parent was listed: never follow
        listing = cached.get(rel)
        if listing is None or listing.mtime_ns != st.st_mtime_ns:
            try:
                listing = _scan(ws, rel, comps, st.st_mtime_ns, matcher, unhider)
            except (FileNotFoundError, NotADirectoryError):
                continue
        if listing.mtime_ns < racy_after:
            fresh[rel] = listing
        found.extend(f"{rel}/{h}" if rel else h for h in listing.hidden)
        for sub in reversed(listing.subdirs):
            stack.append((f"{rel}/{sub}" if rel else sub, (*comps, sub)))
    if cache_file is not None and fresh != cached:  # unchanged: no write, no rename per run
        with contextlib.suppress(OSError):
            _save_cache(cache_file, key, fresh)
    return tuple(sorted(found, key=lambda p: tuple(p.split("/"))))


def build_mask(
    workspace: Path,
    mask_dir: Path,
    patterns: Sequence[str],
    owner: tuple[int, int],
    *,
    cache_file: Path | None = None,
    unhide: Sequence[str] = (),
) -> tuple[str, ...]:
    """Fill `mask_dir` with a whiteout for every workspace entry matching `patterns` (and
    not `unhide`).

    Intermediate directories copy the workspace dir's permission bits and mtime and belong to
    `owner` (uid, gid): overlay shows the topmost layer's directory attributes, so they must
    look like the real ones. Returns the hidden paths (pass them to compute_changeset).
    """
    hidden = find_hidden(workspace, patterns, cache_file=cache_file, unhide=unhide)
    mask_dir.mkdir(parents=True, exist_ok=True)
    mfd = os.open(mask_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in os.listdir(mfd):  # a stale mask from an earlier run
            rmtree_at(mfd, name)
        made: list[tuple[str, os.stat_result]] = []
        for rel in hidden:
            parent, _, name = rel.rpartition("/")
            _make_parents(workspace, mask_dir, parent, made)
            _overlay.make_whiteout(os.path.join(mask_dir, rel))
        ws_st = os.stat(workspace)
        made.append(("", ws_st))
        # Set attributes deepest first: creating entries inside a dir would bump its mtime.
        for rel, st in sorted(made, key=lambda m: m[0].count("/") + bool(m[0]), reverse=True):
            path = os.path.join(mask_dir, rel) if rel else os.fspath(mask_dir)
            os.chown(path, owner[0], owner[1], follow_symlinks=False)
            os.chmod(path, stat.S_IMODE(st.st_mode), follow_symlinks=False)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    finally:
        os.close(mfd)
    return hidden


def _make_parents(
    workspace: Path,
    mask_dir: Path,
    parent: str,
    made: list[tuple[str, os.stat_result]],
) -> None:
    if not parent:
        return
    walked = ""
    for comp in parent.split("/"):
        walked = f"{walked}/{comp}" if walked else comp
        target = os.path.join(mask_dir, walked)
        if os.path.lexists(target):
            continue
        st = os.lstat(os.path.join(workspace, walked))
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{walked!r} is no longer a directory in the workspace")
        os.mkdir(target, 0o700)
        made.append((walked, st))
