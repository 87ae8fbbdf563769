"""A regression guard for `sandbox run`'s start-up: the CLI's run path (argument parsing,
policy, runner, diff, decision, commit, render, the nsjail backend's modules) imports none of
the heavy modules other commands need. The fake backend stands in for the launch only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox._home import HomeLayout
from sandbox.seccomp import load_for_run
from tests.support.run_imports import heavy

# Runs in a fresh interpreter: what this test process imported must not count.
_CHILD = r"""
import json, sys
from pathlib import Path
import sandbox.backends as backends
from sandbox.backends._fake import FakeBackend

def act(upper: Path, lower: Path) -> int:
    (upper / "new.txt").write_text("new\n")  # an addition
    (upper / "a.txt").write_text("a\nb\n")  # an appended line
    return 0

launched = []
def fake(name, *, capture=False):
    backend = FakeBackend(act)
    launched.append(backend)
    return backend

backends.get_backend = fake
from sandbox.cli.main import main

code = main(["run", "-C", sys.argv[1], "--level", "4", "--", "edit"])
# What the nsjail backend imports to launch (the fake skipped it)
import sandbox.backends._nsjail
from sandbox.backends._nsjail_config import _light_import_nsjail
_light_import_nsjail()
print(json.dumps({"code": code, "launched": sum(len(b.launched) for b in launched),
                  "modules": sorted(sys.modules)}))
"""


def test_the_run_path_imports_nothing_heavy(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    # A fresh home translates the seccomp profile once (kafel, a cache file): that is the
    # first run's cost, not every run's. Warm the cache as a first run would.
    layout = HomeLayout(tmp_path / "home").ensure()
    load_for_run("default", cache_dir=layout.cache_dir)
    env = dict(os.environ, SANDBOX_HOME=str(layout.root),
               SANDBOX_ORG_POLICY=str(tmp_path / "org.toml"))
    (tmp_path / "org.toml").write_text("# empty\n")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ws)], capture_output=True,
                          text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the run happened and committed (level 4), so the whole path was taken
    assert (out["code"], out["launched"]) == (0, 1), proc.stderr
    assert (ws / "new.txt").read_text() == "new\n" and (ws / "a.txt").read_text() == "a\nb\n"
    assert "sandbox._runner" in out["modules"] and "nsjail.config" in out["modules"]
    assert heavy(out["modules"]) == []
