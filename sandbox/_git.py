"""Every git process `sandbox` starts on the host, over a workspace's repository.

The repository's own config and hooks are not the person's to vouch for: they came with the
checkout, or an agent wrote them in a session someone approved. git runs code they name: hooks
(`post-index-change` on read-tree, `reference-transaction` on update-ref), `core.fsmonitor` (a
command git runs when it reads the index), filter drivers (hash-object), external diff and
textconv drivers (log, show, diff), gpg programs (signatures). Any of them would run on the
host, as the person running `sandbox`. So each call here:
- overrides those settings on the command line (which wins over every config file), and adds
  the per-command flags that switch off filters and diff drivers;
- gets a fixed environment: no system config; no global config either unless the caller needs
  the person's identity (export's commit), no GIT_* of the caller's (GIT_DIR would point git at
  another repository), no prompts, no replace refs, and a timeout.

Nothing here may import more than the standard library: it is on the `sandbox run` path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.errors import SandboxError

__all__ = ["GitMissing", "GitTimeout", "GitUnavailable", "git", "run_git"]

# `-c` settings: the command line outranks the repository's (and any other) config file.
_SAFE_CONFIG = (
    "safe.directory=*",  # root reads a user's repository (and a user root's) without refusing
    "core.hooksPath=/dev/null",  # no hook at all
    "core.fsmonitor=false",  # a path here is a command git runs on every index read
    "core.pager=cat",
    "core.editor=false",
    "core.askPass=false",
    "core.sshCommand=false",
    "credential.helper=",  # an empty value clears the list of helpers
    "protocol.allow=never",  # no transport (ext:: runs commands): everything here is local
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "log.showSignature=false",
    "gpg.program=false",
)
# Flags inserted right after the subcommand: no external diff (`diff.external`, which an empty
# value cannot switch off) and no driver a `.gitattributes` selects by path.
_FLAGS: Mapping[str, tuple[str, ...]] = {
    "log": ("--no-ext-diff", "--no-textconv"),
    "show": ("--no-ext-diff", "--no-textconv"),
    "diff": ("--no-ext-diff", "--no-textconv"),
    "hash-object": ("--no-filters",),
}
# Commands that may read working-tree files through a filter driver: an index write re-reads
# a "racily clean" file (one modified in the second the index was written) to compare it, and
# hash-object/add read content. Before these, the repository's filter drivers are listed and
# each is switched off by name (`.gitattributes`, which selects them, cannot be switched off
# before git 2.40's attr.source).
_WRITES_INDEX = frozenset({"update-index", "read-tree", "write-tree", "add", "hash-object",
                           "status", "diff", "checkout", "commit"})
# The person's identity, for commits made on their behalf (export); only with `person=True`.
_IDENTITY = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
             "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE")
DEFAULT_TIMEOUT_S = 60.0


class GitUnavailable(SandboxError):
    """git could not answer: not installed, could not start, or did not finish in time."""


class GitMissing(GitUnavailable):
    pass


class GitTimeout(GitUnavailable):
    pass


def _env(person: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_ATTR_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_OPTIONAL_LOCKS": "0", "GIT_NO_REPLACE_OBJECTS": "1", "GIT_PAGER": "cat"}
    if person:  # the person's own ~/.gitconfig (user.name/email), and their identity variables
        for key in ("HOME", "XDG_CONFIG_HOME", *_IDENTITY):
            if key in os.environ:
                env[key] = os.environ[key]
    else:
        env |= {"GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull}
    return env | dict(extra or {})


def git(workspace: Path, *args: str, discover: bool = False, index: Path | None = None,
        objects: Path | None = None, data: bytes | None = None,
        env: Mapping[str, str] | None = None, person: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    """git `args` on the repository of `workspace` (its `.git`; with `discover`, the repository
    git finds from there, which may be above it). `index`: another index file; `objects`:
    another object store, with the repository's as an alternate. Any exit status is returned;
    GitUnavailable when git did not run to the end."""
    exe = shutil.which("git")
    if exe is None:
        raise GitMissing("git is not installed", hint="install git (apt-get install git)")
    extra = dict(env or {})
    if index is not None:
        extra["GIT_INDEX_FILE"] = os.fspath(index)
    if objects is not None:
        extra["GIT_OBJECT_DIRECTORY"] = os.fspath(objects)
        extra["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = os.fspath(workspace / ".git" / "objects")
    where = ["-C", os.fspath(workspace)] if discover else [
        "--git-dir", os.fspath(workspace / ".git"), "--work-tree", os.fspath(workspace)]
    base = [exe, "--no-pager", *(arg for item in _SAFE_CONFIG for arg in ("-c", item)), *where]
    sub, rest = (args[0], args[1:]) if args else ("", ())
    env_ = _env(person, extra)
    drivers: list[str] = []
    if sub in _WRITES_INDEX:
        listing = _run([*base, "config", "--name-only", "--null", "--get-regexp", r"^filter\."],
                       None, env_, timeout, "config")
        drivers = _no_filters(listing.stdout if listing.returncode == 0 else b"")
    return _run([*base, *drivers, sub, *_FLAGS.get(sub, ()), *rest], data, env_, timeout, sub)


def _run(argv: list[str], data: bytes | None, env: dict[str, str], timeout: float,
         sub: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, input=data, capture_output=True, check=False, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise GitTimeout(f"git {sub} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise GitUnavailable(f"git {sub} could not start: {exc}") from exc


def _no_filters(names: bytes) -> list[str]:
    """`-c` settings that empty every filter driver configured (an empty command is no
    filter) and make none of them required (a required filter that did not run fails)."""
    drivers = {key.partition(".")[2].rpartition(".")[0]
               for key in names.decode("utf-8", "surrogateescape").split("\0") if key}
    return [arg for name in sorted(drivers) if name
            for item in (f"filter.{name}.clean=", f"filter.{name}.smudge=",
                         f"filter.{name}.process=", f"filter.{name}.required=false")
            for arg in ("-c", item)]


def run_git(workspace: Path, *args: str, index: Path | None = None,
            objects: Path | None = None, data: bytes | None = None,
            timeout: float = DEFAULT_TIMEOUT_S) -> subprocess.CompletedProcess[bytes] | None:
    """`git` for callers that treat "git could not answer" like a failed command: None."""
    try:
        return git(workspace, *args, index=index, objects=objects, data=data, timeout=timeout)
    except GitUnavailable:
        return None


def config_list(path: Path, timeout: float = 10.0) -> bytes | None:
    """`git config --list --null` of one file, includes not followed (parsing only: nothing in
    the file runs); None when git could not read it."""
    try:
        r = git(path.parent, "config", "--file", os.fspath(path), "--no-includes", "--list",
                "--null", timeout=timeout)
    except GitUnavailable:
        return None
    return r.stdout if r.returncode == 0 else None


def literal(paths: Sequence[str]) -> list[str]:
    """Paths as pathspecs that match exactly those names (no globbing, no magic)."""
    return [f":(literal){p}" for p in paths]
