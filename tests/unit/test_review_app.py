"""The review screen's logic without a terminal: keys in, drawn lines out (80x24)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from sandbox.fs import Change, ChangeKind, ChangeSet, FileType
from sandbox.governance import Risk, Verdict
from sandbox.review import Choice, Finish, Loader, ReviewApp, Style, build_state

OLD = b"".join(b"line%d\n" % n for n in range(1, 21))
NEW = OLD.replace(b"line2\n", b"LINE2\n").replace(b"line18\n", b"LINE18\n")


def _text(lines: Sequence[tuple[tuple[str, Style], ...]]) -> list[str]:
    return ["".join(seg[0] for seg in line) for line in lines]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    (lower / "f.txt").write_bytes(OLD)
    (upper / "f.txt").write_bytes(NEW)
    (upper / "long.txt").write_bytes(b"x" * 150 + b"HIDDEN_AT_THE_END\n")
    (upper / os.fsdecode(b"n\x1b[31mame\xff")).write_bytes(b"\x1b]0;pwned\x07\xe2\x80\xae\n")
    return lower, upper


def _app(trees: tuple[Path, Path], verdicts: list[Verdict] | None = None) -> ReviewApp:
    lower, upper = trees
    odd = os.fsdecode(b"n\x1b[31mame\xff")
    cs = ChangeSet((
        Change("f.txt", ChangeKind.MODIFIED, old_type=FileType.FILE, new_type=FileType.FILE,
               old_mode=0o100644, new_mode=0o100644, old_size=len(OLD), new_size=len(NEW),
               added_lines=2, removed_lines=2),
        Change("long.txt", ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644,
               new_size=168, added_lines=1, removed_lines=0),
        Change(odd, ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644, new_size=10,
               added_lines=1, removed_lines=0, forbidden=("control-char: bad name",)),
    ))
    verdicts = verdicts or [Verdict(odd, Risk.FORBIDDEN, "control-char: bad name")]
    state = build_state(cs, verdicts)
    return ReviewApp(state, Loader(upper, lower).detail, title="s-test")


def test_list_shows_kinds_counts_marks_escaped(trees: tuple[Path, Path]) -> None:
    screen = _text(_app(trees).draw(24, 80))
    assert len(screen) == 24 and all(len(line) <= 80 for line in screen)
    assert screen[0].startswith("sandbox review  s-test  3 change(s)")
    rows = screen[2:5]
    assert rows[0].startswith(">[ ] M f.txt") and rows[0].endswith("+2 -2")
    assert rows[1].startswith(" [ ] A long.txt") and rows[1].endswith("+1 -0")
    assert rows[2].startswith(" [!] A n\\x1b[31mame\\xff") and rows[2].endswith("FORBIDDEN")
    assert "\x1b" not in "".join(screen)


def test_accepting_one_hunk_of_two(trees: tuple[Path, Path]) -> None:
    app = _app(trees)
    app.key("enter")
    screen = _text(app.draw(24, 80))
    assert "hunk 1/2" in screen[0]
    assert any(line.startswith(">[ ] @@ -1,5 +1,5 @@") for line in screen)
    app.key("y")
    assert app.state.choices[0] == (Choice.ACCEPT, Choice.PENDING)
    screen = _text(app.draw(24, 80))
    assert "hunk 2/2" in screen[0] and any(" [y] @@ -1,5" in line for line in screen)
    app.key("n")  # last hunk decided: back to the list, on the next file
    assert app.state.choices[0] == (Choice.ACCEPT, Choice.REJECT)
    screen = _text(app.draw(24, 80))
    assert screen[2].startswith(" [~] M f.txt") and screen[3].startswith(">")
    assert 0 in app.hunked()


def test_long_lines_are_wrapped_not_cut(trees: tuple[Path, Path]) -> None:
    app = _app(trees)
    app.key("j")
    app.key("enter")
    screen = "\n".join(_text(app.draw(24, 80)))
    assert "HIDDEN_AT_THE_END" in screen
    assert "\u21aa" in screen  # the continuation is marked


def test_forbidden_cannot_be_accepted_and_contents_are_escaped(
        trees: tuple[Path, Path]) -> None:
    app = _app(trees)
    app.key("end")
    app.key("y")
    assert app.state.choice(2) is Choice.PENDING
    assert _text(app.draw(24, 80))[22] == \
        "cannot accept: n\\x1b[31mame\\xff: control-char: bad name"
    app.key("enter")
    screen = "\n".join(_text(app.draw(24, 80)))
    assert "+\\x1b]0;pwned\\x07\\u202e" in screen
    assert "FORBIDDEN, never committed" in screen


def test_finish_asks_only_when_something_was_decided(trees: tuple[Path, Path]) -> None:
    app = _app(trees)
    app.key("q")
    assert app.finish is Finish.CANCEL
    app = _app(trees)
    app.key("A")  # accept all: the forbidden one stays undecided
    assert [app.state.choice(i) for i in range(3)] == [Choice.ACCEPT, Choice.ACCEPT,
                                                        Choice.PENDING]
    app.key("q")
    screen = _text(app.draw(24, 80))
    assert "Apply your decisions?" in screen[1]
    assert any("commit to the workspace: 2 change(s)" in line for line in screen)
    app.key("z")  # anything else: back to the list
    assert app.finish is None
    app.key("q")
    app.key("D")
    assert app.finish is Finish.APPLY_DISCARD


def test_protected_needs_its_own_yes(trees: tuple[Path, Path]) -> None:
    odd = os.fsdecode(b"n\x1b[31mame\xff")
    app = _app(trees, [Verdict("long.txt", Risk.PROTECTED, "protected path (matches 'x')"),
                       Verdict(odd, Risk.FORBIDDEN, "control-char")])
    app.key("A")
    assert app.state.choice(1) is Choice.PENDING
    assert "accept protected ones one by one" in _text(app.draw(24, 80))[22]
    app.key("j")
    app.key("y")
    assert app.state.choice(1) is Choice.ACCEPT


def test_help_and_tiny_terminal(trees: tuple[Path, Path]) -> None:
    app = _app(trees)
    app.key("?")
    assert any("accept every undecided change" in line for line in _text(app.draw(24, 80)))
    app.key("x")
    assert _text(app.draw(24, 80))[0].startswith("sandbox review")
    assert _text(app.draw(5, 30))[0].startswith("terminal too small")
