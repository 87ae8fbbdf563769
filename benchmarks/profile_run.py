"""Where one library run's wall time goes: per-phase medians of `Runner.run` (`bash -c true`),
by wrapping the functions on its path with timers. Not a benchmark (no peer); the evidence
behind README's "Where the library call's time goes".

    .venv/bin/python benchmarks/profile_run.py [--n 30] [--level 2]

Nested phases overlap (launch contains the fork and the wait); a phase's figure is its median
per run over the runs where it ran. With `perf` installed, `perf record -g` on this script with
`python -X perf` adds the Python frames of the CPU profile.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (module, attribute path): the steps of one run, outermost first.
PHASES = [
    ("sandbox._runner", "Runner.run"),
    ("sandbox.backends._nsjail", "NsjailBackend.launch"),
    ("sandbox.backends._nsjail", "supervise"),  # nsjail running: its wait, in our thread
    ("sandbox.backends._nsjail", "spawn"),  # the root path's staging, vfork, exec
    ("sandbox.backends._nsjail", "make_idmap_userns"),
    ("sandbox.backends._nsjail", "build_config"),
    ("sandbox.backends._nsjail", "render"),
    ("sandbox.backends._nsjail", "plan_limits"),
    ("sandbox.audit._log", "AuditLog.append_many"),
    ("sandbox._runner", "apply_decision"),
    ("sandbox._runner", "prepare_snapshot"),
    ("sandbox._runner", "compute_changeset"),
    ("sandbox._runner", "record_bases"),
    ("sandbox._runner", "split_ignored"),
    ("sandbox.store._store", "Store.new_run"),
    ("sandbox.store._store", "Store.finish_run"),
    ("sandbox.store._store", "Store.get_session"),
    ("sandbox.seccomp", "load_for_run"),
]


def _wrap(module: str, attr: str, spent: dict[str, float]) -> None:
    owner: Any = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    orig: Callable[..., Any] = getattr(owner, name)
    label = f"{module.rsplit('.', 1)[-1]}.{attr}"

    @functools.wraps(orig)
    def timed(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

    setattr(owner, name, timed)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--level", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbx-profile-run-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        (base / "ws").mkdir()
        (base / "ws" / "README.md").write_text("bench\n")
        (base / "org.toml").write_text("")
        os.environ.update(SANDBOX_HOME=str(base / "home"),
                          SANDBOX_ORG_POLICY=str(base / "org.toml"))
        from sandbox._home import HomeLayout
        from sandbox._runner import Runner, RunRequest
        from sandbox.audit import AuditLog
        from sandbox.backends import get_backend
        from sandbox.policy import Layer, merge
        from sandbox.store import Store

        spent: dict[str, float] = {}
        for module, attr in PHASES:
            _wrap(module, attr, spent)
        layout = HomeLayout(base / "home").ensure()
        runner = Runner(layout, Store(layout), AuditLog(layout.audit),
                        get_backend("nsjail", capture=True))
        policy = merge([Layer("flags", "--level", {"level": args.level})])
        req = RunRequest(argv=("bash", "-c", "true"), workspace=base / "ws", policy=policy,
                         session="profile" if args.level <= 2 else None, capture=True)
        for _ in range(3):
            runner.run(req)
        per_run: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(args.n):
            spent.clear()
            runner.run(req)
            for k, v in spent.items():
                per_run[k].append(v)
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}; {args.n} runs, level {args.level}")
    print("| phase | median ms |\n|---|---:|")
    for k, vals in sorted(per_run.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"| {k} | {statistics.median(vals) * 1000:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
