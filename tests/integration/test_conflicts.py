"""A person's work is never lost: any change to the workspace since the session saw a path it
changed is a conflict (content, deletion, creation, type, mode, a deleted parent directory).
Approve and the level-3/4 auto-commit refuse exactly those paths (the rest proceeds), name
what changed, and keep them pending; --force lets the session's version win, on record."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Cli, give

pytestmark = pytest.mark.parametrize("sbx", ["root", "user"], indirect=True)


def _audit(cli: Cli) -> list[dict[str, object]]:
    return list(json.loads(cli("audit", "--json", check=True).stdout))


def _pending(cli: Cli, ref: str) -> dict[str, dict[str, object]]:
    data = json.loads(cli("diff", ref, "--json", check=True).stdout)
    return {c["path"]: c for c in data["changes"]}


def test_a_persons_deletions_are_not_undone(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    (ws / "dir").mkdir()
    (ws / "dir" / "old.txt").write_text("mine\n")
    give(cli, ws / "dir")
    cli("run", "-C", str(ws), "--session", "d", "--", "sh", "-c",
        "echo agent >> README.md; echo n > dir/new.txt; echo x > src/other.py", check=True)
    (ws / "README.md").unlink()
    shutil.rmtree(ws / "dir")
    r = cli("approve", "d")
    err = r.stderr.decode()
    assert r.returncode == 3, err  # a conflict: exit 3
    assert "README.md: was deleted from the workspace" in err
    assert "dir: was deleted from the workspace" in err and "dir/new.txt" in err
    # the person's deletions stand; the change that did not conflict went in
    assert not (ws / "README.md").exists() and not (ws / "dir").exists()
    assert (ws / "src/other.py").read_text() == "x\n"
    assert set(_pending(cli, "d")) == {"README.md", "dir", "dir/new.txt"}
    assert all(c["conflict"] for c in _pending(cli, "d").values())
    # --force: the session's version wins, and the log says it overrode the person's change
    cli("approve", "d", "--force", check=True)
    assert (ws / "README.md").read_text() == "hello\nagent\n"
    assert (ws / "dir/new.txt").read_text() == "n\n"
    commit = [e for e in _audit(cli) if e["event"] == "commit"][-1]
    data = commit["data"]
    assert isinstance(data, dict) and data["force"] is True
    assert any("README.md: was deleted" in o for o in data["overridden"])


def test_every_kind_of_change_by_a_person_is_a_conflict(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    for name in ("content", "mode", "type", "touch"):
        (ws / f"{name}.txt").write_text("base\n")
        give(cli, ws / f"{name}.txt")
    cli("run", "-C", str(ws), "--session", "k", "--", "sh", "-c",
        "for f in content mode type touch; do echo agent >> $f.txt; done; echo n > created.txt",
        check=True)
    (ws / "content.txt").write_text("person\n")
    os.chmod(ws / "mode.txt", 0o600)
    (ws / "type.txt").unlink()
    (ws / "type.txt").symlink_to("README.md")
    os.utime(ws / "touch.txt")  # same bytes: not a change
    (ws / "created.txt").write_text("person made this\n")
    r = cli("approve", "k")
    err = r.stderr.decode()
    assert r.returncode == 3
    assert "content.txt: was modified in the workspace at" in err
    assert "mode.txt: had its mode changed in the workspace (644 -> 600)" in err
    assert "type.txt: was replaced by a symlink" in err
    assert "created.txt: was created in the workspace at" in err
    assert "touch.txt" not in err and (ws / "touch.txt").read_text() == "base\nagent\n"
    assert (ws / "content.txt").read_text() == "person\n"
    assert (ws / "created.txt").read_text() == "person made this\n"
    assert (ws / "type.txt").is_symlink() and (ws / "mode.txt").stat().st_mode & 0o777 == 0o600


def test_auto_commit_holds_conflicts_and_commits_the_rest(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    cli("run", "-C", str(ws), "--session", "a", "--", "sh", "-c", "echo agent >> README.md",
        check=True)
    (ws / "README.md").unlink()
    r = cli("run", "-C", str(ws), "--level", "4", "--session", "a", "--", "sh", "-c",
            "echo g > g.txt", check=True)
    assert b"held: README.md was deleted from the workspace" in r.stderr, r.stderr
    assert (ws / "g.txt").read_text() == "g\n" and not (ws / "README.md").exists()
    assert set(_pending(cli, "a")) == {"README.md"}


def test_a_mode_only_change_commits_as_chmod(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    (ws / "script.sh").write_text("echo old\n")
    give(cli, ws / "script.sh")
    cli("run", "-C", str(ws), "--session", "m", "--", "chmod", "+x", "script.sh", check=True)
    (ws / "script.sh").write_text("echo edited by a person\n")
    change = _pending(cli, "m")["script.sh"]
    assert change["kind"] == "mode_changed" and change["conflict"]
    assert cli("approve", "m").returncode == 3
    cli("approve", "m", "--force", check=True)
    assert (ws / "script.sh").read_text() == "echo edited by a person\n"
    assert (ws / "script.sh").stat().st_mode & 0o111


def _two_sessions_append(cli: Cli, ws: Path, first: str, second: str) -> None:
    """Sessions s1 and s2 each append a line to a.txt; s1 is approved, so its line is the
    workspace's (a person's, as far as s2 is concerned), never s2's."""
    (ws / "a.txt").write_text("x\n")
    give(cli, ws / "a.txt")
    for session, line in (("s1", first), ("s2", second)):
        cli("run", "-C", str(ws), "--session", session, "--", "sh", "-c",
            f"echo {line} >> a.txt", check=True)
    cli("approve", "s1", check=True)


def test_a_diff_shows_the_sessions_change_not_the_worlds(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    _two_sessions_append(cli, ws, "A", "B")
    r = cli("diff", "s2", check=True)
    patch, err = r.stdout.decode(), r.stderr.decode()
    assert "+B\n" in patch and "-A" not in patch and "+A" not in patch, patch
    assert "conflict a.txt: was modified in the workspace" in err
    assert "+A" in err  # the other side: the workspace's change since the session saw it
    change = _pending(cli, "s2")["a.txt"]
    assert change["conflict"] and (change["added_lines"], change["removed_lines"]) == (1, 0)
    show = cli("show", "s2", check=True).stdout.decode()
    assert "a.txt +1 -0  (CONFLICT: was modified in the workspace" in show
    # the person's line survives an approve; with --force the session's version wins
    assert cli("approve", "s2").returncode == 3
    assert (ws / "a.txt").read_text() == "x\nA\n"


def test_a_move_is_shown_as_a_rename(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    cli("run", "-C", str(ws), "--session", "mv", "--", "mv", "src/app.py", "src/main.py",
        check=True)
    patch = cli("diff", "mv", check=True).stdout
    assert patch == (b"diff --git a/src/app.py b/src/main.py\nsimilarity index 100%\n"
                     b"rename from src/app.py\nrename to src/main.py\n"), patch


def test_review_shows_both_sides_of_a_conflict(sbx: tuple[Cli, Path]) -> None:
    """Review never credits a person's edit to the session: for a conflicting path it shows
    the session's own change and the workspace's, each against what the session saw."""
    from tests.support.tty import Tty

    cli, ws = sbx
    _two_sessions_append(cli, ws, "AAA-person", "BBB-agent")
    tty = Tty(cli, "review", "s2")
    tty.wait("a.txt")
    screen = tty.press("\r", "the workspace's change since")
    own = screen[screen.index("the session's own change"):screen.index("the workspace's change")]
    theirs = screen[screen.index("the workspace's change"):]
    assert "+BBB-agent" in own and "AAA-person" not in own, screen
    assert "+AAA-person" in theirs and "BBB-agent" not in theirs.split("applying it")[0], screen
    tty.press("q")
    tty.press("q")
    status, out = tty.finish()
    assert status == 0, out
    assert (ws / "a.txt").read_text() == "x\nAAA-person\n"  # nothing applied
