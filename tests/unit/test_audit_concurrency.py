"""Several processes appending at once must still produce one valid, gap-free chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sandbox.audit import AuditLog

WRITER = """
import sys
from pathlib import Path
from sandbox.audit import AuditEvent, AuditLog
log = AuditLog(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append(AuditEvent.EGRESS, run=sys.argv[2], data={"i": i, "pad": "y" * 3000})
"""


def test_concurrent_appends_from_processes(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    procs, per_proc = 4, 25
    children = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"r-{p}", str(per_proc)])
        for p in range(procs)
    ]
    assert [c.wait(timeout=120) for c in children] == [0] * procs
    log = AuditLog(path)
    report = log.verify()
    assert report.ok, report.summary()
    assert report.records == procs * per_proc
    records = list(log.records())
    assert [r.seq for r in records] == list(range(1, procs * per_proc + 1))
    for p in range(procs):
        # Each writer's own records appear in the order it wrote them.
        assert [r.data["i"] for r in records if r.run == f"r-{p}"] == list(range(per_proc))
