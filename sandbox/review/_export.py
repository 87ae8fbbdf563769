"""`sandbox export`: a pending changeset as a commit on a new branch, for code review.

Only git plumbing, so neither the working tree nor the real index is touched: blobs are written
with `hash-object -w`, the tree is built in a temporary index (GIT_INDEX_FILE) seeded from
HEAD, and `commit-tree` + `update-ref` (with the all-zero old value, so an existing branch is
never moved) create the branch. The commit's parent is HEAD, so the branch shows exactly the
run's changes against what is committed.

Commits the run made on its branch are carried as they are (same ids, messages and authors:
their objects are copied into the repository) when `--include-protected` asks for the git
history; the branch then holds them, and one more commit for what was not committed inside.

What is left out, each with the reason reported: forbidden changes (never leave the sandbox),
protected ones unless asked (a pushed branch may run its CI config), paths inside `.git`
(git cannot hold them; commits are carried as above), untracked files git ignores (caches,
build output), and directories (git does not track them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox._git import GitMissing, git
from sandbox.errors import SandboxError, UsageError
from sandbox.fs import Change, ChangeKind, ChangeSet, FileType
from sandbox.governance import Risk, Verdict
from sandbox.review._io import Tree

__all__ = ["ExportResult", "export_changeset"]

_FALLBACK_IDENT = {"GIT_AUTHOR_NAME": "sandbox", "GIT_AUTHOR_EMAIL": "sandbox@localhost",
                   "GIT_COMMITTER_NAME": "sandbox", "GIT_COMMITTER_EMAIL": "sandbox@localhost"}


@dataclass(frozen=True)
class ExportResult:
    branch: str
    commit: str
    base: str | None  # the parent commit (HEAD), None in a repository without commits
    paths: tuple[str, ...]  # workspace-relative paths written or removed in the commit
    skipped: tuple[tuple[str, str], ...]  # (path, why it was left out)
    carried: tuple[str, ...] = ()  # the run's own commits on the branch, newest first


@dataclass(frozen=True)
class _Git:
    """git on the repository holding `workspace`, through the one host-side wrapper (nothing of
    the repository's runs), as the person (their identity), failures as SandboxErrors."""

    workspace: Path

    def run(self, *args: str, input: bytes | None = None, ok: Sequence[int] = (0,),
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = git(self.workspace, *args, discover=True, person=True, data=input, env=env)
        except GitMissing as exc:
            raise UsageError("git is not installed", hint="install git to export") from exc
        if proc.returncode not in ok:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise SandboxError(f"git {args[0]} failed: {err}")
        return proc

    def out(self, *args: str, input: bytes | None = None,
            env: Mapping[str, str] | None = None) -> str:
        return self.run(*args, input=input, env=env).stdout.decode().strip()


def _inside_git_dir(path: str) -> bool:
    return any(part.lower() == ".git" for part in path.split("/"))


def _left_out(c: Change, verdict: Verdict | None, include_protected: bool) -> str | None:
    if c.forbidden:
        return "forbidden: " + "; ".join(c.forbidden)
    if verdict is not None and verdict.risk is Risk.PROTECTED and not include_protected:
        return f"{verdict.reason}; pass --include-protected to export it"
    if _inside_git_dir(c.path):
        return "inside .git"
    return None


def _git_mode(c: Change) -> int | None:
    if c.new_type is None or c.new_mode is None:
        return None
    return c.new_type.git_mode(c.new_mode)


def _open_repo(git: _Git, branch: str) -> tuple[str, str | None, int]:
    """(path prefix of the workspace in its repository, HEAD or None, object id length)."""
    probe = git.run("rev-parse", "--show-prefix", ok=(0, 128))
    if probe.returncode != 0:
        err = probe.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in err:
            raise UsageError(f"{git.workspace} is not in a git repository",
                             hint="`git init` it first, or use `sandbox diff RUN > x.patch`")
        raise UsageError(f"git cannot use the repository of {git.workspace}: {err}")
    prefix = probe.stdout.decode().strip()
    if git.run("check-ref-format", "--branch", branch, ok=(0, 1, 128)).returncode != 0:
        raise UsageError(f"invalid branch name {branch!r}")
    if git.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}",
               ok=(0, 1)).returncode == 0:
        raise UsageError(f"branch {branch!r} already exists",
                         hint="export creates a new branch; choose another name")
    head = git.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok=(0, 1))
    base = head.stdout.decode().strip() if head.returncode == 0 else None
    fmt = git.run("rev-parse", "--show-object-format", ok=(0, 128)).stdout.decode().strip()
    return prefix, base, 64 if fmt == "sha256" else 40


def _ignored(git: _Git, paths: Sequence[str]) -> set[str]:
    if not paths:
        return set()
    data = b"".join(os.fsencode(p) + b"\0" for p in paths)
    proc = git.run("check-ignore", "-z", "--stdin", input=data, ok=(0, 1))
    return {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}


def _agent_commits(cs: ChangeSet, upper: Path, workspace: Path, git: _Git, base: str | None,
                   include_protected: bool, skipped: list[tuple[str, str]]) -> tuple[str, ...]:
    """The commits the run made on its branch (newest first), their objects copied into the
    repository, when they may be carried (protected: only with --include-protected; never
    when the ref change is forbidden); else (), with the reason in `skipped`."""
    from sandbox.fs import branch_work, git_work, pack_commits

    work = git_work(upper, workspace, cs.changes)
    move = branch_work(upper, workspace, work) if work else None
    if move is None or move.new is None:
        return ()
    label = f"{len(move.commits)} commit(s) made inside on {move.ref.removeprefix('refs/heads/')}"
    ref_change = cs.by_path(f".git/{move.ref}") if any(
        c.path == f".git/{move.ref}" for c in cs.changes) else None
    if ref_change is not None and ref_change.forbidden:
        skipped.append((label, "forbidden: " + "; ".join(ref_change.forbidden)))
        return ()
    if not include_protected:
        skipped.append((label, "git history is protected; pass --include-protected to carry "
                               "the commits (their files are exported as one commit)"))
        return ()
    pack = pack_commits(upper, workspace, move.new, base)
    if pack is None:
        raise SandboxError("could not read the commits made inside the sandbox",
                           hint="export without --include-protected to export the files only")
    git.run("unpack-objects", "-q", input=pack)
    return (move.new, *(c.sha for c in move.commits if c.sha != move.new))


def export_changeset(cs: ChangeSet, verdicts: Sequence[Verdict], *, upper: Path,
                     workspace: Path, branch: str, message: str,
                     include_protected: bool = False) -> ExportResult:
    """The changeset as a new branch: the commits the run made (messages, authors and ids
    kept) when carried, then one commit with `message` for the changes not committed inside."""
    git = _Git(workspace)
    prefix, base, oid_len = _open_repo(git, branch)
    skipped: list[tuple[str, str]] = []
    carried = _agent_commits(cs, upper, workspace, git, base, include_protected, skipped) \
        if not prefix else ()  # a workspace below the top: its .git is not the repository's
    tip = carried[0] if carried else None
    parent = tip or base
    by_path = {v.path: v for v in verdicts}
    writes: list[tuple[Change, int]] = []
    removes: list[Change] = []
    in_git = [c for c in cs.changes if _inside_git_dir(c.path) and not c.forbidden]
    if in_git:  # object files, refs, logs: one line, the commits above say what they are
        skipped.append((f".git ({len(in_git)} file(s))", "carried as the commits made inside"
                        if tip else "git's own files are not content; see the commits above"
                        if any("commit(s) made inside" in p for p, _ in skipped)
                        else "inside .git (git cannot hold them)"))
    for c in cs.changes:
        if c in in_git:
            continue
        why = _left_out(c, by_path.get(c.path), include_protected)
        if why is not None:
            skipped.append((c.path, why))
            continue
        if c.old_type not in (None, FileType.DIR) and (
                c.kind is ChangeKind.DELETED or c.new_type is FileType.DIR):
            removes.append(c)
        mode = _git_mode(c) if c.kind is not ChangeKind.DELETED else None
        if mode is not None:
            writes.append((c, mode))
    new_files = [prefix + c.path for c, _ in writes if c.kind is ChangeKind.ADDED]
    ignored = _ignored(git, new_files)
    if ignored:
        skipped += [(c.path, "ignored by git (.gitignore)") for c, _ in writes
                    if prefix + c.path in ignored]
        writes = [(c, m) for c, m in writes if prefix + c.path not in ignored]
    if not writes and not removes and tip is None:
        raise UsageError("nothing to export" + (f" ({len(skipped)} change(s) left out)"
                                                if skipped else ""))
    tmp = Path(tempfile.mkdtemp(prefix="sandbox-export-"))
    try:
        blobs = _write_blobs(git, Tree(upper), [c for c, _ in writes], tmp)
        index_env = {"GIT_INDEX_FILE": str(tmp / "index")}
        if parent is None:
            git.run("read-tree", "--empty", env=index_env)
        else:
            git.run("read-tree", parent, env=index_env)
        zero = "0" * oid_len
        info = b"".join(b"0 %s\t%s\0" % (zero.encode(), os.fsencode(prefix + c.path))
                        for c in removes)
        info += b"".join(b"%o %s\t%s\0" % (mode, blob.encode(), os.fsencode(prefix + c.path))
                         for (c, mode), blob in zip(writes, blobs, strict=True))
        git.run("update-index", "-z", "--index-info", input=info, env=index_env)
        tree = git.out("write-tree", env=index_env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if tip is not None and tree == git.out("rev-parse", f"{tip}^{{tree}}"):
        commit = tip  # everything was committed inside: the branch is the run's own commits
    else:
        ident = {} if git.run("var", "GIT_COMMITTER_IDENT", ok=(0, 128)).returncode == 0 \
            else _FALLBACK_IDENT
        parents = ["-p", parent] if parent else []
        commit = git.out("commit-tree", tree, *parents, "-F", "-", input=message.encode(),
                         env=ident)
    git.run("update-ref", "-m", "sandbox export", f"refs/heads/{branch}", commit, "0" * oid_len)
    done = tuple(dict.fromkeys([c.path for c in removes] + [c.path for c, _ in writes]))
    return ExportResult(branch, commit, base, done, tuple(skipped), carried)


def _write_blobs(git: _Git, upper: Tree, changes: Sequence[Change], tmp: Path) -> list[str]:
    """Blob ids of the new content of `changes`. Content is read symlink-proof from the upper
    dir into private numbered files, so git reads exactly what the review showed."""
    names: list[str] = []
    for n, c in enumerate(changes):
        data = os.fsencode(upper.readlink(c.path)) if c.new_type is FileType.SYMLINK \
            else upper.read(c.path)
        path = tmp / f"blob-{n}"
        path.write_bytes(data)
        names.append(str(path))
    if not names:
        return []
    out = git.out("hash-object", "-w", "--stdin-paths",
                  input="".join(f"{p}\n" for p in names).encode())
    blobs = out.split()
    if len(blobs) != len(names):
        raise SandboxError("git hash-object returned an unexpected answer")
    return blobs
