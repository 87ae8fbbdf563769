"""`sandbox run --level 4 -- true` of two builds of the CLI, and Anthropic's srt as `bench_run`
runs it, interleaved in one run: wall medians, CPU of each call (getrusage of the children)
and each CLI's ratio to srt. For before/after figures of a change:

    git worktree add --detach /tmp/old BASE && (cd /tmp/old && scripts/setup.sh)
    .venv/bin/python benchmarks/ab_cli.py --n 15 /tmp/old/.venv/bin/sandbox .venv/bin/sandbox

srt comes from benchmarks/.node (benchmarks/run.sh installs it); without it, only the CLIs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRT_DIR = REPO / "benchmarks" / ".node"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sbx-ab-"))
    os.chmod(base, 0o755)
    ws = base / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("x\n")
    (base / "org.toml").write_text("")

    def env(i: int) -> dict[str, str]:
        e = dict(os.environ, SANDBOX_HOME=str(base / f"home{i}"),
                 SANDBOX_ORG_POLICY=str(base / "org.toml"))
        e.pop("PYTHONDONTWRITEBYTECODE", None)  # each build keeps the bytecode it compiles
        return e

    runs: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
        "old CLI": ([str(args.old), "run", "-C", str(ws), "--level", "4", "--", "true"], env(0),
                    None),
        "new CLI": ([str(args.new), "run", "-C", str(ws), "--level", "4", "--", "true"], env(1),
                    None),
    }
    npx = shutil.which("npx")
    if npx and (SRT_DIR / "node_modules" / ".bin" / "srt").exists():
        runs["npx srt true"] = ([npx, "--prefix", str(SRT_DIR), "srt", "true"],
                                dict(os.environ), SRT_DIR)
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    try:
        for i in range(args.n + 2):  # two rounds of warm-up
            for name, (argv, e, cwd) in runs.items():
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(argv, env=e, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                t1 = time.perf_counter()
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                if i >= 2:
                    wall[name].append(t1 - t)
                    cpu[name].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(v) * 1000 for k, v in wall.items()}
    print("| call | median ms | CPU ms | vs srt |\n|---|---:|---:|---:|")
    for name in runs:
        ratio = f"{med[name] / med['npx srt true']:.3f}" if "npx srt true" in med else ""
        print(f"| {name} | {med[name]:.1f} | {statistics.median(cpu[name]) * 1000:.1f} | {ratio} |")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
