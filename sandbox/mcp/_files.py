"""The file tools over a session's view: read, list, grep, and the text edit. Pure functions of a
`View`; the session (locking, audit, level-1 confirmation) wraps them in `_session.py`.

Output is written for a model: numbered lines, notes where something was cut, and limits that
keep one answer small (a huge file or a grep over everything never floods the context).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sandbox.fs._globs import PathMatcher
from sandbox.mcp._errors import ToolRefused
from sandbox.mcp._view import View, normalize

READ_LINES = 2000  # default `limit` of read_file
MAX_LINE_CHARS = 2000  # longer lines are cut (minified files)
MAX_READ_BYTES = 256 * 1024  # one read_file answer
MAX_FILE_BYTES = 10 * 1024 * 1024  # larger files are read in pieces (offset/limit)
MAX_LIST = 1000  # entries of one list_files answer
MAX_GREP_MATCHES = 200
MAX_GREP_FILE = 5 * 1024 * 1024  # grep skips larger files (say so)
GREP_TIMEOUT_S = 10.0  # one grep call, all files: a huge tree stops here
GREP_PATTERN_MEM = 8 << 20  # RE2's budget for one compiled pattern (its default, made explicit)
_SNIFF = 8192
SKIP_DIRS = frozenset({".git"})  # like ripgrep: never searched or listed by a pattern


@dataclass(frozen=True)
class Text:
    """A decoded text file of the view."""

    rel: str
    text: str
    mode: int


def _read_all(view: View, rel: str, limit: int) -> tuple[str, bytes, int, bool]:
    """(resolved rel, bytes up to `limit`, size, binary?) of the file at `rel`."""
    node, fd = view.open_file(rel)
    try:
        chunks: list[bytes] = []
        got = 0
        while got < limit:
            chunk = os.read(fd, min(1 << 20, limit - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return node.rel, data, node.st.st_size, b"\0" in data[:_SNIFF]


def read_text(view: View, path: str) -> Text:
    """The whole file as text, for an edit; binary and oversized files are refused."""
    rel = normalize(path, view.workspace)
    resolved, data, size, binary = _read_all(view, rel, MAX_FILE_BYTES + 1)
    if binary:
        raise ToolRefused(f"{rel}: a binary file; edit it with bash")
    if size > MAX_FILE_BYTES:
        raise ToolRefused(f"{rel}: {size} bytes is too large to edit here; use bash")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolRefused(f"{rel}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "edit it with bash") from exc
    node = view.lookup(resolved)
    return Text(resolved, text, node.st.st_mode if node else 0o644)


def read_file(view: View, path: str, offset: int | None, limit: int | None) -> str:
    rel = normalize(path, view.workspace)
    start = max(1, offset or 1)
    count = READ_LINES if limit is None else limit
    if count < 1:
        raise ToolRefused("limit must be at least 1")
    resolved, data, size, binary = _read_all(view, rel, MAX_FILE_BYTES)
    if binary:
        return f"{rel}: binary file ({size} bytes), not shown; inspect it with bash (e.g. xxd)"
    lines = data.decode("utf-8", "replace").splitlines()
    if size > len(data):
        lines = lines[:-1]  # the last one may be cut mid-line
    if size == 0:
        return f"{rel}: empty file"
    if start > len(lines):
        return f"{rel}: has {len(lines)} lines; offset {start} is past the end"
    parts: list[str] = []
    if resolved != rel:
        parts.append(f"[{rel} is a symlink to {resolved}]")
    used = 0
    end = start - 1
    for n in range(start, min(len(lines), start - 1 + count) + 1):
        line = lines[n - 1]
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f"... [line cut: {len(line)} chars]"
        piece = f"{n:6}\t{line}"
        if used + len(piece) > MAX_READ_BYTES:
            break
        parts.append(piece)
        used += len(piece) + 1
        end = n
    if end < len(lines) or size > len(data):
        parts.append(f"[shown lines {start}-{end}; the file has more: read on with "
                     f"offset={end + 1}]")
    return "\n".join(parts)


def list_files(view: View, path: str | None, pattern: str | None) -> str:
    rel = normalize(path or ".", view.workspace)
    if pattern is None:
        shown: list[str] = []
        total = 0
        with view.opened_dir(rel) as (_, d):
            for name, node in view.entries(d, rel):  # counted all, kept MAX_LIST
                total += 1
                if len(shown) < MAX_LIST:
                    shown.append(name + ("/" if node.is_dir else f" -> {view.readlink(node)}"
                                         if node.is_symlink else ""))
        more = total - len(shown)
        head = f"{rel or '.'}: {total} entries"
        return "\n".join([head, *shown] + ([f"[{more} more not shown]"] if more > 0 else []))
    try:
        matcher = PathMatcher.of([pattern])
    except ValueError as exc:
        raise ToolRefused(f"pattern {pattern!r}: {exc}") from exc
    found: list[str] = []
    total = 0
    for node in view.walk(rel, skip=SKIP_DIRS):
        sub = node.rel[len(rel) + 1:] if rel else node.rel
        if matcher.match(sub, is_dir=node.is_dir) is None and \
                matcher.match(node.rel, is_dir=node.is_dir) is None:
            continue
        total += 1
        if len(found) < MAX_LIST:
            found.append(node.rel + ("/" if node.is_dir else ""))
    if not found:
        return f"no paths under {rel or '.'} match {pattern!r}"
    more = total - len(found)
    return "\n".join(found + ([f"[{more} more not shown]"] if more > 0 else []))


def grep(view: View, pattern: str, path: str | None, glob: str | None) -> str:
    # RE2, not `re`/`regex`: the pattern is the model's (or what a file talked it into). A
    # backtracking engine takes exponential time on `(a|aa)+$`, and the `regex` module's
    # compile expanded nested counted repeats (`((a{1000}){1000}){1000}`: GBs of memory in
    # the server, outside any sandbox). RE2 matches in linear time within a memory budget.
    import re2

    options = re2.Options()
    options.max_mem = GREP_PATTERN_MEM
    options.log_errors = False  # the model reads the error in the answer, not on our stderr
    try:
        rx = re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and \
            isinstance(exc.args[0], bytes) else str(exc)
        raise ToolRefused(f"pattern {pattern!r} is not a valid regular expression (RE2 syntax, "
                          f"as ripgrep's: no lookaround or backreferences): {why}") from exc
    deadline = time.monotonic() + GREP_TIMEOUT_S
    rel = normalize(path or ".", view.workspace)
    matcher = PathMatcher.of([glob]) if glob else None
    top = view.lookup(rel)
    if top is None:
        raise ToolRefused(f"{rel or '.'}: no such file or directory")
    # Walked as it goes (never listed whole: memory), under the same time limit as the search.
    nodes = iter([top]) if not top.is_dir else view.walk(top.rel, skip=SKIP_DIRS)
    out: list[str] = []
    matches = 0
    skipped: list[str] = []
    for node in nodes:
        if time.monotonic() > deadline:
            out.append(f"[grep stopped after {GREP_TIMEOUT_S:g}s (at {node.rel}): narrow the "
                       "path or glob]")
            return "\n".join(out)
        if not node.is_file:
            continue
        if matcher is not None and matcher.match(node.rel) is None:
            continue
        if node.st.st_size > MAX_GREP_FILE:
            skipped.append(node.rel)
            continue
        try:
            _, data, _, binary = _read_all(view, node.rel, MAX_GREP_FILE)
        except (ToolRefused, OSError):
            continue  # changed or gone while we walk
        if binary:
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if time.monotonic() > deadline:
                out.append(f"[grep stopped after {GREP_TIMEOUT_S:g}s (at {node.rel}:{n}): "
                           "narrow the path or glob]")
                return "\n".join(out)
            if rx.search(line):
                matches += 1
                if matches <= MAX_GREP_MATCHES:
                    cut = line if len(line) <= 500 else line[:500] + "..."
                    out.append(f"{node.rel}:{n}:{cut}")
    if matches > MAX_GREP_MATCHES:
        out.append(f"[{matches - MAX_GREP_MATCHES} more matches not shown; narrow the path, "
                   "glob or pattern]")
    if skipped:
        out.append(f"[skipped {len(skipped)} files over {MAX_GREP_FILE} bytes: "
                   f"{', '.join(skipped[:5])}]")
    return "\n".join(out) if out else f"no matches for {pattern!r} under {rel or '.'}"


def edit(text: str, rel: str, old: str, new: str, replace_all: bool) -> str:
    """`text` with `old` replaced by `new`: once (it must be unique) or everywhere."""
    if old == "":
        raise ToolRefused("old_string is empty; use write_file to create or replace a file")
    if old == new:
        raise ToolRefused("old_string and new_string are the same; nothing to change")
    count = text.count(old)
    if count == 0:
        raise ToolRefused(f"{rel}: old_string not found (it must match the file exactly, "
                          "whitespace and indentation included)")
    if count > 1 and not replace_all:
        raise ToolRefused(f"{rel}: old_string occurs {count} times; include more surrounding "
                          "text to make it unique, or set replace_all")
    return text.replace(old, new) if replace_all else text.replace(old, new, 1)
