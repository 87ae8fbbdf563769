"""A huge change is never rendered whole: the review screen escapes what it draws (a screen
per key, whatever the key), and the patch is made in pieces as it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandbox.review._detail as detail_mod
from sandbox.fs import compute_changeset, iter_patch
from sandbox.review import Loader, ReviewApp, build_state, esc_line

LINES = 200_000
SCREEN = 24


@pytest.fixture
def huge(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    old = b"".join(b"line %d\n" % n for n in range(LINES))
    (lower / "big.txt").write_bytes(old)
    (upper / "big.txt").write_bytes(old.replace(b"line", b"LINE"))
    return lower, upper


def test_paging_a_huge_change_escapes_one_screen_per_key(
        huge: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    lower, upper = huge
    cs = compute_changeset(upper, lower)
    assert cs.changes[0].added_lines == LINES and cs.changes[0].removed_lines == LINES
    escaped: list[bytes] = []

    def counting(raw: bytes, *, ascii_only: bool = False) -> str:
        escaped.append(raw)
        return esc_line(raw, ascii_only=ascii_only)

    monkeypatch.setattr(detail_mod, "esc_line", counting)
    app = ReviewApp(build_state(cs, []), Loader(upper, lower).detail, title="s")
    app.draw(SCREEN, 80)
    app.key("enter")
    first = ["".join(seg[0] for seg in line) for line in app.draw(SCREEN, 80)]
    assert any(line.endswith("-line 0") for line in first), first
    assert len(app.detail(0).rows) == 2 + 2 * LINES  # header, @@, every line: all there...
    for key in ("G", "pgup", "g", "pgdn", "down", "end"):
        escaped.clear()
        app.key(key)
        screen = ["".join(seg[0] for seg in line) for line in app.draw(SCREEN, 80)]
        assert len(escaped) <= 4 * SCREEN, (key, len(escaped))  # ...but a screen is made
    assert any(line.endswith(f"+LINE {LINES - 1}") for line in screen), screen


def test_the_patch_of_a_huge_change_comes_in_pieces(huge: tuple[Path, Path]) -> None:
    lower, upper = huge
    cs = compute_changeset(upper, lower)
    pieces = iter_patch(cs, upper=upper, lower=lower)
    first = next(pieces)
    assert first.startswith(b"diff --git a/big.txt b/big.txt\n")
    sizes = [len(first)] + [len(p) for p in pieces]
    assert len(sizes) > 10 and max(sizes) <= 1 << 17  # streamed, never one huge buffer
