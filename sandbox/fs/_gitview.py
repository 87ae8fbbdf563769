"""Hidden files that git tracks: untouched in the sandbox's view of git, untouchable by it.

The mask hides `.env` with a whiteout, so git inside would see a tracked file deleted and an
agent's `git add -A && git commit` would record its deletion. So the sandbox is shown a copy
of the index in which those entries are marked assume-unchanged (git then never looks at the
worktree file: `git status` shows it unmodified, `add -A`/`commit -a` keep it as it is), and
the marks are taken off again after the run, so they never reach the person's repository.
After the run, any new commit, moved ref or index entry that would delete, replace or add a
hidden path is forbidden (`violations`), whatever git commands the agent used.

git runs here on the person's repository through `sandbox._git` (nothing the repository
configures runs), and only when the workspace is a repository with hidden files in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from sandbox._git import literal as _literal
from sandbox._git import run_git
from sandbox.fs._changeset import Change, ChangeKind, FileType
from sandbox.fs._rules import HIDDEN_TRACKED as RULE
from sandbox.fs._rules import HiddenIndex

INDEX = ".git/index"
_SHA = re.compile(rb"^[0-9a-f]{40}([0-9a-f]{24})?$")


def tracked(workspace: Path, hidden: Sequence[str], index: Path | None = None) -> dict[str, bool]:
    """{tracked path at or below a hidden path: already assume-unchanged in that index}."""
    if not hidden or not (workspace / INDEX).is_file():
        return {}
    r = run_git(workspace, "ls-files", "-v", "-z", "--", *_literal(hidden), index=index)
    if r is None or r.returncode != 0:
        return {}
    out: dict[str, bool] = {}
    for item in r.stdout.split(b"\0"):
        if len(item) > 2:
            out[os.fsdecode(item[2:])] = item[:1].islower()
    return out


def _mark(workspace: Path, index: Path, paths: Sequence[str], on: bool) -> None:
    present = tracked(workspace, paths, index) if not on else dict.fromkeys(paths, False)
    if not present:
        return
    flag = "--assume-unchanged" if on else "--no-assume-unchanged"
    st = index.stat()
    data = b"".join(os.fsencode(p) + b"\0" for p in present)
    run_git(workspace, "update-index", flag, "-z", "--stdin", index=index, data=data)
    try:  # git replaced the file: keep the owner and mode it had (the sandbox's root's)
        os.chown(index, st.st_uid, st.st_gid)
        os.chmod(index, st.st_mode & 0o7777)
    except OSError:
        pass


def present(workspace: Path, mask_dir: Path, upper: Path, hidden: Sequence[str],
            owner: tuple[int, int], *, cache: Path | None = None) -> tuple[str, ...]:
    """Before a run: mark hidden tracked files assume-unchanged in the index the sandbox sees
    (the session's own copy in `upper` if it has one, else a copy in the mask layer, its
    `.git` looking like the real one and belonging to `owner`). Returns the paths marked.

    With `cache` (a per-workspace file prefix), an unchanged index costs a stat and a hard
    link: the marked copy is kept there, keyed by the real index's identity and `hidden`."""
    real = workspace / INDEX
    if not hidden or not real.is_file():
        return ()
    ist = real.stat()
    key = json.dumps([ist.st_ino, ist.st_size, ist.st_mtime_ns, ist.st_ctime_ns, list(hidden),
                      list(owner)])
    own = upper / INDEX
    has_own = own.is_file() and not own.is_symlink()
    cached = _cached(cache, key) if cache is not None and not has_own else None
    if cached is not None:
        todo, copy_from = cached
    else:
        todo, copy_from = tuple(p for p, on in tracked(workspace, hidden).items() if not on), None
    if not todo:
        return ()
    if has_own:
        _mark(workspace, own, todo, on=True)
        return todo
    copy = mask_dir / INDEX
    gdir = copy.parent
    gdir.mkdir(mode=0o700, exist_ok=True)
    if copy_from is not None:
        try:
            os.link(copy_from, copy)
        except OSError:  # another filesystem: a copy will do
            shutil.copyfile(copy_from, copy, follow_symlinks=False)
            os.chown(copy, *owner)
    else:
        shutil.copyfile(real, copy, follow_symlinks=False)
        os.chmod(copy, ist.st_mode & 0o7777)
        _mark(workspace, copy, todo, on=True)
        os.chown(copy, *owner)
        if cache is not None:
            _remember(cache, key, todo, copy)
    # The topmost layer's directory attributes are what the sandbox sees: the real ones.
    gst = (workspace / ".git").stat()
    os.chown(gdir, *owner)
    os.chmod(gdir, gst.st_mode & 0o7777)
    os.utime(gdir, ns=(gst.st_atime_ns, gst.st_mtime_ns))
    return todo


def _cached(cache: Path, key: str) -> tuple[tuple[str, ...], Path] | None:
    try:
        data = json.loads(cache.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    index = cache.with_suffix(".index")
    if not isinstance(data, dict) or data.get("key") != key or not index.is_file():
        return None
    return tuple(str(p) for p in data.get("todo", ())), index


def _remember(cache: Path, key: str, todo: tuple[str, ...], copy: Path) -> None:
    try:
        index = cache.with_suffix(".index")
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        os.link(copy, tmp)
        os.replace(tmp, index)
        meta = cache.with_suffix(".json")
        meta.with_suffix(".jtmp").write_text(json.dumps({"key": key, "todo": list(todo)}))
        os.replace(meta.with_suffix(".jtmp"), meta)
    except OSError:
        pass  # no cache: the next run builds the copy again


def withdraw(workspace: Path, upper: Path, hidden: Sequence[str]) -> None:
    """After a run: take our marks off the index the run left in `upper` (if it wrote one):
    those `present` made, i.e. where the real index has none."""
    own = upper / INDEX
    if not hidden or not own.is_file() or own.is_symlink():
        return
    ours = [p for p, already in tracked(workspace, hidden).items() if not already]
    if ours:
        _mark(workspace, own, ours, on=False)


def _new_tips(upper: Path, changes: Sequence[Change]) -> list[str]:
    tips: list[str] = []
    for c in changes:
        if c.new_type is not FileType.FILE or c.kind is ChangeKind.DELETED:
            continue
        if not (c.path.startswith(".git/refs/") or c.path in (".git/packed-refs", ".git/HEAD")):
            continue
        try:
            text = (upper / c.path).read_bytes()[:1 << 20]
        except OSError:
            continue
        for line in text.splitlines():
            word = line.split(b" ", 1)[0].strip().lstrip(b"^")
            if _SHA.match(word):
                tips.append(word.decode())
    return tips


def violations(upper: Path, workspace: Path, changes: Sequence[Change],
               covers: HiddenIndex) -> dict[str, str]:
    """{changed .git path: why it is forbidden} for git changes that would delete, replace or
    add a hidden path: new commits reachable from a changed ref, or the index."""
    git_changes = [c for c in changes if c.path.startswith(".git/")]
    if not git_changes or not (workspace / ".git").is_dir():
        return {}
    out: dict[str, str] = {}
    tips = _new_tips(upper, git_changes)
    if tips:
        bad = _bad_commits(upper, workspace, tips, covers)
        if bad:
            for c in git_changes:
                if c.path.startswith(".git/refs/") or c.path in (".git/packed-refs",
                                                                 ".git/HEAD"):
                    out[c.path] = f"{RULE}: {bad}"
    if any(c.path == INDEX and c.new_type is FileType.FILE for c in git_changes):
        bad = _bad_index(upper, workspace, covers)
        if bad:
            out[INDEX] = f"{RULE}: {bad}"
    return out


def _bad_commits(upper: Path, workspace: Path, tips: list[str],
                 covers: HiddenIndex) -> str | None:
    objects = upper / ".git" / "objects"
    r = run_git(workspace, "log", "-z", "--format=%x01%H %P", "--name-only",
             "--diff-merges=first-parent", *tips, "--not", "--all",
             objects=objects if objects.is_dir() else None)
    if r is None or r.returncode != 0:
        return "the run's git history cannot be checked for hidden files"
    tracked_hidden = set(tracked(workspace, sorted(covers.exact)))
    for record in r.stdout.split(b"\x01")[1:]:
        head, _, names = record.partition(b"\n")
        fields = head.split()
        commit, parents = fields[0].decode(), fields[1:]
        paths = [os.fsdecode(n.strip(b"\n")) for n in names.split(b"\0") if n.strip(b"\n")]
        for path in paths:
            if covers.covers(path) is not None:
                return f"commit {commit[:12]} changes hidden file {path!r}"
        if not parents:
            missing = sorted(tracked_hidden - set(paths))
            if missing:
                return f"commit {commit[:12]} leaves out hidden file {missing[0]!r}"
    return None


def _bad_index(upper: Path, workspace: Path, covers: HiddenIndex) -> str | None:
    theirs = _entries(workspace, None)
    ours = _entries(workspace, upper / INDEX)
    if theirs is None or ours is None:
        return "the run's git index cannot be checked for hidden files"
    for path in sorted(set(theirs) | set(ours)):
        if theirs.get(path) != ours.get(path) and covers.covers(path) is not None:
            what = "removes" if path not in ours else "adds" if path not in theirs else "replaces"
            return f"the index {what} hidden file {path!r}"
    return None


def _entries(workspace: Path, index: Path | None) -> dict[str, bytes] | None:
    r = run_git(workspace, "ls-files", "-s", "-z", index=index)
    if r is None or r.returncode != 0:
        return None
    out: dict[str, bytes] = {}
    for item in r.stdout.split(b"\0"):
        meta, _, name = item.partition(b"\t")
        if name:
            out[os.fsdecode(name)] = meta
    return out
