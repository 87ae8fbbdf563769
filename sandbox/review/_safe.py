"""Make untrusted text inert on a terminal, and describe binary content without showing it.

Everything a run produced (file names, contents, link targets, reasons quoting them) may be
hostile: an escape sequence can recolour or rewrite what a reviewer sees, a bidi override
(Trojan Source) can make code read differently from how it runs, an invisible character can
hide in an identifier. So every character that is not plainly visible is shown as an escape
(`\\x1b`, `\\u202e`); a backslash is doubled so an escape shown cannot be forged by the text
itself. Printable text, including non-ASCII letters, passes unchanged.
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["cell_width", "describe_binary", "esc", "esc_line", "sniff_type", "wrap_cells"]

# Letters that render as nothing although Unicode calls them printable: the Hangul fillers
# and friends used to hide identifiers in source code, plus joiners that are Mn, not Cf.
_INVISIBLE = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F, 0x17B4, 0x17B5, 0x2800})
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
TAB_STOP = 8


def _escape_char(ch: str, *, ascii_only: bool) -> str | None:
    """The escape for `ch`, or None when it may be shown as it is."""
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape: one undecodable byte of a name or content
        return f"\\x{o - 0xDC00:02x}"
    if ch == "\\":
        return "\\\\"
    if o in _NAMED:
        return _NAMED[o]
    if ch.isprintable() and o not in _INVISIBLE and (o < 0x80 or not ascii_only):
        return None
    if o < 0x80:  # \xNN above 7f is kept for raw undecodable bytes: never ambiguous
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def esc(text: str, *, ascii_only: bool = False) -> str:
    """`text` with every control, format (bidi, zero-width), separator, unassigned or
    undecodable character escaped. `ascii_only` also escapes non-ASCII letters, for a
    terminal whose locale cannot show them."""
    out: list[str] = []
    for ch in text:
        escaped = _escape_char(ch, ascii_only=ascii_only)
        out.append(ch if escaped is None else escaped)
    return "".join(out)


def esc_line(data: bytes, *, ascii_only: bool = False) -> str:
    """One line of file content for display: like `esc`, but tabs become spaces up to the
    next tab stop (a tab hides nothing, and `\\t` everywhere would make code unreadable).
    Undecodable bytes show as `\\xNN`; a trailing newline is dropped."""
    text = data.decode("utf-8", "surrogateescape").removesuffix("\n")
    out: list[str] = []
    col = 0
    for ch in text:
        if ch == "\t":
            pad = TAB_STOP - col % TAB_STOP
            out.append(" " * pad)
            col += pad
            continue
        escaped = _escape_char(ch, ascii_only=ascii_only)
        piece = ch if escaped is None else escaped
        out.append(piece)
        col += cell_width(piece)
    return "".join(out)


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell_width(text: str) -> int:
    """Terminal columns `text` takes (escaped text: no control characters left)."""
    return sum(_char_cells(ch) for ch in text)


def wrap_cells(text: str, width: int) -> list[str]:
    """Split escaped `text` into pieces of at most `width` columns (at least one piece).

    Long lines are wrapped, never cut: code pushed past the right edge of the screen is a
    known way to hide it from a reviewer."""
    if width < 2:
        width = 2
    pieces: list[str] = []
    cur: list[str] = []
    used = 0
    for ch in text:
        w = _char_cells(ch)
        if used + w > width and cur:
            pieces.append("".join(cur))
            cur, used = [], 0
        cur.append(ch)
        used += w
    pieces.append("".join(cur))
    return pieces


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF executable"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "zip archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"\x00asm", "WebAssembly module"),
    (b"\xca\xfe\xba\xbe", "Java class or Mach-O universal binary"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"MZ", "DOS/Windows executable"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"#!", "script"),
)


def sniff_type(head: bytes) -> str:
    """A short name for the kind of content, from its first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar archive"
    return "binary data"


def describe_binary(data: bytes) -> str:
    """`size, type, sha256` of content that is not shown as text."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{len(data)} bytes, {sniff_type(data[:512])}, sha256 {digest}"
