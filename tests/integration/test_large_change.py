"""A change of a million lines, through the CLI, as root and as a user: `sandbox diff` gives a
patch git applies, `sandbox review` shows its first screen and pages to its last line.

(How long these take is measured in benchmarks/bench_large_change.py, against git.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, give
from tests.support.tty import Tty

LINES = 1_000_000


def _million_line_change(cli: Cli, ws: Path) -> None:
    (ws / "big.txt").write_bytes(b"".join(b"line %d\n" % n for n in range(LINES)))
    give(cli, ws / "big.txt")
    r = cli("run", "--session", "big", "--", "sed", "-i", "s/line/LINE/", "big.txt", cwd=ws,
            timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert f"M big.txt +{LINES} -{LINES}".encode() in r.stderr, r.stderr.decode()


def test_a_million_changed_lines_diff_and_review(sbx: tuple[Cli, Path], base_dir: Path) -> None:
    cli, ws = sbx
    _million_line_change(cli, ws)

    diff = cli("diff", "big", cwd=ws, timeout=300)
    assert diff.returncode == 0, diff.stderr.decode()
    assert diff.stdout.startswith(b"diff --git a/big.txt b/big.txt\n")
    assert f"@@ -1,{LINES} +1,{LINES} @@\n-line 0\n".encode() in diff.stdout[:400]
    assert diff.stdout.endswith(b"+LINE 999999\n")
    copy = base_dir / "applied"
    copy.mkdir()
    shutil.copy(ws / "big.txt", copy / "big.txt")
    subprocess.run(["git", "apply", "-"], input=diff.stdout, cwd=copy, check=True)
    assert (copy / "big.txt").read_bytes().startswith(b"LINE 0\nLINE 1\n")

    tty = Tty(cli, "review", "big")
    tty.child.timeout = 120
    screen = tty.wait("1 change(s)", timeout=120)
    assert f"+{LINES} -{LINES}" in screen, screen
    tty.press("\r")
    screen = tty.wait("-line 17", timeout=60)  # the first screen of the file
    assert "big.txt" in screen.splitlines()[0], screen
    tty.press("G")
    screen = tty.wait("+LINE 999999", timeout=60)  # paged to the very end
    tty.press(" ")
    tty.press("g", then="-line 0")  # and back to the top
    tty.press("q", then="1 change(s)")
    tty.press("q")
    status, _ = tty.finish()
    assert status == 0
    assert cli("diff", "--stat", "big", cwd=ws).stdout.decode().strip().endswith(
        f"{LINES} insertions(+), {LINES} deletions(-)")  # nothing applied, still pending
