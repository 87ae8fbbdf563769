"""The Docker backend against a real daemon and real containers (scripts/dockerd.sh starts one).

What only Docker can get wrong: containers and staged overlays that outlive a run (normal end,
timeout, Ctrl-C, a killed sandbox), the missing-daemon error, and built images whose Docker
form must have the same content as the rootfs the nsjail backend uses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sandbox.backends import LaunchSpec, Limits, Snapshot
from sandbox.backends._docker import reap_lost_containers
from sandbox.backends._docker_config import LABEL_BACKEND
from sandbox.backends._docker_stage import STAGE_NAME
from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.images import (
    ImageRecord,
    ImageStore,
    build_image,
    effective_mirror,
    find_definition,
    tree_digest,
)
from tests.conftest import REPO, SANDBOX_BIN, Cli, require, require_nsjail, require_root

IMAGES = Path(os.environ.get("SANDBOX_IMAGES", "/var/cache/sandbox/images"))


def docker_answers() -> bool:
    try:
        from sandbox.backends._docker_client import connect

        connect(timeout=5).close()
    except Exception:
        return False
    return True


@functools.cache
def _daemon_started() -> bool:
    """Start a daemon with scripts/dockerd.sh when none answers (once per test session)."""
    if docker_answers():
        return True
    if os.geteuid() != 0 or "DOCKER_HOST" in os.environ:
        return False  # not ours to start: someone pointed us at another daemon
    subprocess.run([str(REPO / "scripts" / "dockerd.sh")], capture_output=True, check=False,
                   timeout=300)
    return docker_answers()


def require_docker() -> None:
    require_root()
    require(_daemon_started(), "a Docker daemon (scripts/dockerd.sh starts one: apt's docker.io)")


def docker_org_policy(home: Path, extra: str = "") -> None:
    (home.parent / "org.toml").write_text(f'[run]\nbackend = "docker"\n{extra}')


@pytest.fixture
def dcli(base_dir: Path) -> Cli:
    """The real CLI with the docker backend chosen by the org policy."""
    require_nsjail()  # seccomp compilation and the CLI's own checks still use it
    require_docker()
    home = base_dir / "home" / "state"
    home.parent.mkdir()
    docker_org_policy(home)
    return Cli(home=home)


def sandbox_containers() -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_BACKEND}"],
                         capture_output=True, check=True).stdout.decode()
    return out.split()


def stage_mounts() -> list[str]:
    return [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if f"/{STAGE_NAME}" in ln]


@pytest.fixture
def clean_slate() -> Iterator[None]:
    """No sandbox container or stage before the test, and none left after it."""
    require_docker()
    # Only what a dead run left: a live run's container may be another test's, on the same engine.
    reap_lost_containers()
    yield
    assert sandbox_containers() == [], "a sandbox container outlived its run"
    assert stage_mounts() == [], "a staged overlay outlived its run"


def test_no_daemon_is_exit_125_with_how_to_start_one(dcli: Cli, workspace: Path,
                                                     base_dir: Path) -> None:
    r = dcli("run", "-C", str(workspace), "--", "true",
             env={"DOCKER_HOST": f"unix://{base_dir}/no-such-docker.sock"})
    assert r.returncode == 125, r.stderr
    assert b"no Docker daemon answers" in r.stderr
    assert b"scripts/dockerd.sh" in r.stderr and b"systemctl start docker" in r.stderr


def test_run_leaves_no_container_and_no_mount(dcli: Cli, workspace: Path,
                                              clean_slate: None) -> None:
    r = dcli("run", "-C", str(workspace), "--json", "--", "sh", "-c",
             "echo changed > README.md; cat /proc/self/uid_map; exit 4")
    assert r.returncode == 4, r.stderr
    assert b"1000000000" in r.stdout  # root inside is MAPPED_ROOT_ID outside
    assert (workspace / "README.md").read_text() == "hello\n"  # held at level 2
    r = dcli("run", "-C", str(workspace), "--timeout", "1", "--", "sleep", "30")
    assert r.returncode == 124


def test_ctrl_c_reaches_the_command_and_the_container_goes(dcli: Cli, workspace: Path,
                                                          clean_slate: None) -> None:
    script = 'trap "echo got-int; exit 9" INT; echo started; sleep 60 & wait'
    proc = subprocess.Popen([str(SANDBOX_BIN), "run", "-C", str(workspace), "--", "sh", "-c",
                             script], env=dcli.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"  # streamed live, before the command ends
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert out == b"got-int\n", err  # the command was told, and could clean up
    assert proc.returncode == 130, err  # the run was cancelled: 128 + SIGINT


def _in_a_sandbox_container(cmd: list[str]) -> bool:
    """`cmd` runs inside one of our containers (seen from the host: its cgroup names it)."""
    ids = sandbox_containers()
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] != cmd:
            continue
        try:
            cgroup = Path(f"/proc/{p.pid}/cgroup").read_text()
        except OSError:
            continue
        if any(i in cgroup for i in ids):
            return True
    return False


def _wait_until_running(cmd: list[str], owner: int | None = None, timeout: float = 60) -> None:
    """Until the run's command is going in its container (and, given the pid of `sandbox run`,
    its lifeline watches it): not a fixed pause that a slow machine outlasts."""
    deadline = time.monotonic() + timeout
    while not (_in_a_sandbox_container(cmd) and (owner is None or _lifelines(owner))):
        assert time.monotonic() < deadline, "the run never got its command going"
        time.sleep(0.05)


def _start_and_wait_for_container(dcli: Cli, workspace: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(SANDBOX_BIN), "run", "-C", str(workspace), "--", "sleep", "60"],
                            env=dcli.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_running(["sleep", "60"], proc.pid)
    assert sandbox_containers() and stage_mounts(), "the run never started its container"
    return proc


def _lifelines(owner: int) -> list[int]:
    return [p.pid for p in psutil.process_iter(["ppid", "cmdline"])
            if "sandbox.backends._docker_lifeline" in " ".join(p.info["cmdline"] or ())
            and p.info["ppid"] in (owner, 1)]


def test_sigkill_of_sandbox_run_takes_the_container_down_at_once(
        dcli: Cli, workspace: Path, clean_slate: None) -> None:
    proc = _start_and_wait_for_container(dcli, workspace)
    assert _lifelines(proc.pid), "no lifeline watches the container"
    proc.kill()  # no finally block runs in `sandbox run`: only the kernel knows it died
    proc.wait()
    deadline = time.monotonic() + 15
    while (sandbox_containers() or stage_mounts()) and time.monotonic() < deadline:
        time.sleep(0.1)
    # without any later invocation: nothing of the run is left
    assert not sandbox_containers() and not stage_mounts()
    assert not _lifelines(proc.pid)


def test_killed_sandbox_leftovers_are_reaped_by_the_next_run(dcli: Cli, workspace: Path,
                                                            clean_slate: None) -> None:
    proc = _start_and_wait_for_container(dcli, workspace)
    lifelines = [psutil.Process(pid) for pid in _lifelines(proc.pid)]
    for p in lifelines:  # the lifeline dies too (e.g. the whole group SIGKILLed)
        p.kill()
    proc.kill()
    proc.wait()
    _gone, alive = psutil.wait_procs(lifelines, timeout=30)
    assert not alive  # nothing is left that could clean up: the leftovers stay
    assert sandbox_containers() and stage_mounts()
    r = dcli("run", "-C", str(workspace), "--", "true")
    assert r.returncode == 0, r.stderr
    # clean_slate checks that both were reaped


def _image(name: str) -> ImageRecord:
    """A built image from the shared store ($SANDBOX_IMAGES, as scripts/build-images.sh uses):
    reused while its definition is unchanged, (re)built otherwise (~1 min, once)."""
    require_root()
    store = ImageStore(IMAGES)
    defn = find_definition(name)
    rec = store.load(name)
    if rec is None or rec.definition_hash != defn.definition_hash(effective_mirror(defn)):
        require(os.access("/usr/sbin/debootstrap", os.X_OK), "debootstrap (apt-get install "
                "debootstrap; scripts/build-images.sh builds the images)")
    return build_image(defn, store).record


def _snapshot(base: Path, ws: Path) -> Snapshot:
    dirs = {n: base / n for n in ("upper", "work", "mask")}
    for d in dirs.values():
        d.mkdir(mode=0o700)
    os.chown(dirs["upper"], MAPPED_ROOT_ID, MAPPED_ROOT_ID)
    os.chmod(dirs["upper"], 0o755)
    return Snapshot(lower=ws, upper=dirs["upper"], work=dirs["work"], mask=dirs["mask"])


def _launch(backend_name: str, image_root: Path, ws: Path, base: Path,
            argv: tuple[str, ...]) -> tuple[int, bytes]:
    from sandbox.backends import get_backend
    from sandbox.seccomp import load_for_run

    backend = get_backend(backend_name, capture=True)
    spec = LaunchSpec(argv=argv, snapshot=_snapshot(base, ws), scratch=base / "scratch",
                      env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
                      seccomp=load_for_run(None, cache_dir=None), image_root=image_root,
                      limits=Limits(timeout_s=60))
    result = backend.launch(spec)
    captured = getattr(backend, "captured", None)
    assert captured is not None
    return result.exit_code, captured.stdout


PROBE = ("cat /etc/debian_version; sha256sum /usr/bin/python3.11 /usr/lib/os-release; "
         "python3 -c 'import sys, ssl; print(sys.version.split()[0])'; "
         "test -e /usr/share/doc/python3/copyright && echo copyright; "
         "ls /workspace; echo made > /workspace/made")


def test_built_image_same_content_on_docker_and_nsjail(base_dir: Path, workspace: Path,
                                                       clean_slate: None) -> None:
    require_nsjail()
    rec = _image("debian-python")
    rootfs = ImageStore(IMAGES).rootfs(rec.name)
    outs = {}
    for name in ("docker", "nsjail"):
        d = base_dir / name
        d.mkdir()
        code, out = _launch(name, rootfs, workspace, d, ("sh", "-c", PROBE))
        assert code == 0, (name, out)
        assert (d / "upper" / "made").read_text() == "made\n"
        outs[name] = out
    assert outs["docker"] == outs["nsjail"]
    assert b"README.md" in outs["docker"] and b"copyright" in outs["docker"]
    assert b"\n3.11." in outs["docker"]  # bookworm's python, whatever the host has


def test_image_build_is_cached_and_digest_matches_the_tree(base_dir: Path) -> None:
    rec = _image("debian-python")
    store = ImageStore(IMAGES)
    again = build_image(find_definition("debian-python"), store)
    assert again.cached and again.record == rec  # unchanged definition: nothing rebuilt
    assert tree_digest(store.rootfs(rec.name)).digest == rec.digest
    assert any(p.startswith("python3=") for p in rec.installed)
    assert rec.files > 1000 and rec.bytes < 400 << 20  # minbase + python3, trimmed


def test_image_ls_lists_built_images(base_dir: Path) -> None:
    rec = _image("debian-python")
    env = {**os.environ, "SANDBOX_IMAGES": str(IMAGES)}
    r = subprocess.run([str(SANDBOX_BIN.parent / "python"), "-m", "sandbox.cli._image",
                        "image", "ls"], capture_output=True, env=env, check=True)
    assert b"host" in r.stdout and rec.digest[:19].encode() in r.stdout


def test_missing_docker_image_is_reimported_under_the_same_tag(clean_slate: None) -> None:
    rec = _image("debian-node")
    from sandbox.backends._docker_client import connect
    from sandbox.images import ensure_docker_image

    client = connect()
    # A fresh daemon (or a pruned one) lacks the image: it is imported again from the rootfs,
    # under the same content-addressed tag, without rebuilding.
    subprocess.run(["docker", "rmi", "-f", rec.docker_tag], capture_output=True, check=False)
    ref = ensure_docker_image(client, rec, ImageStore(IMAGES).rootfs(rec.name))
    assert ref == rec.docker_tag == f"sandbox/debian-node:{rec.digest.split(':')[1]}"
    out = client.containers.run(ref, ["node", "-e", "console.log(1 + 1)"], remove=True,
                                network_mode="none")
    assert out.strip() == b"2"


def test_doctor_report_names_the_daemon_or_how_to_start_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_docker()
    from sandbox.backends._docker_client import doctor_report

    ok = doctor_report()
    assert ok.ok and "seccomp on" in ok.detail, ok
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    bad = doctor_report()
    assert not bad.ok and "scripts/dockerd.sh" in bad.fix


def test_piped_stdin_reaches_the_command(dcli: Cli, workspace: Path) -> None:
    """Like nsjail's inherited stdin: a pipe is relayed whole, then EOF."""
    data = bytes(range(256)) * 2000  # 512 KB: more than one socket buffer
    r = dcli("run", "-C", str(workspace), "--", "sh", "-c", "sha256sum; echo after-eof",
             input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{hashlib.sha256(data).hexdigest()}  -\nafter-eof\n".encode()


def test_sigterm_stops_the_container_and_records_the_run_cancelled(
        dcli: Cli, workspace: Path, clean_slate: None) -> None:
    from tests.support.procs import Running

    run = Running(dcli, "run", "-C", str(workspace), "--", "sh", "-c",
                  "echo so-far > made.txt; exec sleep 60")
    _wait_until_running(["sleep", "60"])  # made.txt is written by then
    sent = run.signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 143, err
    assert time.monotonic() - sent < 5  # stopped promptly (grace 0.5 s, then SIGKILL)
    assert sandbox_containers() == [] and stage_mounts() == []
    runs = json.loads(dcli("ls", "--json", check=True).stdout)
    assert runs[0]["status"] == "cancelled" and runs[0]["exit_code"] == 143
    assert b"made.txt" in dcli("diff", "last", check=True).stdout  # kept pending


def test_sigkill_the_next_invocation_marks_lost_and_removes_the_container(
        dcli: Cli, workspace: Path, clean_slate: None) -> None:
    proc = subprocess.Popen([str(SANDBOX_BIN), "run", "-C", str(workspace), "--", "sleep", "60"],
                            env=dcli.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_running(["sleep", "60"])
    proc.kill()
    proc.wait()
    assert sandbox_containers()
    r = dcli("ls", "--json", cwd=workspace)  # any invocation, not only the next docker run
    assert r.returncode == 0 and b"was lost" in r.stderr, r.stderr
    assert json.loads(r.stdout)[0]["status"] == "lost"
    assert sandbox_containers() == [] and stage_mounts() == []


def test_user_is_refused_with_what_to_use(dcli: Cli, workspace: Path, clean_slate: None) -> None:
    r = dcli("run", "-C", str(workspace), "--user", "dev", "--", "true")
    assert r.returncode == 125 and b"nsjail backend" in r.stderr, r.stderr


def test_an_out_of_memory_kill_is_named(dcli: Cli, workspace: Path, clean_slate: None) -> None:
    r = dcli("run", "-C", str(workspace), "--json", "--memory", "64m", "--", "python3", "-c",
             "a = bytearray(512 << 20); print('allocated')")
    data = json.loads(r.stdout)
    assert r.returncode == 137 and "allocated" not in data["stdout"], r.stderr
    assert "killed: out of memory (limit 64m)" in data["notes"], data["notes"]
