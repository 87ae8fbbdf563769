"""nsjail is started by one spawner thread per process (sandbox/backends/_spawn.py), by vfork:
forking a large caller (a server) for the root path's overlay staging cost 5-6 ms per run. What
the forked child did must still hold: the run dies with us (a launcher that died before the
parent-death signal was set never runs the command), and the staging stays in a private mount
namespace that nothing of the host, nor this process's other threads, ever sees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox._home import HomeLayout
from sandbox._runner import Runner, RunRequest
from sandbox.audit import AuditLog
from sandbox.backends import get_backend
from sandbox.backends._mountns import STAGE_DIR, OverlayLayers, make_idmap_userns, root_stage
from sandbox.backends._spawn import _wrapper, spawn
from sandbox.errors import EnforcementError
from sandbox.policy import Layer, merge
from sandbox.store import Store
from tests.conftest import require_nsjail, require_root


def _runner(base_dir: Path) -> Runner:
    layout = HomeLayout(base_dir / "home").ensure()
    return Runner(layout, Store(layout), AuditLog(layout.audit),
                  get_backend("nsjail", capture=True))


def _mount_namespaces() -> set[int]:
    """The mount namespace of every thread of this process (nsfs: one inode per namespace)."""
    return {os.stat(f"/proc/self/task/{tid}/ns/mnt").st_ino
            for tid in os.listdir("/proc/self/task")}


def test_a_root_launch_does_not_fork_the_caller(workspace: Path, base_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A preexec_fn makes subprocess fork() the whole caller instead of vfork(); the staging
    and the parent-death signal are done without one, and the run still sees the workspace
    through the staged overlay and writes only to the session."""
    require_root()
    require_nsjail()
    runner = _runner(base_dir)
    hooks: list[object] = []
    init = subprocess.Popen.__init__

    def spy(self: subprocess.Popen[bytes], *args: Any, **kwargs: Any) -> None:
        hooks.append(kwargs.get("preexec_fn"))
        init(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    policy = merge([Layer("flags", "--level", {"level": 2})])
    out = runner.run(RunRequest(argv=("sh", "-c", "cat README.md > seen.txt"),
                                workspace=workspace, policy=policy, session="nofork"))
    monkeypatch.undo()
    assert out.exit_code == 0, out.notes
    assert hooks and hooks == [None] * len(hooks)
    upper = runner.layout.session_dirs(out.session_id).upper
    assert (upper / "seen.txt").read_text() == "hello\n"
    assert not (workspace / "seen.txt").exists()
    assert len(_mount_namespaces()) == 1  # the spawner thread went back to the host's
    assert STAGE_DIR not in Path("/proc/self/mountinfo").read_text()


def test_a_failed_staging_leaves_nothing_and_the_next_run_works(workspace: Path,
                                                                base_dir: Path) -> None:
    """The staging now runs in a thread that lives on: a failure half-way must not leave it in
    the half-staged namespace, nor leak its fds, and must say what failed."""
    require_root()
    require_nsjail()
    # the spawner thread (and the fds it keeps for the process's life) exists before we count
    assert spawn(["true"], stdout=None, pass_fds=(), stage=None).wait() == 0
    fd = make_idmap_userns(0, 0)
    fds_before = set(os.listdir("/proc/self/fd"))
    gone = base_dir / "gone"
    layers = OverlayLayers(lower=workspace, upper=gone, work=gone, mask=None)
    try:
        with pytest.raises(EnforcementError, match="could not stage the workspace overlay"):
            spawn(["true"], stdout=None, pass_fds=(), stage=root_stage(layers, fd))
    finally:
        os.close(fd)
    assert set(os.listdir("/proc/self/fd")) <= fds_before
    assert len(_mount_namespaces()) == 1
    out = _runner(base_dir).run(RunRequest(
        argv=("sh", "-c", "cat README.md"), workspace=workspace,
        policy=merge([Layer("flags", "--level", {"level": 2})]), session="after"))
    assert out.exit_code == 0, out.notes


def test_a_launcher_gone_before_the_death_signal_never_runs_the_command(base_dir: Path) -> None:
    """Between vfork and setpriv's prctl the launcher may die: the signal then never comes, so
    the wrapper checks that its parent is still the launcher before it execs nsjail."""
    marker = base_dir / "ran"
    wrapper = _wrapper()
    assert wrapper[-1] == str(os.getpid())
    orphan = subprocess.run([*wrapper[:-1], "1", "touch", str(marker)], check=False)
    assert orphan.returncode == 125
    assert not marker.exists()
    # Our own child (the test process is its parent, as the spawner's process is nsjail's).
    ours = subprocess.run([*wrapper, "touch", str(marker)], check=False)
    assert ours.returncode == 0
    assert marker.exists()  # the command does run when the launcher is alive
