"""Drop committed or rejected changes from an upper dir, keeping the rest pending.

For each listed path the upper is edited so that the overlay's view at that path equals the
workspace (`lower`) again, while every other path keeps its pending change:
- after a commit, the workspace already has the new state, so the upper entry just goes;
- after a reject, the upper entry goes, and a deletion is undone even when it came from an
  ancestor (a whiteout or replaced directory becomes a directory of whiteouts for the entries
  whose deletion stays pending; an opaque directory becomes explicit whiteouts).
The overlay must not be mounted while this runs. Symlinks are never followed, in either tree.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.fs import _base, _overlay
from sandbox.fs._safeio import O_DIR, DirFds, UnsafePathError, lstat_at, rmtree_at, split


def _parents_first(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


@dataclass
class _Discard:
    up: DirFds
    low: DirFds
    touched: set[str] = field(default_factory=set)  # upper dirs to consider for pruning

    # -- lookups -------------------------------------------------------------------------
    def upper_stat(self, rel: str) -> os.stat_result | None:
        parent, name = split(rel)
        try:
            return lstat_at(self.up.get(parent), name)
        except UnsafePathError:
            return None

    def lower_stat(self, rel: str) -> os.stat_result | None:
        parent, name = split(rel)
        try:
            return lstat_at(self.low.get(parent), name)
        except UnsafePathError:
            return None

    def opaque_name(self, rel: str) -> str | None:
        if rel == "":
            path = f"/proc/self/fd/{self.up.root_fd}"
        else:
            parent, name = split(rel)
            path = f"/proc/self/fd/{self.up.get(parent)}/{name}"
        return _overlay.opaque_xattr(path, _overlay.listxattr(path))

    # -- edits ---------------------------------------------------------------------------
    def remove(self, rel: str) -> None:
        parent, name = split(rel)
        try:
            pfd = self.up.get(parent)
        except UnsafePathError:
            return
        self.up.forget(rel)
        rmtree_at(pfd, name)
        self.touched.add(parent)

    def whiteout_lower_children(self, rel: str, keep: set[str]) -> None:
        """Whiteout every lower child of `rel` missing from the upper dir `rel` (but `keep`)."""
        try:
            lfd = self.low.get(rel)
        except UnsafePathError:
            return
        ufd = self.up.get(rel)
        present = set(os.listdir(ufd))
        for child in os.listdir(lfd):
            if child not in present and child not in keep:
                _overlay.make_whiteout(child, dir_fd=ufd)

    def unopaque(self, rel: str, xattr: str) -> None:
        """Same view, explicit form: whiteouts for hidden lower children, opaque subdirs."""
        ufd = self.up.get(rel)
        self.whiteout_lower_children(rel, set())
        for child in os.listdir(ufd):
            crel = f"{rel}/{child}" if rel else child
            ust = lstat_at(ufd, child)
            lst = self.lower_stat(crel)
            if (
                ust is not None
                and lst is not None
                and stat.S_ISDIR(ust.st_mode)
                and stat.S_ISDIR(lst.st_mode)
                and self.opaque_name(crel) is None
            ):
                os.setxattr(f"/proc/self/fd/{ufd}/{child}", xattr, b"y", follow_symlinks=False)
        path = f"/proc/self/fd/{self.up.root_fd}" if rel == "" else f"/proc/self/fd/{ufd}"
        os.removexattr(path, xattr)
        self.touched.add(rel)

    def dir_of_whiteouts(self, rel: str, lst: os.stat_result) -> None:
        """Replace the upper entry at `rel` by a copy-up-like dir hiding all lower children."""
        self.remove(rel)
        parent, name = split(rel)
        pfd = self.up.get(parent)
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, O_DIR, dir_fd=pfd)
        try:
            # Like overlay copy-up: the dir looks exactly like the lower one to the sandbox.
            os.fchown(fd, lst.st_uid, lst.st_gid)
            os.fchmod(fd, stat.S_IMODE(lst.st_mode))
        finally:
            os.close(fd)
        self.whiteout_lower_children(rel, set())
        os.utime(name, ns=(lst.st_atime_ns, lst.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
        self.touched.add(rel)

    # -- the algorithm -------------------------------------------------------------------
    def make_reachable(self, rel: str) -> bool:
        """Make the lower entry at `rel` visible through every upper ancestor."""
        parts = rel.split("/")
        for i in range(len(parts)):
            anc = "/".join(parts[:i])
            ust = self.upper_stat(anc) if anc else os.fstat(self.up.root_fd)
            if ust is None:
                return True  # nothing of upper below here: lower shows through
            if stat.S_ISDIR(ust.st_mode):
                xattr = self.opaque_name(anc)
                if xattr is not None:
                    self.unopaque(anc, xattr)
                continue
            lst = self.lower_stat(anc)
            if lst is None or not stat.S_ISDIR(lst.st_mode):
                return False
            self.dir_of_whiteouts(anc, lst)
        return True

    def discard(self, rel: str) -> None:
        lst = self.lower_stat(rel)
        if lst is not None and not self.make_reachable(rel):
            return
        ust = self.upper_stat(rel)
        if ust is None:
            return
        if lst is None or not stat.S_ISDIR(lst.st_mode):
            self.remove(rel)
            return
        if stat.S_ISDIR(ust.st_mode):
            parent, name = split(rel)
            if stat.S_IMODE(ust.st_mode) != stat.S_IMODE(lst.st_mode):
                os.chmod(name, stat.S_IMODE(lst.st_mode), dir_fd=self.up.get(parent))
            self.touched.add(rel)
            return
        # A whiteout or a replacement over a lower dir: restore the dir itself; its children
        # stay deleted unless they are listed too (handled after us, parents first).
        self.dir_of_whiteouts(rel, lst)

    def prune(self) -> None:
        """Remove upper dirs left empty that carry no change of their own."""
        pending = sorted(self.touched, key=lambda p: p.count("/"), reverse=True)
        seen: set[str] = set()
        while pending:
            rel = pending.pop(0)
            if rel in seen or rel == "":
                continue
            seen.add(rel)
            ust = self.upper_stat(rel)
            if ust is None or not stat.S_ISDIR(ust.st_mode):
                continue
            parent, name = split(rel)
            if os.listdir(self.up.get(rel)) or self.opaque_name(rel) is not None:
                continue
            lst = self.lower_stat(rel)
            if (
                lst is None
                or not stat.S_ISDIR(lst.st_mode)
                or stat.S_IMODE(lst.st_mode) != stat.S_IMODE(ust.st_mode)
            ):
                continue  # an added dir, or a mode change: still a pending change
            self.up.forget(rel)
            try:
                os.rmdir(name, dir_fd=self.up.get(parent))
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT):
                    raise
                continue
            pending.append(parent)
            pending.sort(key=lambda p: p.count("/"), reverse=True)


def discard_paths(upper: Path, paths: Sequence[str], *, lower: Path) -> None:
    """Remove the changes at exactly `paths` from `upper`, keeping every other one pending.

    `lower` is the workspace as it is now (after a commit, or untouched after a reject); it
    is required because the upper alone cannot say whether an empty directory is a pending
    addition, nor which lower entries an opaque directory still has to hide: guessing wrong
    would leave phantom deletions that a later "approve all" would carry out. `paths` are
    exact change paths (expand user-given subtrees with `ChangeSet.select` first).
    """
    wanted = sorted({p.strip("/") for p in paths if p.strip("/")}, key=_parents_first)
    with DirFds(upper) as up, DirFds(lower) as low:
        job = _Discard(up, low)
        for rel in wanted:
            job.discard(rel)
        job.prune()
    # Gone from the pending changes: a later change there records a new base.
    _base.forget(upper.parent, wanted)
