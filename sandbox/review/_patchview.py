"""A git patch made safe to read on a terminal: escaped, coloured, binaries summarised.

The patch bytes are what `git apply` needs (and what `sandbox diff` writes to a pipe); on a
terminal the same patch is shown line by line through `esc_line`, and each `GIT binary patch`
block (base85 of zlib data, unreadable and long) becomes one line per side with size, type and
sha256 of the content it carries.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Iterator

from sandbox.review._safe import describe_binary, esc_line

__all__ = ["decode_binary_literal", "patch_lines", "terminal_lines", "terminal_patch"]

_GREEN, _RED, _CYAN, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[36m", "\x1b[0m"


def decode_binary_literal(lines: list[bytes]) -> bytes:
    """The content of one `literal N` block's base85 lines (without the `literal` line)."""
    raw = bytearray()
    for line in lines:
        if not line:
            continue
        n = line[0]
        length = n - ord("A") + 1 if ord("A") <= n <= ord("Z") else n - ord("a") + 27
        raw += base64.b85decode(line[1:])[:length]
    return zlib.decompress(bytes(raw))


def _binary_block(it: Iterator[bytes]) -> tuple[list[str], bytes | None]:
    """Consume the two literal blocks after `GIT binary patch`; (summary lines, the line
    that ended the block if it was not part of it)."""
    sides: list[str] = []
    for label in ("new", "old"):
        header = next(it, None)
        if header is None or not header.startswith((b"literal ", b"delta ")):
            return sides, header
        body: list[bytes] = []
        for line in it:
            if not line:
                break
            body.append(line)
        if header.startswith(b"delta "):
            sides.append(f"  {label}: binary delta, {len(body)} lines")
            continue
        try:
            data = decode_binary_literal(body)
        except (ValueError, zlib.error, binascii.Error):
            sides.append(f"  {label}: binary content (undecodable patch data)")
            continue
        sides.append(f"  {label}: {describe_binary(data) if data else '(none)'}")
    return sides, None


def terminal_patch(patch: bytes, *, color: bool, ascii_only: bool = False) -> str:
    return "".join(f"{line}\n" for line in terminal_lines(_split(patch), color=color,
                                                             ascii_only=ascii_only))


def _split(patch: bytes) -> list[bytes]:
    lines = patch.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def patch_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines (without \\n) of a patch arriving in pieces."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def terminal_lines(lines: Iterable[bytes], *, color: bool,
                   ascii_only: bool = False) -> Iterator[str]:
    """Each patch line escaped (and coloured) for a terminal, as the lines arrive."""
    it = iter(lines)
    for raw in it:
        if raw == b"GIT binary patch":
            summary, leftover = _binary_block(it)
            yield "binary file (content not shown):"
            yield from summary
            if leftover is None:
                continue
            raw = leftover
        line = esc_line(raw, ascii_only=ascii_only)
        if color and line.startswith("+") and not line.startswith("+++"):
            line = f"{_GREEN}{line}{_RESET}"
        elif color and line.startswith("-") and not line.startswith("---"):
            line = f"{_RED}{line}{_RESET}"
        elif color and line.startswith("@@"):
            line = f"{_CYAN}{line}{_RESET}"
        yield line
