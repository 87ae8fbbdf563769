"""The control plane at scale: `sandbox report` over a one-million-record audit log next to
`jq` reading the same log in the same run, and the console's pending page with 1,000 pending
changes. Prints a markdown table (medians, interleaved)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import interleaved_ms  # (benchmarks/ is sys.path[0])

from sandbox.audit import GENESIS, AuditEvent
from sandbox.audit._record import make_record

SANDBOX = Path(sys.executable).parent / "sandbox"
RECORDS = int(os.environ.get("BENCH_AUDIT_RECORDS", "1000000"))

# One agent session, ten records: what a run with LLM calls, a changeset and a decision writes.
_SESSION = [
    (AuditEvent.RUN_STARTED, {"command": ["agent"], "workspace": "/work/ws{w}", "level": 2}),
    (AuditEvent.LLM_CALL, {"model": "claude-x", "input_tokens": 1200, "output_tokens": 300,
                           "cost_usd": 0.0081}),
    (AuditEvent.LLM_CALL, {"model": "claude-x", "input_tokens": 1500, "output_tokens": 200,
                           "cost_usd": 0.0075}),
    (AuditEvent.EGRESS, {"verdict": "denied", "host": "example.org", "port": 443}),
    (AuditEvent.RUN_FINISHED, {"status": "finished", "exit_code": 0, "duration_ms": 900}),
    (AuditEvent.CHANGESET, {"total": 2, "paths": ["src/a.py", "src/b.py"], "lines": [12, 3]}),
    (AuditEvent.DECISION, {"decision": "hold", "reasons": ["level 2"], "refused": []}),
    (AuditEvent.DECISION, {"decision": "approve", "paths": ["src/a.py"]}),
    (AuditEvent.COMMIT, {"paths": ["src/a.py"]}),
    (AuditEvent.DECISION, {"decision": "reject", "paths": ["src/b.py"]}),
]


def write_log(path: Path, n: int) -> None:
    prev, seq = GENESIS, 0
    with open(path, "wb") as f:
        while seq < n:
            sid = f"s{seq // len(_SESSION):07d}"
            for i, (event, data) in enumerate(_SESSION):
                if seq >= n:
                    break
                seq += 1
                d = dict(data)
                if "workspace" in d:
                    d["workspace"] = f"/work/ws{seq % 7}"
                minute = seq // 600
                ts = (f"2026-11-{1 + (minute // 1440) % 28:02d}T{(minute // 60) % 24:02d}:"
                      f"{minute % 60:02d}:{(seq // 10) % 60:02d}.{i:06d}Z")
                rec = make_record(seq=seq, prev=prev, event=event, run=None, session=sid,
                                  actor="policy" if event is AuditEvent.DECISION and i == 6
                                  else "alice", data=d, ts=ts)
                f.write(rec.encode_line())
                prev = rec.hash
    path.with_suffix(".head").write_text(f"v1 {seq:020d} {prev}\n")


def _pending_pages(tmp: Path) -> None:
    """One session holding 1,000 changed files: the console's pending list and session page,
    served over the owner's unix socket, next to `sandbox diff` of the same session."""
    import http.client
    import socket
    import time

    home, ws = tmp / "pstate", tmp / "ws"
    ws.mkdir()
    for i in range(1000):
        (ws / f"f{i:04d}.txt").write_text("".join(f"line {j}\n" for j in range(20)))
    env = {**os.environ, "SANDBOX_HOME": str(home)}
    subprocess.run([str(SANDBOX), "run", "--level", "2", "--session", "big", "--", "sh", "-c",
                    "for f in f*.txt; do echo changed >> $f; done"], cwd=ws, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = tmp / "serve.sock"
    proc = subprocess.Popen([str(SANDBOX), "serve", "--listen", f"unix:{sock}"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        while not sock.exists():
            time.sleep(0.05)

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(sock))

        def get(path: str) -> None:
            c = Conn("localhost", timeout=600)
            c.request("GET", path)
            r = c.getresponse()
            assert r.status == 200, r.status
            r.read()
            c.close()

        times = interleaved_ms({
            "console: pending list (/)": lambda: get("/"),
            "console: session page, 1,000 file diffs (/s/big)": lambda: get("/s/big"),
            "API: diff JSON (/api/v1/sessions/big/diff)": lambda: get("/api/v1/sessions/big/diff"),
            "peer: sandbox diff big (CLI, same changes)": lambda: subprocess.run(
                [str(SANDBOX), "diff", "big"], env=env, check=True, stdout=subprocess.DEVNULL),
        }, n=5, warmup=1)
        print("\n| one session, 1,000 changed files | median |")
        print("|---|---:|")
        for name, ms in times.items():
            print(f"| {name} | {ms:.0f} ms |")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    jq = shutil.which("jq")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        home = tmp / "state"
        home.mkdir(mode=0o700)
        log = home / "audit.log"
        write_log(log, RECORDS)
        env = {**os.environ, "SANDBOX_HOME": str(home)}
        size_mb = log.stat().st_size / 1e6

        def report() -> None:
            subprocess.run([str(SANDBOX), "report", "--json"], env=env, check=True,
                           stdout=subprocess.DEVNULL)

        def jq_counts() -> None:
            assert jq is not None
            subprocess.run([jq, "-n", "reduce inputs as $r ({}; .[$r.event] += 1)", str(log)],
                           check=True, stdout=subprocess.DEVNULL)

        def jq_cost() -> None:
            assert jq is not None
            subprocess.run([jq, "-n", "[inputs | select(.event == \"llm.call\") | "
                            ".data.cost_usd] | add", str(log)], check=True,
                           stdout=subprocess.DEVNULL)

        contenders = {"sandbox report --json": report}
        if jq:
            contenders |= {"jq: count records per event": jq_counts,
                           "jq: sum LLM cost": jq_cost}
        times = interleaved_ms(contenders, n=3, warmup=1)
        base = times.get("jq: count records per event") or next(iter(times.values()))
        print(f"audit log: {RECORDS:,} records, {size_mb:.0f} MB\n")
        print("| over the whole log | median | vs jq (count per event) |")
        print("|---|---:|---:|")
        for name, ms in times.items():
            print(f"| {name} | {ms / 1000:.2f} s | {ms / base:.2f}x |")
        _pending_pages(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
