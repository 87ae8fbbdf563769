"""What a reviewer calls binary: not UTF-8, or control characters beyond tab, LF, CR, FF."""

from __future__ import annotations

import os

import pytest

from sandbox.fs._textdiff import is_binary, looks_binary


@pytest.mark.parametrize(("data", "binary"), [
    (b"plain text\r\n\tindented\f\n", False),
    ("caf\u00e9 \u2603 \U0001f600\n".encode(), False),
    (b"", False),
    (b"a\0b", True),
    (b"caf\xe9\n", True),  # latin-1: not UTF-8
    (b"ok \x1b[2J\n", True),  # terminal escape
    (b"bell\x07", True),
    (b"del\x7f", True),
    ("c1 \u0085 control".encode(), True),
    (bytes(b % 255 + 1 for b in os.urandom(4000)), True),  # no NUL, still noise
])
def test_looks_binary(data: bytes, binary: bool) -> None:
    assert looks_binary(data) is binary


def test_a_head_cut_inside_a_character_is_still_text() -> None:
    head = ("\u2603" * 10).encode()[:-1]
    assert looks_binary(head, complete=False) is False
    assert looks_binary(head) is True


def test_the_patch_format_keeps_gits_heuristic() -> None:
    assert not is_binary(b"caf\xe9\n") and is_binary(b"a\0b")
