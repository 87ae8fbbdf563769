"""The Docker container config a LaunchSpec turns into (pure: no daemon needed).

Every security-relevant field of the Engine API body is asserted here, so a change that
loosens one fails even on a host without Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends import BindMount, LaunchSpec, Limits, Network, Seccomp, Snapshot
from sandbox.backends._docker_config import (
    INIT_INSIDE,
    LABEL_BACKEND,
    Identity,
    container_config,
    host_view_tag,
    host_view_tar,
)
from sandbox.backends._docker_stage import _unescape, owner_is_gone, owner_token
from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.errors import EnforcementError

SECCOMP = Seccomp(name="default", digest="sha256:x", kafel="",
                  oci_json=json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}))
ROOT_INSIDE = Identity.for_daemon((MAPPED_ROOT_ID, MAPPED_ROOT_ID))


def _spec(tmp: Path, **kw: Any) -> LaunchSpec:
    snap = Snapshot(lower=tmp / "ws", upper=tmp / "up", work=tmp / "wk")
    base: dict[str, Any] = dict(argv=("make", "test"), snapshot=snap, scratch=tmp / "s",
                                   env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
                                   seccomp=SECCOMP)
    base.update(kw)
    return LaunchSpec(**base)


def _config(spec: LaunchSpec, identity: Identity = ROOT_INSIDE,
            host_view: Path | None = Path("/")) -> dict[str, Any]:
    return container_config(spec, image="img", workspace_src=Path("/stage/ws"),
                            identity=identity, host_view=host_view, owner="1 2",
                            init=Path("/usr/bin/tini-static"))


def test_locked_down_by_default(tmp_path: Path) -> None:
    cfg = _config(_spec(tmp_path))
    hc = cfg["HostConfig"]
    assert hc["CapDrop"] == ["ALL"] and "CapAdd" not in hc
    assert hc["Privileged"] is False
    assert "no-new-privileges" in hc["SecurityOpt"]
    seccomp = [o for o in hc["SecurityOpt"] if o.startswith("seccomp=")]
    assert seccomp == [f"seccomp={SECCOMP.oci_json}"]  # the run's profile, natively as JSON
    assert hc["NetworkMode"] == "none" and cfg["NetworkDisabled"] is True
    assert hc["ReadonlyRootfs"] is True
    assert hc["Tmpfs"]["/tmp"].startswith("rw,exec,nosuid,nodev,")
    assert hc["IpcMode"] == "private"
    assert hc["AutoRemove"] is False  # removed by the backend after reading the status
    assert cfg["Labels"][LABEL_BACKEND] == "docker"
    assert cfg["Tty"] is False and cfg["OpenStdin"] is False


def test_mounts_workspace_rw_everything_else_ro_and_never_the_socket(tmp_path: Path) -> None:
    spec = _spec(tmp_path, extra_mounts=(BindMount(src=Path("/opt/x"), dst="/opt/x"),))
    hc = _config(spec)["HostConfig"]
    mounts = {m["Target"]: m for m in hc["Mounts"]}
    assert mounts["/workspace"]["Source"] == "/stage/ws"
    assert mounts["/workspace"]["ReadOnly"] is False
    assert all(m["ReadOnly"] for t, m in mounts.items() if t != "/workspace")
    assert mounts["/usr"]["Source"] == "/usr"  # the host view
    assert mounts[INIT_INSIDE]["Source"] == "/usr/bin/tini-static"
    for m in hc["Mounts"]:
        assert m["Type"] == "bind"
        assert not m["Source"].startswith(("/var", "/run", "/home", "/root"))
        assert "docker.sock" not in m["Source"]
    assert "Binds" not in hc and "VolumesFrom" not in hc


def test_built_image_gets_no_host_binds(tmp_path: Path) -> None:
    hc = _config(_spec(tmp_path), host_view=None)["HostConfig"]
    assert {m["Target"] for m in hc["Mounts"]} == {"/workspace", INIT_INSIDE}


def test_limits(tmp_path: Path) -> None:
    spec = _spec(tmp_path, limits=Limits(memory_bytes=256 << 20, cpus=1.5, pids=64,
                                         write_bytes=10 << 20))
    hc = _config(spec)["HostConfig"]
    assert hc["Memory"] == hc["MemorySwap"] == 256 << 20
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 64
    assert {"Name": "fsize", "Soft": 10 << 20, "Hard": 10 << 20} in hc["Ulimits"]
    assert "size=134217728" in hc["Tmpfs"]["/tmp"]  # tmpfs counts against the memory limit
    unlimited = _config(_spec(tmp_path))["HostConfig"]
    assert isinstance(unlimited, dict)
    assert not {"Memory", "NanoCpus", "PidsLimit"} & set(unlimited)


def test_command_env_and_identity(tmp_path: Path) -> None:
    cfg = _config(_spec(tmp_path, wrapper=("/shim",)))
    assert cfg["Cmd"] == [INIT_INSIDE, "-s", "-g", "--", "/shim", "/usr/bin/env", "-u",
                          "HOSTNAME", "--", "make", "test"]
    assert cfg["Entrypoint"] == []  # an image's entrypoint never runs first
    assert sorted(cfg["Env"]) == ["HOME=/root", "PATH=/usr/bin:/bin"]
    asked = _config(_spec(tmp_path, env={"HOSTNAME": "h"}))
    assert "-u" not in asked["Cmd"]
    assert cfg["User"] == "" and "UsernsMode" not in cfg["HostConfig"]


def test_without_matching_userns_remap_runs_unprivileged(tmp_path: Path) -> None:
    for userns_root in (None, (100000, 100000)):
        ident = Identity.for_daemon(userns_root)
        assert not ident.root_inside
        cfg = _config(_spec(tmp_path), identity=ident)
        hc = cfg["HostConfig"]
        assert cfg["User"] == f"{MAPPED_ROOT_ID}:{MAPPED_ROOT_ID}"
        assert hc["UsernsMode"] == "host"
        assert f"uid={MAPPED_ROOT_ID}" in hc["Tmpfs"]["/root"]  # HOME stays writable


def test_missing_seccomp_json_fails_closed_and_egress_keeps_no_network(tmp_path: Path) -> None:
    no_json = Seccomp(name="p", digest="d", kafel="k", oci_json="")
    with pytest.raises(EnforcementError):
        _config(_spec(tmp_path, seccomp=no_json))
    # Egress adds no route: the proxy's socket is handed in through the wrapper and mounts.
    hc = _config(_spec(tmp_path, network=Network.EGRESS))["HostConfig"]
    assert hc["NetworkMode"] == "none"


def test_host_view_skeleton_is_deterministic_and_has_no_host_content(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/ssl").mkdir(parents=True)
    (root / "etc/ld.so.cache").write_bytes(b"REAL CACHE")
    (root / "bin").symlink_to("usr/bin")
    a, b = host_view_tar(root), host_view_tar(root)
    assert a == b and host_view_tag(a) == host_view_tag(b)
    with tarfile.open(fileobj=BytesIO(a)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
        assert members["etc/ssl"].isdir() and members["workspace"].isdir()
        assert members["etc/ld.so.cache"].size == 0  # a mount point, not the host's file
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and passwd.read().startswith(b"root:x:0:0:")


def test_mountinfo_unescape() -> None:
    assert _unescape(r"/a\040b/c\134d") == "/a b/c\\d"
    assert _unescape("/plain") == "/plain"


def test_old_daemon_refuses_a_default_errno_it_would_drop(tmp_path: Path) -> None:
    marked = Seccomp(name="m", digest="d", kafel="", oci_json=json.dumps(
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": []}))
    spec = _spec(tmp_path, seccomp=marked)
    with pytest.raises(EnforcementError) as exc:
        container_config(spec, image="i", workspace_src=Path("/w"), identity=ROOT_INSIDE,
                         host_view=None, owner="o", init=Path("/i"),
                         honours_default_errno=False)
    assert "defaultErrnoRet=38" in str(exc.value)
    container_config(spec, image="i", workspace_src=Path("/w"), identity=ROOT_INSIDE,
                     host_view=None, owner="o", init=Path("/i"), honours_default_errno=True)
    # EPERM, the old daemons' only answer, is what the shipped profiles ask for: accepted.
    container_config(_spec(tmp_path), image="i", workspace_src=Path("/w"),
                     identity=ROOT_INSIDE, host_view=None, owner="o", init=Path("/i"),
                     honours_default_errno=False)
    eperm = Seccomp(name="e", digest="d", kafel="", oci_json=json.dumps(
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": []}))
    container_config(_spec(tmp_path, seccomp=eperm), image="i", workspace_src=Path("/w"),
                     identity=ROOT_INSIDE, host_view=None, owner="o", init=Path("/i"),
                     honours_default_errno=False)


def test_owner_tokens_reap_only_our_dead() -> None:
    me = owner_token(os.getpid())
    assert not owner_is_gone(me)
    child = subprocess.Popen(["true"])
    token = owner_token(child.pid)
    child.wait()
    assert owner_is_gone(token)  # exited: its leftovers may go
    ns, pid, start = me.split(" ")
    assert not owner_is_gone(f"{int(ns) + 1} {pid} {start}")  # another pid namespace's
    assert not owner_is_gone("garbage")
