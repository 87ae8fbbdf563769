"""A change of 1,000,000 lines: `sandbox diff` and `sandbox review` against `git diff`.

    .venv/bin/python benchmarks/bench_large_change.py [--n 5] [--json out.json]

One pending session changes every line of a 1,000,000-line file (sed s/line/LINE/). Rows,
interleaved, medians:
  git diff --no-index (peer)          git's own C diff of the same two files, to /dev/null
  sandbox diff, whole patch            the CLI streaming the patch to /dev/null
  sandbox diff, first line             until the first line of the patch arrives
  sandbox review, list on screen       a pseudo-terminal: until the list of changes is drawn
  sandbox review, first screen         then Enter: until the change's first screen is drawn
  sandbox review, last screen (End)    then End: until the last line is on screen
Reports ratios to the peer; asserts nothing (tests assert behaviour, not time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pexpect
import pyte

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SANDBOX = Path(sys.executable).parent / "sandbox"
LINES = 1_000_000
PEER = "git diff --no-index (peer)"

from _timing import interleaved_ms  # noqa: E402 (benchmarks/ is sys.path[0])


def _env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home.parent),
            "SANDBOX_HOME": str(home), "SANDBOX_ORG_POLICY": str(home.parent / "org.toml"),
            "TERM": "xterm-color"}


def setup(base: Path) -> tuple[Path, dict[str, str], Path, Path]:
    ws, home = base / "ws", base / "home" / "state"
    ws.mkdir()
    home.parent.mkdir()
    (home.parent / "org.toml").write_text("")
    old = b"".join(b"line %d\n" % n for n in range(LINES))
    (ws / "big.txt").write_bytes(old)
    env = _env(home)
    subprocess.run([str(SANDBOX), "run", "--session", "big", "--", "sed", "-i",
                    "s/line/LINE/", "big.txt"], cwd=ws, env=env, check=True,
                   capture_output=True)
    a, b = base / "a.txt", base / "b.txt"
    a.write_bytes(old)
    b.write_bytes(old.replace(b"line", b"LINE"))
    return ws, env, a, b


def _to_null(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)


def _first_line(env: dict[str, str]) -> None:
    p = subprocess.Popen([str(SANDBOX), "diff", "big"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    p.stdout.readline()
    p.kill()
    p.wait()


class _Review:
    """One `sandbox review` on a pseudo-terminal; each step returns when its text is drawn."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.child: pexpect.spawn[bytes] | None = None

    def _until(self, needle: str) -> None:
        assert self.child is not None
        screen = pyte.Screen(80, 24)
        stream = pyte.ByteStream(screen)
        while True:
            try:
                stream.feed(self.child.read_nonblocking(65536, timeout=60))
            except pexpect.TIMEOUT as exc:
                raise SystemExit(f"review: {needle!r} never appeared") from exc
            if needle in "\n".join(screen.display):
                return

    def list(self) -> None:
        if self.child is not None:
            self.child.terminate(force=True)
        self.child = pexpect.spawn(str(SANDBOX), ["review", "big"], env=self.env,
                                   dimensions=(24, 80))
        self._until("1 change(s)")

    def first_screen(self) -> None:
        assert self.child is not None
        self.child.send("\r")
        self._until("-line 17")

    def last_screen(self) -> None:
        assert self.child is not None
        self.child.send("G")
        self._until(f"+LINE {LINES - 1}")
        self.child.terminate(force=True)
        self.child = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-large-") as d:
        ws, env, a, b = setup(Path(d))
        os.chdir(ws)
        review = _Review(env)
        res = interleaved_ms({
            PEER: lambda: _to_null(["git", "diff", "--no-index", str(a), str(b)], env),
            "sandbox diff, whole patch": lambda: _to_null([str(SANDBOX), "diff", "big"], env),
            "sandbox diff, first line": lambda: _first_line(env),
            "sandbox review, list on screen": review.list,
            "sandbox review, first screen (Enter)": review.first_screen,
            "sandbox review, last screen (End)": review.last_screen,
        }, n=args.n, warmup=1)
    peer = res[PEER]
    print(f"| {LINES:,} changed lines | median | vs git diff |")
    print("|---|---:|---:|")
    for name, ms in res.items():
        print(f"| {name} | {ms:.0f} ms | {ms / peer:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
