"""Non-interactive partial decisions (`approve`/`reject RUN [PATH...]` with --message), the
rules they obey (forbidden refused by name, protected only on request), `diff --stat`, and
the audit timeline that records every decision."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli

RUN = ("echo more >> README.md; echo n > new.txt; rm old.txt; mkdir -p .github/workflows; "
       "echo ci > .github/workflows/ci.yml; ln -s /etc/passwd pw")


def _pending(cli: Cli) -> set[str]:
    data = json.loads(cli("diff", "last", "--json", check=True).stdout)
    return {c["path"] for c in data["changes"]}


def test_partial_approve_and_reject_with_messages(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", RUN, check=True)
    stat = cli("diff", "last", "--stat", check=True).stdout.decode()
    assert " README.md " in stat and "| 1 +" in stat
    assert stat.rstrip().endswith("deletion(-)") and "files changed" in stat
    cli("approve", "last", "README.md", "-m", "docs look fine", check=True)
    assert (workspace / "README.md").read_text() == "hello\nmore\n"
    assert not (workspace / "new.txt").exists()
    cli("reject", "last", "new.txt", "-m", "not wanted", check=True)
    assert "new.txt" not in _pending(cli) and "old.txt" in _pending(cli)
    timeline = cli("audit", "last", check=True).stdout.decode()
    assert 'approved README.md: "docs look fine"' in timeline
    assert 'rejected new.txt: "not wanted"' in timeline
    assert "committed 1 path: README.md" in timeline
    lines = timeline.splitlines()
    assert lines[0].startswith("session s-")
    events = [line.split()[3] for line in lines[1:]]
    assert events[:3] == ["run.started", "run.finished", "changeset"]
    records = json.loads(cli("audit", "last", "--json", check=True).stdout)
    approve = next(r for r in records if r["data"].get("decision") == "approve")
    assert approve["actor"] == "root" and approve["data"]["message"] == "docs look fine"
    assert approve["ts"].endswith("Z")


def test_forbidden_is_refused_by_rule_and_protected_needs_the_flag(cli: Cli,
                                                                  workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", RUN, check=True)
    r = cli("approve", "last", "pw")
    assert r.returncode == 4 and b"symlink-escape" in r.stderr  # forbidden: a code of its own
    assert not (workspace / "pw").is_symlink()
    r = cli("approve", "last", ".github")
    assert r.returncode == 5 and b"--include-protected" in r.stderr  # protected: its own too
    assert not (workspace / ".github").exists()
    cli("approve", "last", ".github", "--include-protected", check=True)
    assert (workspace / ".github" / "workflows" / "ci.yml").read_text() == "ci\n"
    r = cli("approve", "last", "--json", check=True)
    out = json.loads(r.stdout)
    assert {x["path"] for x in out["refused"]} == {"pw"}
    assert _pending(cli) == {"pw"}
