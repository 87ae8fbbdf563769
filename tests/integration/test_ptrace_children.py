"""The ptrace engine waits only for what it traces: another child of the same process (a
terminal helper, a lifeline, any subprocess) keeps its exit status and does not hold it up."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from sandbox.seccomp import _jail, _ptrace
from tests.conftest import require_nsjail, require_root


def _zombie(cmd: str) -> subprocess.Popen[bytes]:
    """A child that has exited and waits to be reaped (so any waitpid(-1) would take it)."""
    p = subprocess.Popen(["/bin/sh", "-c", cmd])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    return p


def test_an_exited_sibling_keeps_its_status() -> None:
    other = _zombie("exit 7")
    assert _ptrace.run_traced(["/bin/sh", "-c", "exit 3"]) == (3, b"")
    assert other.wait(timeout=10) == 7  # not reaped by the tracer (it would read as 0)


def test_a_running_sibling_does_not_hold_up_the_trace() -> None:
    other = subprocess.Popen(["/bin/sh", "-c", "read line; exit 5"], stdin=subprocess.PIPE)
    assert other.stdin is not None
    # Should the tracer wait for it, this lets the test fail instead of hanging.
    rescue = threading.Timer(60, other.stdin.close)
    rescue.start()
    try:
        code, _ = _ptrace.run_traced(["/bin/sh", "-c", "exit 4"])
        assert other.poll() is None  # still running: the trace did not wait for it
    finally:
        rescue.cancel()
    assert code == 4
    other.stdin.write(b"go\n")
    other.stdin.close()
    assert other.wait(timeout=10) == 5


def test_reading_the_installed_filter_leaves_other_children_alone() -> None:
    require_root()
    require_nsjail()
    other = _zombie("exit 9")
    prog = _jail.installed_filter("POLICY p { KILL { ptrace } } USE p DEFAULT ALLOW")
    assert len(prog) % 8 == 0 and len(prog) > 8  # a real BPF program came back
    assert other.wait(timeout=10) == 9


def test_profile_test_in_process_leaves_other_children_alone(workspace: Path,
                                                             base_dir: Path) -> None:
    """`profile test` through the library, from a process with a child of its own."""
    require_nsjail()
    from sandbox._home import HomeLayout
    from sandbox._profiling import ConfinedLaunch, test_profile
    from sandbox.policy import load_policy
    from sandbox.seccomp import load_profile

    org = base_dir / "org.toml"
    org.write_text("# no org policy\n")
    env = {"SANDBOX_ORG_POLICY": str(org), "HOME": str(base_dir)}
    policy = load_policy(workspace, env=env, trust_home=base_dir / "state").policy
    launch = ConfinedLaunch(HomeLayout(base_dir / "state").ensure(), workspace, policy,
                            ("sh", "-c", "echo traced > out.txt; exit 6"))
    name, profile = load_profile("default")
    other = _zombie("exit 8")
    report = test_profile(launch, profile, name=name)
    assert report.exit_code == 6 and launch.discarded == 1  # the command really ran
    assert other.wait(timeout=10) == 8
