"""Keep the workspace's git credentials out of the sandbox.

`.git/config` often holds credentials: a token in a remote URL (`https://x:TOKEN@host/...`),
the header CI checkouts write (`http.<url>.extraheader = AUTHORIZATION: basic ...`), credential
helpers and their paths, includes of files outside the workspace. The sandbox sees, through the
hide mask (a lower layer above the workspace), a rewrite of that file without them; everything
else git needs (core, remotes without userinfo, branches) is kept, so status, diff, log, branch
and commit still work inside.

The file is parsed by git itself (`git config --list --null`), so what counts as a key is what
git thinks; if git cannot parse it, the sandbox gets a minimal config (fail closed). A change
the sandbox makes to a scrubbed `.git/config` is never committed: it was made to a view without
the credentials, and writing it back would drop them (`scrubbed_paths` makes it a hidden path).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

GIT_CONFIG = ".git/config"
# Cheap pre-check on the raw bytes: only a config that might hold a credential is parsed.
_SUSPECT = re.compile(rb"(?i)extraheader|credential|include|://[^\s/@]*@")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_FALLBACK = b"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
_MAX_CONFIG = 1 << 20


@dataclass(frozen=True)
class _Entry:
    section: str
    subsection: str | None
    name: str
    value: str | None  # None: a key without "=" (boolean true)


def _read(workspace: Path) -> bytes | None:
    try:
        if not stat.S_ISDIR(os.lstat(workspace / ".git").st_mode):
            return None  # a gitdir file or symlink: the repository is elsewhere
        fd = os.open(workspace / GIT_CONFIG, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _MAX_CONFIG)
    finally:
        os.close(fd)


def may_hold_credentials(path: Path) -> bool:
    """Whether the git config file at `path` might hold a credential (the cheap check on its
    bytes; unreadable counts as might)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_CONFIG)
    except OSError:
        return True
    return _SUSPECT.search(raw) is not None


def scrubbed_git_config(workspace: Path) -> bytes | None:
    """The workspace's .git/config without credential-bearing values; None when there is no
    such file or nothing in it to remove."""
    raw = _read(workspace)
    if raw is None or not _SUSPECT.search(raw):
        return None
    entries = _parse_cached(raw, workspace / GIT_CONFIG)
    if entries is None:
        return _FALLBACK
    kept = [e for e in (_scrub(e, workspace) for e in entries) if e is not None]
    if kept == entries:
        return None
    return _render(kept)


def scrubbed_paths(workspace: Path) -> tuple[str, ...]:
    """Paths the sandbox saw scrubbed: a change there must never be committed."""
    return (GIT_CONFIG,) if scrubbed_git_config(workspace) is not None else ()


# git's parse of a config, by its bytes: a run looks at .git/config twice (the sandbox's view,
# then the changes), a server on every run, and each parse spawns git. Parsed with
# --no-includes, the result depends on those bytes alone.
_PARSED: dict[bytes, tuple[_Entry, ...]] = {}
_PARSED_KEEP = 8


def _parse_cached(raw: bytes, path: Path) -> list[_Entry] | None:
    if len(raw) >= _MAX_CONFIG:  # only a prefix was read: it does not identify the file
        return _parse(path)
    hit = _PARSED.get(raw)
    if hit is not None:
        return list(hit)
    entries = _parse(path)
    if entries is None:
        return None  # git could not read it: ask again next time
    if len(_PARSED) >= _PARSED_KEEP:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[raw] = tuple(entries)
    return entries


def _parse(path: Path) -> list[_Entry] | None:
    from sandbox._git import config_list

    listing = config_list(path)
    if listing is None:
        return None
    entries: list[_Entry] = []
    for item in listing.decode("utf-8", "surrogateescape").split("\0"):
        if not item:
            continue
        key, sep, value = item.partition("\n")
        section, _, rest = key.partition(".")
        sub, _, name = rest.rpartition(".")
        entries.append(_Entry(section.lower(), sub or None, name.lower(), value if sep else None))
    return entries


def _scrub(e: _Entry, workspace: Path) -> _Entry | None:
    if e.section == "credential" or (e.section == "http" and e.name == "extraheader"):
        return None
    if (e.section in ("include", "includeif") and e.name == "path"
            and (e.value is None or not _inside(e.value, workspace))):
        return None
    sub = _USERINFO.sub(r"\1", e.subsection) if e.subsection else e.subsection
    value = _USERINFO.sub(r"\1", e.value) if e.value else e.value
    return _Entry(e.section, sub, e.name, value)


def _inside(include: str, workspace: Path) -> bool:
    if include.startswith(("/", "~")):
        return False
    ws = os.path.realpath(workspace)
    target = os.path.realpath(os.path.join(ws, ".git", include))
    return target == ws or target.startswith(ws + os.sep)


def _quote(text: str) -> str:
    return '"' + (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                  .replace("\t", "\\t")) + '"'


def _render(entries: list[_Entry]) -> bytes:
    lines: list[str] = ["# scrubbed by sandbox: credentials removed (the real file is untouched)"]
    current: tuple[str, str | None] | None = None
    for e in entries:
        if (e.section, e.subsection) != current:
            current = (e.section, e.subsection)
            sub = "" if e.subsection is None else " " + _quote(e.subsection)
            lines.append(f"[{e.section}{sub}]")
        lines.append(f"\t{e.name}" if e.value is None else f"\t{e.name} = {_quote(e.value)}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def present_scrubbed(workspace: Path, mask_dir: Path, owner: tuple[int, int]) -> bool:
    """Put the scrubbed .git/config into the mask (a lower layer above the workspace), with the
    real file's mode and times and the real .git's directory attributes. False: nothing to do
    (no .git/config, nothing to remove, or .git hidden whole)."""
    content = scrubbed_git_config(workspace)
    if content is None:
        return False
    git_mask = mask_dir / ".git"
    if os.path.lexists(git_mask) and not git_mask.is_dir():
        return False  # .git is hidden whole (a whiteout): nothing of it is visible
    real_git = os.lstat(workspace / ".git")
    real_cfg = os.lstat(workspace / GIT_CONFIG)
    root_st = os.lstat(mask_dir)
    git_mask.mkdir(mode=0o700, exist_ok=True)
    cfg = git_mask / "config"
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    # overlay shows the topmost layer's attributes: make both look like the real ones
    for path, st in ((cfg, real_cfg), (git_mask, real_git)):
        os.chown(path, owner[0], owner[1], follow_symlinks=False)
        os.chmod(path, stat.S_IMODE(st.st_mode), follow_symlinks=False)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.utime(mask_dir, ns=(root_st.st_atime_ns, root_st.st_mtime_ns), follow_symlinks=False)
    return True


def _pathspec(pattern: str) -> str:
    """A hide pattern as a git glob pathspec (same meaning: a name anywhere, or a path)."""
    body = pattern.strip("/")
    if pattern.endswith("/"):
        body += "/**"
    return f":(glob){body}" if "/" in pattern.rstrip("/") else f":(glob)**/{body}"


HISTORY_TIMEOUT_S = 10.0  # a huge history is not worth a slow run start: then no warning


def hidden_in_history(workspace: Path, patterns: tuple[str, ...],
                      timeout_s: float | None = None) -> tuple[str, ...] | None:
    """Hidden paths that some commit of the workspace's repository holds: the sandbox can read
    them through git (`git show REV:PATH`) although the mask hides the working copy. None when
    the check could not be made (no git, git failed or did not finish in time)."""
    from sandbox._git import GitUnavailable, git

    if not (workspace / ".git").is_dir():
        return ()
    try:
        out = git(workspace, "log", "--all", "--no-renames", "--format=", "--name-only", "-z",
                  "--", *(_pathspec(p) for p in patterns),
                  timeout=HISTORY_TIMEOUT_S if timeout_s is None else timeout_s)
    except GitUnavailable:
        return None
    if out.returncode != 0:
        return None
    names = {n for n in out.stdout.decode("utf-8", "replace").split("\0") if n.strip()}
    return tuple(sorted(n.strip() for n in names))
