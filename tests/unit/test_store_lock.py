"""session_lock serializes holders across processes; concurrent runs get distinct seqs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from sandbox.errors import StateError, UsageError
from sandbox.store import Store, session_lock

HOLDER = """
import sys, time
from pathlib import Path
from sandbox._home import HomeLayout
from sandbox.store import session_lock
with session_lock(HomeLayout(Path(sys.argv[1])), sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""

RUNNER = """
import sys
from pathlib import Path
from sandbox._home import HomeLayout
from sandbox.store import Store
with Store(HomeLayout(Path(sys.argv[1]))) as st:
    for _ in range(int(sys.argv[3])):
        with st.session_lock(sys.argv[2]):
            st.new_run(sys.argv[2], ["x"], backend="n", profile="p")
"""


@pytest.fixture
def layout(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home").ensure()


def test_lock_excludes_second_holder(layout: HomeLayout) -> None:
    with session_lock(layout, "s-abc") as path:
        assert path == layout.locks_dir / "s-abc.lock"
        with pytest.raises(StateError, match="busy"), session_lock(layout, "s-abc", timeout=0):
            pass
        # Other sessions are independent.
        with session_lock(layout, "s-other", timeout=0):
            pass
    with session_lock(layout, "s-abc", timeout=0):
        pass


def test_lock_waits_up_to_timeout(layout: HomeLayout) -> None:
    with session_lock(layout, "s-abc"):
        start = time.monotonic()
        with pytest.raises(StateError), session_lock(layout, "s-abc", timeout=0.2):
            pass
        assert time.monotonic() - start >= 0.2


def test_lock_released_when_holder_is_killed(layout: HomeLayout) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(layout.root), "s-abc"], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"locked\n"
        with pytest.raises(StateError), session_lock(layout, "s-abc", timeout=0):
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        with session_lock(layout, "s-abc", timeout=5):
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", ""])
def test_lock_rejects_path_like_ids(layout: HomeLayout, bad: str) -> None:
    with pytest.raises(UsageError), session_lock(layout, bad):
        pass
    assert sorted(p.name for p in layout.root.iterdir()) == sorted(
        ["cache", "journal", "locks", "sessions"]
    )


def test_concurrent_runs_of_one_session(layout: HomeLayout) -> None:
    with Store(layout) as st:
        sid = st.new_session(layout.root, level=2, policy_digest="d").id
    procs, per_proc = 3, 8
    children = [
        subprocess.Popen([sys.executable, "-c", RUNNER, str(layout.root), sid, str(per_proc)])
        for _ in range(procs)
    ]
    assert [c.wait(timeout=120) for c in children] == [0] * procs
    with Store(layout) as st:
        seqs = sorted(r.seq for r in st.list_runs(100, session_id=sid))
    assert seqs == list(range(1, procs * per_proc + 1))
