"""The real `sandbox run` on nsjail imports nothing heavy (tests/support/run_imports.py): its
start-up is most of a call's cost against peers. Python's own import profile of the real CLI
(PYTHONPROFILEIMPORTTIME) lists every module it loaded, lazy imports in the launch included."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Cli
from tests.support.run_imports import heavy

_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")


def _imported(stderr: bytes) -> list[str]:
    return [m.group(1) for line in stderr.decode(errors="replace").splitlines()
            if (m := _LINE.match(line))]


def test_a_real_run_imports_nothing_heavy(cli: Cli, workspace: Path) -> None:
    # First run of a fresh home: the seccomp profile is translated and cached (its own cost).
    cli("run", "-C", str(workspace), "--level", "4", "--", "true", check=True)
    proc = cli("run", "-C", str(workspace), "--level", "4", "--", "sh", "-c",
               "echo new > new.txt && echo more >> README.md && rm old.txt",
               env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    assert (workspace / "new.txt").read_text() == "new\n"  # it ran, and committed
    assert not (workspace / "old.txt").exists()
    modules = _imported(proc.stderr)
    assert "sandbox._runner" in modules and "nsjail.config" in modules, proc.stderr[-2000:]
    assert heavy(modules) == []
