"""The README's first set-up command, `scripts/demo.sh`, runs the main job end to end: a
command edits a snapshot, the workspace stays untouched until approval, the approval commits,
and the audit chain verifies. It broke once without any test noticing (`last` became the last
run of the current workspace); this keeps it true."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO, require_nsjail


def test_demo_script_runs_the_main_job(base_dir: Path) -> None:
    require_nsjail()
    ws = base_dir / "demo"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "HOME": str(base_dir), "DEMO_WORKSPACE": str(ws),
           "SANDBOX_HOME": str(base_dir / "state"),
           "SANDBOX_ORG_POLICY": str(base_dir / "org.toml")}
    (base_dir / "org.toml").write_text("# no org policy\n")
    r = subprocess.run([str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True,
                       timeout=300, check=False)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    assert "secret visible inside?" in out  # the command tried to read .env inside...
    assert "do-not-leak" not in out  # ...and the hidden file stayed hidden
    assert "3 change(s)" in out and "+def test_add():" in out  # the pending diff was shown
    assert (ws / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (ws / "src" / "test_calc.py").exists() and not (ws / "notes.txt").exists()
    assert os.path.exists(base_dir / "state" / "audit.log")
    assert "audit log OK" in r.stdout.decode() and "chain intact" in r.stdout.decode(), out
