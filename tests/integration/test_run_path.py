"""The per-run path of a long-lived process (`sandbox mcp`, the library): work that does not
change between runs is done once, and each run still gets exactly what a fresh one would."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from sandbox._runner import Runner, RunRequest
from sandbox.audit import AuditLog
from sandbox.backends import get_backend
from sandbox.backends._mountns import make_idmap_userns
from sandbox.policy import Layer, merge
from sandbox.store import Store
from tests.conftest import require_nsjail, require_root


def test_the_idmap_user_namespace_is_made_once_per_mapping(workspace: Path,
                                                          base_dir: Path) -> None:
    """Making it forks this whole process (a server's runs paid ~8 ms each for it); it is only
    a mapping, so one per (uid, gid) serves every run, and each run's files still map right."""
    require_root()
    fds = [make_idmap_userns(0, 0), make_idmap_userns(0, 0), make_idmap_userns(4321, 4321)]
    try:
        same, again, other = (os.fstat(fd).st_ino for fd in fds)  # nsfs: one inode per ns
        assert same == again
        assert other != same
    finally:
        for fd in fds:
            os.close(fd)
    layout = HomeLayout(base_dir / "home").ensure()
    runner = Runner(layout, Store(layout), AuditLog(layout.audit),
                    get_backend("nsjail", capture=True))
    policy = merge([Layer("flags", "--level", {"level": 2})])
    for n in range(2):  # as root inside, the workspace owner's (root's) files are its own
        out = runner.run(RunRequest(argv=("sh", "-c", f"cat README.md && echo {n} >> README.md"),
                                    workspace=workspace, policy=policy, session="idmap"))
        assert out.exit_code == 0, out.notes
    assert (workspace / "README.md").read_text() == "hello\n"  # held: pending, not written
    upper = layout.session_dirs(out.session_id).upper
    assert (upper / "README.md").read_text() == "hello\n0\n1\n"


def test_a_launch_waits_in_the_calling_thread(workspace: Path, base_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """nsjail's pipes, the polled write cap and its exit are watched by one select in the
    caller's thread: a thread per pipe and per cap (each start waits for the new thread to be
    scheduled) and a 10 ms exit poll cost more than a short command. Output is still captured
    whole and in order, and the time limit still applies."""
    require_nsjail()
    started: list[str] = []
    start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    layout = HomeLayout(base_dir / "home").ensure()
    backend = get_backend("nsjail", capture=True)
    runner = Runner(layout, Store(layout), AuditLog(layout.audit), backend)
    policy = merge([Layer("flags", "--level", {"level": 2, "limits": {"timeout": "30s"}})])
    assert policy.policy.limits.write_bytes is not None  # the polled cap is on
    script = "seq 1 30000; echo oops >&2; echo done > f.txt"
    # The process's one spawner thread (_spawn) is started by its first launch, not per run.
    runner.run(RunRequest(argv=("true",), workspace=workspace, policy=policy, session="warm"))
    monkeypatch.setattr(threading.Thread, "start", spy)
    out = runner.run(RunRequest(argv=("sh", "-c", script), workspace=workspace, policy=policy,
                                session="thr", capture=True))
    monkeypatch.undo()
    assert out.exit_code == 0, out.notes
    captured = getattr(backend, "captured", None)
    assert captured is not None
    assert captured.stdout == "".join(f"{i}\n" for i in range(1, 30001)).encode()
    assert captured.stderr == b"oops\n"
    assert started == []
    assert [c.path for c in out.changeset] == ["f.txt"]


def test_init_looks_the_command_up_itself(workspace: Path, base_dir: Path) -> None:
    """tini (pid 1) finds the command on PATH and maps exec failures to 127/126 as `env`
    did, so the command is exec'ed once, not through `env` first."""
    require_nsjail()
    layout = HomeLayout(base_dir / "home").ensure()
    backend = get_backend("nsjail", capture=True)
    runner = Runner(layout, Store(layout), AuditLog(layout.audit), backend)
    policy = merge([Layer("flags", "--level", {"level": 2})])
    codes = {}
    for argv in (("no-such-command-xyz",), ("/etc/hostname",), ("sh", "-c", "exit 7")):
        out = runner.run(RunRequest(argv=argv, workspace=workspace, policy=policy,
                                    session="init", capture=True))
        codes[argv[0]] = out.exit_code
        cfg = (layout.session_dir(out.session_id) / "runs" / out.run_id / "nsjail.cfg")
        exec_bin = cfg.read_text().split("exec_bin {", 1)[1]
        assert '"/usr/bin/env"' not in exec_bin
        assert f'arg: "{argv[0]}"' in exec_bin
        captured = getattr(backend, "captured", None)
        assert captured is not None
        if argv[0] != "sh":
            assert argv[0].encode() in captured.stderr  # the message names the command
    assert codes == {"no-such-command-xyz": 127, "/etc/hostname": 126, "sh": 7}
