"""`sandbox ls`: every session waiting for a person first, however old; then recent runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_ls_shows_every_pending_session_first(cli: Cli, workspace: Path) -> None:
    # Which runs `ls` lists does not depend on who asks: one caller is enough here.
    ws = workspace
    cli("run", "-C", str(ws), "--session", "old-work", "--", "sh", "-c", "echo x > new.txt",
        check=True)
    for _ in range(4):
        cli("run", "-C", str(ws), "--", "true", check=True)
    lines = cli("ls", "--last", "2", check=True).stdout.decode().splitlines()
    assert lines[1].startswith("-- pending sessions (1)") and " old-work " in lines[2], lines
    assert lines[3] == "-- recent runs:" and len(lines) == 4 + 2
    assert len(cli("ls", check=True).stdout.splitlines()) == 4 + 4  # default: the last 30
    listed = json.loads(cli("ls", "--last", "1", "--json", check=True).stdout)
    assert listed[0]["session"] == "old-work" and listed[0]["pending"] is True
    assert [r["pending"] for r in listed] == [True, False]
    everything = json.loads(cli("ls", "--all", "--json", check=True).stdout)
    assert len(everything) == 5
