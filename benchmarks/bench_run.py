"""Per-call overhead of `sandbox run` against peers measured in the same run, and the cost of
snapshot + diff + commit for a 100,000-file workspace against a 10-file one.

    .venv/bin/python benchmarks/bench_run.py [--n 30] [--json out.json]

Peers: a bare nsjail launch and a bare bwrap launch of `true` (read-only /usr, the same
namespaces), and Anthropic's sandbox-runtime CLI (`npx srt true`, installed under
benchmarks/.node by benchmarks/run.sh). Reports medians and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VENV_BIN = Path(sys.executable).parent

from _timing import interleaved_ms, median_ms  # noqa: E402 (benchmarks/ is sys.path[0])

SRT_DIR = REPO / "benchmarks" / ".node"




def run_quiet(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   **kw)  # type: ignore[call-overload]


def nsjail_argv() -> list[str]:
    from sandbox.backends._nsjail import nsjail_binary

    return [str(nsjail_binary()), "-Mo", "-q", "-R", "/usr", "-s", "usr/bin:/bin", "-s",
            "usr/lib:/lib", "-s", "usr/lib64:/lib64", "--", "/bin/true"]


BWRAP = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
         "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc",
         "--dev", "/dev", "--unshare-all", "--die-with-parent", "--", "/bin/true"]


def per_call(n: int, base: Path) -> dict[str, float]:
    from sandbox._home import HomeLayout
    from sandbox._runner import Runner, RunRequest
    from sandbox.audit import AuditLog
    from sandbox.backends import get_backend
    from sandbox.policy import Layer, merge
    from sandbox.store import Store

    ws = base / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("bench\n")
    home = base / "home"
    env = dict(os.environ, SANDBOX_HOME=str(home), SANDBOX_ORG_POLICY=str(base / "org.toml"))
    (base / "org.toml").write_text("")
    os.environ.update(SANDBOX_HOME=str(home), SANDBOX_ORG_POLICY=str(base / "org.toml"))
    layout = HomeLayout(home).ensure()
    store, audit = Store(layout), AuditLog(layout.audit)
    runner = Runner(layout, store, audit, get_backend("nsjail"))
    policy = merge([Layer("flags", "--level", {"level": 4})])
    req = RunRequest(argv=("true",), workspace=ws, policy=policy)
    contenders: dict[str, Callable[[], object]] = {
        "bare nsjail": lambda: run_quiet(nsjail_argv()),
        "sandbox library call": lambda: runner.run(req),
        "sandbox CLI": lambda: run_quiet(
            [str(VENV_BIN / "sandbox"), "run", "-C", str(ws), "--level", "4", "--", "true"],
            env=env),
        "python -c pass": lambda: run_quiet([sys.executable, "-c", "pass"]),
    }
    if shutil.which("bwrap"):
        contenders["bare bwrap"] = lambda: run_quiet(BWRAP)
    results = interleaved_ms(contenders, n)
    npx = shutil.which("npx")
    if npx and (SRT_DIR / "node_modules" / ".bin" / "srt").exists():
        results["npx srt true"] = median_ms(
            lambda: run_quiet([npx, "--prefix", str(SRT_DIR), "srt", "true"], cwd=SRT_DIR),
            max(5, n // 3))
    return results


def make_workspace(root: Path, files: int, *, git: bool = False) -> None:
    """`files` modules and 10 files to edit; with `git`, a repository tracking all of them
    and a hidden `.env` (the sandbox's index view marks it; bases, ignore rules run git)."""
    root.mkdir()
    per_dir = 1000
    for d in range(max(1, files // per_dir)):
        sub = root / f"pkg{d:03d}"
        sub.mkdir()
        for i in range(min(per_dir, files)):
            (sub / f"m{i:04d}.py").write_text(f"# module {d}.{i}\nVALUE = {i}\n")
    (root / "src").mkdir()
    for i in range(10):
        (root / "src" / f"edit{i}.py").write_text(f"x = {i}\n")
    if git:
        (root / ".env").write_text("SECRET=1\n")
        (root / ".gitignore").write_text("build/\n")
        # gc.auto=0: a commit of 100,000 loose objects would start `git gc` in the background,
        # still writing in .git when the benchmark removes its directory.
        ident = ["-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c",
                 "gc.auto=0"]
        for argv in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "bench"]):
            subprocess.run(["git", "-C", str(root), *argv], check=True)


TEN_CHANGES = ("for i in 0 1 2 3 4 5 6 7 8 9; do echo 'y = 1' >> src/edit$i.py; done")


def snapshot_cost(n: int, base: Path) -> dict[str, float]:
    from sandbox._home import HomeLayout
    from sandbox._runner import Runner, RunRequest
    from sandbox.audit import AuditLog
    from sandbox.backends import get_backend
    from sandbox.policy import Layer, merge
    from sandbox.store import Store

    runs: dict[str, Callable[[], object]] = {}
    for files, git in ((10, False), (100_000, False), (10, True), (100_000, True)):
        tag = f"{files}{'-git' if git else ''}"
        ws = base / f"ws{tag}"
        make_workspace(ws, files, git=git)
        layout = HomeLayout(base / f"home{tag}").ensure()
        runner = Runner(layout, Store(layout), AuditLog(layout.audit), get_backend("nsjail"))
        policy = merge([Layer("flags", "--level", {"level": 4})])
        req = RunRequest(argv=("sh", "-c", TEN_CHANGES), workspace=ws, policy=policy)

        def once(runner: Runner = runner, req: RunRequest = req) -> None:
            outcome = runner.run(req)
            assert len(outcome.committed) == 10, outcome.committed

        where = "git repository, tracked .env" if git else "files"
        runs[f"{files:,} {where}: run + snapshot + diff + commit (10 changes)"] = once
    return interleaved_ms(runs, n, warmup=1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbx-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        (base / "calls").mkdir()
        (base / "snap").mkdir()
        calls = per_call(args.n, base / "calls")
        snap = snapshot_cost(args.n, base / "snap")
    nsj = calls["bare nsjail"]
    lines = ["| measurement | median ms | ratio |", "|---|---:|---:|"]
    for name, ms in calls.items():
        if ms >= 0:
            lines.append(f"| {name} | {ms:.1f} | {ms / nsj:.2f}x bare nsjail |")
    if "npx srt true" in calls:
        lines.append(f"| sandbox CLI / npx srt | | {calls['sandbox CLI'] / calls['npx srt true']:.2f} |")
    small, big, gsmall, gbig = snap.values()
    for name, ms in snap.items():
        lines.append(f"| {name} | {ms:.1f} | |")
    lines.append(f"| 100,000-file / 10-file | | {big / small:.2f} |")
    lines.append(f"| git: 100,000-file / 10-file | | {gbig / gsmall:.2f} |")
    lines.append(f"| git repository / plain directory, 10 files | | {gsmall / small:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"per_call": calls, "snapshot": snap}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
