"""Git work inside the sandbox is shown as git work, and export carries the agent's commits.

An agent commits twice inside (its own name and messages) and leaves one file uncommitted.
`show`, `show --json` and `diff --json` present the new commits on the branch (message,
author, files), not the object files git wrote; `export` carries those commits onto the new
branch as they are (same ids, messages, authors) with --include-protected, and otherwise
leaves them out and says so. Through the CLI, as root and as an unprivileged user.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import Cli, give
from tests.support.tty import Tty

AGENT = "-c user.name=Agent -c user.email=agent@example.com"
WORK = (f"git {AGENT} commit -qam 'agent one' && echo c > c.txt && git add c.txt && "
        f"git {AGENT} commit -q -m 'agent two' -m 'with a body line' && echo left > d.txt")


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), *args],
                          capture_output=True, check=True, text=True).stdout.strip()


def _repo_with_agent_commits(cli: Cli, ws: Path) -> str:
    _git(ws, "init", "-q", "-b", "main")
    _git(ws, "-c", "user.name=Person", "-c", "user.email=p@example.com", "add", "-A")
    _git(ws, "-c", "user.name=Person", "-c", "user.email=p@example.com", "commit", "-qm", "base")
    give(cli, ws)
    base = _git(ws, "rev-parse", "HEAD")
    r = cli("run", "--session", "gw", "--", "sh", "-c", f"echo more >> README.md && {WORK}",
            cwd=ws)
    assert r.returncode == 0, r.stderr.decode()
    summary = r.stderr.decode()
    assert ".git/objects/" not in summary and "git-internal file(s)" in summary, summary
    again = cli("run", "--session", "gw", "--json", "--", "git", "log", "-1", "--format=%s",
                cwd=ws)
    out = json.loads(again.stdout)
    assert out["stdout"] == "agent two\n" and out["git"]["refs"][0]["ref"] == "refs/heads/main"
    return base


def test_commits_inside_are_shown_as_commits_and_exported_as_they_are(
        sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    base = _repo_with_agent_commits(cli, ws)

    text = cli("show", "gw", cwd=ws).stdout.decode()
    assert f"branch main: {base[:12]} -> " in text and "2 new commits" in text, text
    assert "agent one" in text and "agent two" in text, text
    assert "Agent <agent@example.com>" in text and "c.txt  +1 -0" in text, text
    assert ".git/objects/" not in text, text  # the commits stand for their object files

    shown = json.loads(cli("show", "gw", "--json", cwd=ws).stdout)
    (move,) = shown["git"]["refs"]
    assert move["ref"] == "refs/heads/main" and move["old"] == base and move["fast_forward"]
    commits = move["commits"]
    assert [c["message"] for c in commits] == ["agent two\n\nwith a body line", "agent one"]
    assert {c["author"] for c in commits} == {"Agent <agent@example.com>"}
    assert commits[1]["parents"] == [base] and move["new"] == commits[0]["sha"]
    assert json.loads(cli("diff", "gw", "--json", cwd=ws).stdout)["git"]["refs"][0]["new"] \
        == commits[0]["sha"]

    flat = cli("export", "gw", "--branch", "agent/flat", cwd=ws)
    assert flat.returncode == 0, flat.stderr.decode()
    assert "2 commit(s) made inside on main" in flat.stdout.decode(), flat.stdout.decode()
    assert _git(ws, "rev-list", "--count", f"{base}..agent/flat") == "1"

    kept = cli("export", "gw", "--branch", "agent/kept", "--include-protected", cwd=ws)
    assert kept.returncode == 0, kept.stderr.decode()
    log = _git(ws, "log", "--format=%H|%an <%ae>|%B%x00", f"{base}..agent/kept").split("\0")
    entries = [e.strip().split("|", 2) for e in log if e.strip()]
    assert len(entries) == 3, entries  # the uncommitted rest, then the agent's two commits
    assert [e[0] for e in entries[1:]] == [c["sha"] for c in commits]  # the very same commits
    assert entries[1][1:] == ["Agent <agent@example.com>", "agent two\n\nwith a body line"]
    assert _git(ws, "show", "--format=", "--name-only", "agent/kept") == "d.txt"
    # The person's branch, index and working tree are untouched.
    assert _git(ws, "rev-parse", "main") == base
    assert _git(ws, "status", "--porcelain") == ""


def test_review_accepts_the_branch_with_its_commits(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    base = _repo_with_agent_commits(cli, ws)
    tip = json.loads(cli("show", "gw", "--json", cwd=ws).stdout)["git"]["refs"][0]["new"]
    tty = Tty(cli, "review", "gw")
    screen = tty.wait("change(s)")
    # The list shows the branch's ref, not the object files and logs that go with it.
    assert "git files" in screen.splitlines()[0], screen
    assert ".git/objects" not in screen and ".git/logs" not in screen, screen
    for _ in range(40):  # walk the list down to the branch's ref
        cursor = [ln for ln in screen.splitlines() if ln.startswith(">")]
        if cursor and ".git/refs/heads/main" in cursor[0]:
            break
        screen = tty.press("j")
    screen = tty.press("\r", then="agent two")  # the ref is shown by its commits
    assert "2 new commits" in screen and "Agent <agent@example.com>" in screen, screen
    screen = tty.press("G", then="+more")  # and each commit's diff
    assert "+++ b/README.md" in screen, screen
    tty.press("a", then="accepted")  # protected: accepted on its own, objects come along
    tty.press("q", then="Apply your decisions?")
    tty.press("y")
    status, out = tty.finish()
    assert status == 0, out
    assert _git(ws, "rev-parse", "main") == tip
    assert _git(ws, "log", "--format=%s", f"{base}..main").splitlines() == ["agent two",
                                                                           "agent one"]
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "fsck", "--strict"],
                   check=True, capture_output=True)


def test_approving_the_branch_brings_its_commits(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    base = _repo_with_agent_commits(cli, ws)
    refused = cli("approve", "gw", ".git/refs/heads/main", cwd=ws)
    assert refused.returncode != 0 and _git(ws, "rev-parse", "main") == base  # protected
    r = cli("approve", "gw", ".git/refs/heads/main", "--include-protected", cwd=ws)
    assert r.returncode == 0, r.stderr.decode()
    assert _git(ws, "log", "--format=%an|%s", f"{base}..main").splitlines() == [
        "Agent|agent two", "Agent|agent one"]
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "fsck", "--strict"],
                   check=True, capture_output=True)
    assert not (ws / "d.txt").exists()  # the rest stays pending
