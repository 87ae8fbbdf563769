"""Seccomp probes: each call `default` must block, attempted for real inside `sandbox run` and
outside it (so a test can fail: a probe that never reaches the call proves nothing).

The probes (tests/data/seccomp/probes/probe.c) are compiled with gcc at test time into the
workspace. Inside, they run under a *marked* copy of the profile whose default errno is 133
(EHWPOISON), so a denial is provably the filter's and not a missing capability (which gives
EPERM too). Outside, they run as root in a private mount/UTS namespace, where they must succeed
or at least reach the kernel (any answer but the marker). Docker-style regressions then check
the real `default` answers EPERM/ENOSYS, and a KILL_PROCESS profile kills.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, Cli, require, require_root

PROBE_SRC = REPO / "tests" / "data" / "seccomp" / "probes" / "probe.c"
MARK = 133  # EHWPOISON: no syscall in the probes returns it on its own

DENIED = [
    "unshare", "clone_newuser", "setns", "mount", "umount2", "io_uring_setup", "bpf", "ptrace",
    "process_vm_readv", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd",
    "kexec_file_load", "finit_module", "open_by_handle_at", "clock_settime", "settimeofday",
    "socket_vsock", "socket_alg", "socket_packet", "socket_inet_raw", "personality_rie",
]
CONTROLS = ["ctl_clone", "ctl_socket_inet", "ctl_socket_unix"]
# As root in a private mount/UTS namespace these succeed on any reasonable kernel; the rest
# (kexec, modules, invalid clock, absent AF_ALG, missing key) reach the kernel and fail there.
MUST_SUCCEED_OUTSIDE = {
    "unshare", "clone_newuser", "clone3", "setns", "mount", "ptrace", "process_vm_readv",
    "keyctl", "add_key", "socket_packet", "socket_inet_raw", "personality_rie", *CONTROLS,
}


def parse(out: bytes) -> dict[str, str]:
    res = {}
    for line in out.decode(errors="replace").splitlines():
        name, _, result = line.partition(" ")
        if result:
            res[name] = result
    return res


@pytest.fixture
def probe(workspace: Path) -> Path:
    require(shutil.which("gcc") is not None, "gcc (apt-get install gcc)")
    exe = workspace / "probe"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(exe), str(PROBE_SRC)], check=True,
                   capture_output=True)
    return exe


def marked(base_dir: Path, name: str, **changes: object) -> Path:
    prof = json.loads((REPO / "profiles" / f"{name}.json").read_text())
    prof.update(changes)
    p = base_dir / f"{name}-marked.json"
    p.write_text(json.dumps(prof))
    return p


def inside(cli: Cli, ws: Path, profile: str | Path, *names: str) -> dict[str, str]:
    r = cli("run", "-C", str(ws), "--profile", str(profile), "--", "./probe", *names)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return parse(r.stdout)


def outside(exe: Path, *names: str) -> dict[str, str]:
    require_root()
    r = subprocess.run(["unshare", "--mount", "--uts", "--fork", str(exe), *names],
                       capture_output=True, check=True)
    return parse(r.stdout)


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_denied_inside_and_reached_outside(cli: Cli, workspace: Path, base_dir: Path,
                                           probe: Path, profile: str) -> None:
    got_out = outside(probe, "all")
    got_in = inside(cli, workspace, marked(base_dir, profile, defaultErrnoRet=MARK), "all")
    for name in DENIED:
        assert got_in.get(name) == f"errno={MARK}", (name, got_in.get(name))
        assert got_out.get(name) not in (None, f"errno={MARK}"), (name, got_out.get(name))
        assert not got_out[name].startswith("killed"), (name, got_out[name])
        if name in MUST_SUCCEED_OUTSIDE:
            assert got_out[name] == "ok", (name, got_out[name])
    assert got_out["clone3"] == "ok"
    assert got_in["clone3"] == "errno=38"  # ENOSYS, so libc falls back to clone
    for name in CONTROLS:
        assert got_in[name] == "ok" == got_out[name], name


# Docker-style regressions against the real `default`: EPERM like Docker, ENOSYS for clone3.
@pytest.mark.parametrize(("name", "result"), [
    ("unshare", "errno=1"),  # "unshare is denied"
    ("clone_newuser", "errno=1"),  # "clone with CLONE_NEWUSER is denied"
    ("io_uring_setup", "errno=1"),  # "io_uring_setup is denied"
    ("socket_vsock", "errno=1"),  # "socket(AF_VSOCK) is denied"
    ("socket_alg", "errno=1"),
    ("ptrace", "errno=1"),
    ("setns", "errno=1"),
    ("bpf", "errno=1"),
    ("keyctl", "errno=1"),
    ("userfaultfd", "errno=1"),
    ("clone3", "errno=38"),
    ("ctl_clone", "ok"),
])
def test_default_regressions(cli: Cli, workspace: Path, probe: Path, name: str,
                             result: str) -> None:
    assert inside(cli, workspace, "default", name)[name] == result


def test_kill_action_kills(cli: Cli, workspace: Path, base_dir: Path, probe: Path) -> None:
    prof = json.loads((REPO / "profiles" / "default.json").read_text())
    prof["syscalls"].append({"names": ["keyctl"], "action": "SCMP_ACT_KILL_PROCESS"})
    p = base_dir / "kill.json"
    p.write_text(json.dumps(prof))
    got = inside(cli, workspace, p, "keyctl", "ctl_clone")
    assert got["keyctl"] == "killed=31"  # SIGSYS
    assert got["ctl_clone"] == "ok"


def test_bad_profile_starts_no_run(cli: Cli, workspace: Path, base_dir: Path) -> None:
    marker = workspace / "ran"
    for bad in ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["execve", '
                '"opnat"], "action": "SCMP_ACT_ALLOW"}]}', '{"defaultAction": ',
                '{"defaultAction": "SCMP_ACT_ERRNO", "extra": 1}'):
        p = base_dir / "bad.json"
        p.write_text(bad)
        r = cli("run", "-C", str(workspace), "--level", "4", "--profile", str(p), "--",
                "sh", "-c", f"touch {marker}")
        assert r.returncode == 2, r.stderr
        assert b"bad.json" in r.stderr
        assert not marker.exists()
        assert os.listdir(workspace)  # the workspace is untouched otherwise


TOOLS = {
    "sh": "echo sh-ok",
    "git": "git init -q repo && git -C repo -c user.email=a@b -c user.name=n commit -q "
           "--allow-empty -m m && git -C repo log --oneline | wc -l",
    "python3": "python3 -c 'import subprocess, threading, multiprocessing as m; "
               "t = threading.Thread(target=print); t.start(); t.join(); "
               "p = m.Pool(2); print(sum(p.map(abs, [-1, -2]))); p.close(); "
               "print(subprocess.run([\"true\"]).returncode)'",
    "node": "node -e 'require(\"child_process\").execSync(\"true\"); "
            "setTimeout(() => console.log(\"node-ok\"), 5)'",
    "gcc": "printf 'int main(void){return 0;}' > t.c && gcc -O2 t.c -o t && ./t && echo cc-ok",
    "make": "printf 'all:\\n\\t@echo make-ok\\n' > Makefile && make",
}


@pytest.mark.parametrize("profile", ["default", "strict"])
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_real_tools_work_under_shipped_profiles(cli: Cli, workspace: Path, profile: str,
                                                tool: str) -> None:
    require(shutil.which(tool) is not None, f"{tool} on the host (the sandbox sees /usr)")
    r = cli("run", "-C", str(workspace), "--level", "2", "--profile", profile, "--",
            "sh", "-c", f"set -e; cd /tmp; {TOOLS[tool]}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.strip(), r.stderr
