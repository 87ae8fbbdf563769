"""`sandbox agent claude -- --mcp-config x.json`: AGENT ARGS that would override the agent's
confinement end the command with 2 before anything starts: the agent never runs, no session,
no audit record of a run."""

from __future__ import annotations

from pathlib import Path

from sandbox.audit import AuditLog
from tests.conftest import Cli


def _agent_that_says_so(base: Path) -> Path:
    fake = base / "agent-bin" / "claude"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho AGENT RAN\n")  # sandboxed: its stdout is what we see
    fake.chmod(0o755)
    return fake


REFUSED = [
    (["--mcp-config", "x.json"], "--mcp-config"),
    (['--settings={"enabledPlugins": {}}'], "--settings"),
    (["--tools", "Bash"], "--tools"),
    (["--add-dir=/"], "--add-dir"),
]


def test_refused_agent_args_start_nothing(cli: Cli, workspace: Path, base_dir: Path) -> None:
    fake = _agent_that_says_so(base_dir)
    # the same agent with harmless arguments does run (so the refusals are the arguments')
    ran = cli("agent", "claude", "-C", str(workspace), "--session", "ok", "--bin", str(fake),
              "--", "-p", "go", timeout=120)
    assert b"AGENT RAN" in ran.stdout, ran.stderr.decode()
    log = AuditLog(cli.home / "audit.log")
    records = len(list(log.records()))
    sessions = sorted(p.name for p in (cli.home / "sessions").iterdir())
    for args, flag in REFUSED:
        r = cli("agent", "claude", "-C", str(workspace), "--session", "refused", "--bin",
                str(fake), "--", "-p", "go", *args)
        err = r.stderr.decode()
        assert r.returncode == 2, err
        assert f"agent argument {flag} is refused: it " in err.splitlines()[0], err
        assert "hint: " in err and "(sandbox agent --help)" in err
        assert b"AGENT RAN" not in r.stdout  # the agent never ran
        # no session made, nothing audited (no run, no tool call, no LLM call)
        assert sorted(p.name for p in (cli.home / "sessions").iterdir()) == sessions
        assert len(list(log.records())) == records


def test_the_help_the_hint_names_says_so(cli: Cli) -> None:
    r = cli("agent", "--help", check=True)
    said = b" ".join(r.stdout.split())  # argparse wraps the epilog where the width falls
    assert b"refused before anything starts" in said and b"2 bad arguments" in said
