"""Escaping untrusted text for a terminal, wrapping, binary summaries, the terminal patch."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.review import (
    cell_width,
    decode_binary_literal,
    describe_binary,
    esc,
    esc_line,
    terminal_patch,
    wrap_cells,
)

# What a terminal would act on, or a reader would not see: none may survive escaping.
_DANGEROUS = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)] + [
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad",
    "\u2028", "\u2029", "\u3164", "\u115f", "\u00a0", "\udcff", "\ue000",
]


@pytest.mark.parametrize("ch", _DANGEROUS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_dangerous_character_is_escaped(ch: str) -> None:
    out = esc(f"a{ch}b")
    assert ch not in out
    assert out.startswith("a\\") and out.endswith("b")


def test_escape_sequences_become_visible_text() -> None:
    assert esc("x\x1b[31mred\x1b]0;title\x07") == "x\\x1b[31mred\\x1b]0;title\\x07"
    assert esc("\u202eevil") == "\\u202eevil"
    assert esc("tab\there\nnl\r") == "tab\\there\\nnl\\r"


def test_undecodable_bytes_show_as_the_bytes() -> None:
    name = os.fsdecode(b"caf\xe9\xff.txt")
    assert esc(name) == "caf\\xe9\\xff.txt"


def test_printable_text_is_unchanged_and_backslash_cannot_forge_an_escape() -> None:
    assert esc("héllo wörld 日本 ✓") == "héllo wörld 日本 ✓"
    # A literal backslash-x in a name must not look like an escaped control character.
    assert esc("\\x1b") == "\\\\x1b"
    assert esc("\\x1b") != esc("\x1b")


def test_ascii_only_escapes_non_ascii() -> None:
    assert esc("é日", ascii_only=True) == "\\u00e9\\u65e5"


@given(st.text())
def test_escaped_text_has_only_printable_ascii_or_letters(text: str) -> None:
    out = esc(text)
    assert all(ch.isprintable() for ch in out)
    assert not any(ch in out for ch in _DANGEROUS)


def _unescape(text: str) -> str:
    """Inverse of `esc`, to show no two strings look alike once escaped."""
    out: list[str] = []
    i = 0
    named = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        kind = text[i + 1]
        if kind in named:
            out.append(named[kind])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}[kind]
        value = int(text[i + 2:i + 2 + width], 16)
        out.append(chr(0xDC00 + value) if kind == "x" and value >= 0x80 else chr(value))
        i += 2 + width
    return "".join(out)


@given(st.text() | st.binary().map(os.fsdecode))
def test_escaping_is_lossless(text: str) -> None:
    # esc is injective: different names never look the same on screen.
    assert _unescape(esc(text)) == text


def test_raw_byte_and_c1_character_look_different() -> None:
    assert esc(os.fsdecode(b"\x85")) == "\\x85"
    assert esc("\x85") == "\\u0085"


def test_esc_line_expands_tabs_and_escapes_the_rest() -> None:
    assert esc_line(b"\tx = 1\n") == "        x = 1"
    assert esc_line(b"ab\tc") == "ab      c"
    assert esc_line(b"a\x1b[2Jb\xff\n") == "a\\x1b[2Jb\\xff"
    assert esc_line("# \u202e } \u2066 if admin {\n".encode()) == \
        "# \\u202e } \\u2066 if admin {"


def test_wrap_never_drops_characters() -> None:
    text = "a" * 100 + "日本" * 20
    pieces = wrap_cells(text, 30)
    assert "".join(pieces) == text
    assert all(cell_width(p) <= 30 for p in pieces)
    assert cell_width("日本") == 4


def test_describe_binary_names_size_type_and_hash() -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    text = describe_binary(data)
    assert text.startswith("108 bytes, PNG image, sha256 ")
    assert hashlib.sha256(data).hexdigest() in text
    assert "ELF executable" in describe_binary(b"\x7fELF\x02\x01")


def _literal(data: bytes) -> list[bytes]:
    """git's base85 encoding of a binary literal (as `git diff --binary` writes it)."""
    z = zlib.compress(data)
    out = []
    for i in range(0, len(z), 52):
        chunk = z[i:i + 52]
        n = len(chunk)
        out.append(bytes([ord("A") + n - 1 if n <= 26 else ord("a") + n - 27])
                   + base64.b85encode(chunk, pad=True))
    return out


def test_binary_literal_round_trip() -> None:
    data = os.urandom(300) + b"\0"
    assert decode_binary_literal(_literal(data)) == data


def test_terminal_patch_summarises_binaries_and_escapes_text() -> None:
    new = b"\x7fELF" + b"\0" * 64
    patch = (b"diff --git a/bin b/bin\nnew file mode 100755\nindex 0000..1111\n"
             b"GIT binary patch\nliteral 68\n" + b"\n".join(_literal(new)) + b"\n\n"
             b"literal 0\nHcmV?d00001\n\n"
             b"diff --git a/t b/t\n--- a/t\n+++ b/t\n@@ -1 +1 @@\n-old\n+\x1b[31mnew\xe2\x80\xae\n")
    text = terminal_patch(patch, color=False)
    assert "\x1b" not in text and "\u202e" not in text
    assert "binary file (content not shown):" in text
    assert f"new: 68 bytes, ELF executable, sha256 {hashlib.sha256(new).hexdigest()}" in text
    assert "old: (none)" in text
    assert "+\\x1b[31mnew\\u202e" in text
    assert "literal" not in text


def test_terminal_patch_colours_only_with_our_own_sequences() -> None:
    text = terminal_patch(b"@@ -1 +1 @@\n-a\x1b[0m\n+b\n", color=True)
    assert text.splitlines() == ["\x1b[36m@@ -1 +1 @@\x1b[0m", "\x1b[31m-a\\x1b[0m\x1b[0m",
                                 "\x1b[32m+b\x1b[0m"]
