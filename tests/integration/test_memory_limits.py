"""`--memory` limits memory, not address space, through the CLI, as root and as a user.

The JVM reserves a gigabyte of class space at start, Go and V8 reserve arenas: under an
address-space limit (RLIMIT_AS) they die at start. Under a memory limit they start, and a run
that really uses more than the limit is stopped, with `doctor` naming the mechanism.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Cli, require

# (argv, what its output must contain): one runtime per kind of reservation.
RUNTIMES = {
    "java": (["java", "-version"], "openjdk"),
    "node": (["node", "-e", "console.log('node-ok')"], "node-ok"),
    # Go reserves address space at start: the toolchain, and the Docker CLI (a Go program).
    "go-runtime": (["docker", "--version"], "Docker version"),
    "go": (["go", "version"], "go version"),
}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtimes_start_under_a_2g_memory_limit(sbx: tuple[Cli, Path], name: str) -> None:
    cli, ws = sbx
    argv, expect = RUNTIMES[name]
    require(shutil.which(argv[0]) is not None, f"{argv[0]} (scripts/setup.sh --dev installs it)")
    r = cli("run", "--memory", "2g", "--", *argv, cwd=ws)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    assert expect in out, out


def _limits_line(cli: Cli) -> str:
    doc = cli("doctor")
    lines = [ln for ln in doc.stdout.decode().splitlines() if "] limits:" in ln]
    assert len(lines) == 1, doc.stdout.decode()
    return lines[0]


def test_memory_limit_stops_a_hog_and_doctor_names_the_mechanism(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    line = _limits_line(cli)
    assert "--memory: cgroup v" in line or "--memory: polled resident memory" in line, line
    assert "RLIMIT_AS" not in line, line
    polled = "--memory: polled resident memory" in line
    if cli.user is None:
        assert not polled, line  # root always has a cgroup controller on these hosts
    # A modest allocation runs under the limit (the command really ran)...
    small = cli("run", "--memory", "128m", "--", "python3", "-c",
                "b = b'x' * (32 << 20); print('small-ok')", cwd=ws)
    assert small.returncode == 0 and b"small-ok" in small.stdout, small.stderr.decode()
    warned = b"no cgroup enforces --memory" in small.stderr
    assert warned == polled, small.stderr.decode()
    # ...and one four times the limit, held, is stopped like an OOM kill.
    hog = cli("run", "--memory", "128m", "--", "python3", "-c",
              "import time; b = b'x' * (512 << 20); print('allocated', flush=True); "
              "time.sleep(5); print('survived')", cwd=ws)
    err = hog.stderr.decode()
    assert hog.returncode == 137, err
    assert b"survived" not in hog.stdout, err
    if polled:
        assert "stopped: the run's resident memory exceeded the memory limit (128 MiB)" in err
