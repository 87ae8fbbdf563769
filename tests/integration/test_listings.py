"""Every listing of changes puts the risky first and ends with counts per kind, so 300 new
files cannot hide a deletion, a chmod or a forbidden symlink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.parametrize("sbx", ["root", "user"], indirect=True)

SCRIPT = ("mkdir gen; for i in $(seq 1 300); do echo $i > gen/f$i.txt; done; rm old.txt; "
          "chmod +x src/app.py; ln -s /etc/passwd pw; echo more >> README.md; "
          "mkdir -p .github/workflows; echo on > .github/workflows/ci.yml")
RISKY = ["pw", ".github/workflows/ci.yml", "old.txt", "src/app.py"]


def test_the_risky_come_first_everywhere(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    r = cli("run", "-C", str(ws), "--session", "big", "--", "sh", "-c", SCRIPT, check=True)
    summary = r.stderr.decode().splitlines()
    listed = [line.split()[1] for line in summary if line.startswith("  ") and len(line.split()) > 1]
    assert listed[:4] == RISKY, summary
    assert "  ... and 278 more: 278 added" in summary  # 30 of 308 (with gen/, .github/...)
    show = cli("show", "big", check=True).stdout.decode().splitlines()
    rows = [line.split()[1] for line in show if line.startswith("  ") and line[2:3] in "AMDmT"
            and len(line.split()) > 1 and not line.startswith("  run")]
    assert rows[:4] == RISKY, show
    data = json.loads(cli("diff", "big", "--json", check=True).stdout)
    order = [(c["path"], c["concern"]) for c in data["changes"][:5]]
    assert order == [("pw", "forbidden"), (".github/workflows/ci.yml", "protected"),
                     ("old.txt", "deletion"), ("src/app.py", "mode"),
                     (".github", "edit")], order

