"""What confining `profile test|record` like `run` costs: the CLI calls side by side, in one run.

    .venv/bin/python benchmarks/bench_profile.py [--runs 15]

Contenders (interleaved medians of `true` in a small workspace): `sandbox run` (the peer),
`sandbox profile test default`, `sandbox profile record`, and the old unconfined command line of
the profile tools (bare nsjail under the ptrace tracer, as before issue 10) for reference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_ms

from sandbox.seccomp import _jail, _ptrace, load_for_run

SANDBOX = str(Path(sys.executable).parent / "sandbox")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        (ws / "README.md").write_text("hello\n")
        env = {**os.environ, "SANDBOX_HOME": str(Path(tmp) / "state"),
               "SANDBOX_ORG_POLICY": os.devnull}
        kafel = load_for_run("default", cache_dir=None).kafel

        def cli(*argv: str) -> None:
            subprocess.run([SANDBOX, *argv], env=env, cwd=ws, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def old_minimal() -> None:  # the pre-issue-10 profile test launch, unconfined
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)  # nsjail's warnings (it says it runs as host root: it did)
            try:
                _ptrace.run_traced(_jail.jail_argv(kafel, ["/bin/true"], cwd=str(ws)))
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(null)

        got = interleaved_ms({
            "sandbox run -- true": lambda: cli("run", "--", "true"),
            "sandbox profile test default -- true": lambda: cli("profile", "test", "default",
                                                                "--", "true"),
            "sandbox profile record -- true": lambda: cli("profile", "record", "--", "true"),
            "old minimal jail + tracer (in-process)": old_minimal,
        }, args.runs)
    peer = got["sandbox run -- true"]
    print("| `true`, median of", args.runs, "| ms | vs `sandbox run` |")
    print("|---|---:|---:|")
    for name, ms in got.items():
        print(f"| {name} | {ms:.1f} | {ms / peer:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
