"""Translate a LaunchSpec into a Docker Engine API container config (pure, testable).

The config is the Engine API's own JSON (`POST /containers/create`), not SDK keyword
arguments: every security-relevant field is spelled out here and checked by unit tests.

Who is root inside:
- daemon with `--userns-remap` whose root is MAPPED_ROOT_ID outside (scripts/dockerd.sh sets
  that up): the command runs as root inside, exactly as under nsjail;
- any other daemon: userns "host" and the non-root user MAPPED_ROOT_ID, which owns the staged
  workspace (its lower layer is idmapped to that id).

The `host` image: an imported skeleton (mount points, merged-/usr symlinks, passwd/group) with
the host's system dirs bind-mounted read-only, the same view the nsjail backend gives.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.backends._base import (
    GROUP,
    PASSWD,
    SYSTEM_DIRS,
    LaunchSpec,
    Network,
    etc_entries,
    usr_hidden,
)
from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.errors import EnforcementError

ENV_BIN = "/usr/bin/env"  # PATH lookup inside, with the 126/127 exit statuses
# A static tini from the host as pid 1 (as under nsjail), not docker's `Init`: docker binds its
# init at /sbin/docker-init, which cannot be created when /sbin is a symlink into the
# read-only host /usr of the `host` view.
INIT_INSIDE = "/dev/init"
_INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/local/bin/tini-static")
LABEL_BACKEND = "org.sandbox.backend"
LABEL_OWNER = "org.sandbox.owner"  # "<pid> <start time>" of the sandbox process
HOST_VIEW_REPO = "sandbox/host-view"
DEFAULT_TMPFS_BYTES = 1 << 30
SHM_BYTES = 64 << 20
EPERM = 1



@dataclass(frozen=True)
class Identity:
    """Who the command runs as, and the userns mode that makes it so."""

    user: str  # Engine API "User": "" = the image's root
    userns_mode: str  # "" = the daemon's default (remapped), "host" = none

    @classmethod
    def for_daemon(cls, userns_root: tuple[int, int] | None) -> Identity:
        if userns_root == (MAPPED_ROOT_ID, MAPPED_ROOT_ID):
            return cls(user="", userns_mode="")
        return cls(user=f"{MAPPED_ROOT_ID}:{MAPPED_ROOT_ID}", userns_mode="host")

    @property
    def root_inside(self) -> bool:
        return self.user == ""


def init_binary() -> Path:
    """A statically linked tini: it must run in any image, whatever its libc."""
    for c in _INIT_CANDIDATES:
        if os.access(c, os.X_OK):
            return Path(c)
    raise EnforcementError("no static init for the sandbox's pid 1 (tini-static) on this host",
                           hint="apt-get install tini (scripts/setup.sh does it)")


def container_config(spec: LaunchSpec, *, image: str, workspace_src: Path,
                     identity: Identity, host_view: Path | None, owner: str,
                     init: Path, honours_default_errno: bool = True,
                     stdin: bool = False) -> dict[str, Any]:
    """The create-container body. host_view: the host root to bind system dirs from (the
    `host` image), None for a built image that carries its own system.
    honours_default_errno: False for daemons that drop `defaultErrnoRet` (Docker < 23).
    stdin: the backend relays its (non-terminal) stdin; otherwise the command reads EOF."""
    if not spec.seccomp.oci_json:
        # The contract says a seccomp profile is always applied; never fall back to the
        # daemon's default silently.
        raise EnforcementError(f"seccomp profile {spec.seccomp.name!r} has no JSON form for "
                               "docker", hint="run `sandbox profile lint` on it")
    if not honours_default_errno:
        check_default_errno(spec.seccomp.name, spec.seccomp.oci_json)
    network_mode = _network_mode(spec)
    mounts = [_bind(workspace_src, spec.snapshot.mount_point, rw=True)]
    if host_view is not None:
        mounts += host_view_mounts(host_view)
    mounts += [_bind(m.src, m.dst, rw=m.rw) for m in spec.extra_mounts]
    mounts.append(_bind(init, INIT_INSIDE, rw=False))
    # exec: build and test tools run what they compile in /tmp (as under nsjail)
    tmpfs_opts = f"rw,exec,nosuid,nodev,size={tmpfs_size(spec)}"
    owner_opts = "" if identity.root_inside else f",uid={MAPPED_ROOT_ID},gid={MAPPED_ROOT_ID}"
    lim = spec.limits
    host_config: dict[str, Any] = {
        "Init": False,  # our own tini is pid 1 (see INIT_INSIDE)
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges", f"seccomp={spec.seccomp.oci_json}"],
        "NetworkMode": network_mode,
        "IpcMode": "private",
        "Privileged": False,
        "Mounts": mounts,
        "Tmpfs": {
            "/tmp": f"{tmpfs_opts},mode=1777",
            "/root": f"{tmpfs_opts},mode=0700{owner_opts}",
        },
        "ShmSize": SHM_BYTES,
        "Ulimits": _ulimits(spec),
        "LogConfig": {"Type": "none", "Config": {}},  # output is relayed by attach, not kept
        "AutoRemove": False,  # removed by the backend once the exit status is read
    }
    if identity.userns_mode:
        host_config["UsernsMode"] = identity.userns_mode
    if lim.memory_bytes is not None:
        host_config["Memory"] = lim.memory_bytes
        host_config["MemorySwap"] = lim.memory_bytes  # no swapping around the limit
    if lim.cpus is not None:
        host_config["NanoCpus"] = max(1, int(lim.cpus * 1e9))
    if lim.pids is not None:
        host_config["PidsLimit"] = lim.pids
    return {
        "Image": image,
        "Cmd": command(spec),
        "Entrypoint": [],
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        "User": identity.user,
        "WorkingDir": spec.cwd,
        "Hostname": spec.hostname,
        "Labels": {LABEL_BACKEND: "docker", LABEL_OWNER: owner},
        "NetworkDisabled": network_mode == "none",
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": stdin,
        "StdinOnce": stdin,  # our EOF closes the command's stdin
        "Tty": False,
        "HostConfig": host_config,
    }


def check_default_errno(name: str, oci_json: str) -> None:
    """Refuse a profile whose default errno an old daemon would silently turn into EPERM:
    the run would not be the one the profile describes (fail closed, never degrade)."""
    doc = json.loads(oci_json)
    ret = doc.get("defaultErrnoRet")
    if doc.get("defaultAction") == "SCMP_ACT_ERRNO" and ret is not None and ret != EPERM:
        raise EnforcementError(
            f"seccomp profile {name!r} sets defaultErrnoRet={ret}, which this Docker daemon "
            "ignores (before Docker 23 every default denial answers EPERM)",
            hint="use Docker >= 23, --backend nsjail, or defaultErrnoRet 1 in the profile")


def command(spec: LaunchSpec) -> list[str]:
    """init + wrapper + env lookup + the command.

    tini -s -g: pid 1 reaps orphans and forwards signals to the whole process group; a command
    killed by signal N comes back as 128+N. Docker always adds HOSTNAME to the environment;
    env -u drops it again unless it was asked for, so only named variables pass."""
    drop = [] if "HOSTNAME" in spec.env else ["-u", "HOSTNAME"]
    return [INIT_INSIDE, "-s", "-g", "--", *spec.wrapper, ENV_BIN, *drop, "--", *spec.argv]


def _network_mode(spec: LaunchSpec) -> str:
    match spec.network:
        case Network.NONE:
            return "none"
        case Network.EGRESS:
            # Same fail-closed mechanism as nsjail: the container keeps a loopback-only network
            # namespace; the egress shim (spec.wrapper, over the bind-mounted control socket in
            # spec.extra_mounts) hands its listening socket to the host-side proxy.
            return "none"


def _bind(src: Path, dst: str, *, rw: bool) -> dict[str, Any]:
    return {"Type": "bind", "Source": str(src), "Target": dst, "ReadOnly": not rw,
            "BindOptions": {"Propagation": "rprivate"}}


def _ulimits(spec: LaunchSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"Name": "core", "Soft": 0, "Hard": 0},
                                 {"Name": "nofile", "Soft": 4096, "Hard": 4096}]
    wb = spec.limits.write_bytes
    if wb is not None:
        # RLIMIT_FSIZE caps single files; the backend's watcher caps the upper dir's total.
        out.append({"Name": "fsize", "Soft": wb, "Hard": wb})
    return out


def tmpfs_size(spec: LaunchSpec) -> int:
    if spec.limits.memory_bytes is not None:
        return max(16 << 20, spec.limits.memory_bytes // 2)
    return DEFAULT_TMPFS_BYTES


def host_view_mounts(root: Path) -> list[dict[str, Any]]:
    mounts = []
    for d in SYSTEM_DIRS:
        p = root / d.lstrip("/")
        if p.is_dir() and not p.is_symlink():
            mounts.append(_bind(p, d, rw=False))
    etc = root / "etc"
    for name in etc_entries(root):
        mounts.append(_bind(etc / name, f"/etc/{name}", rw=False))
    # Over a file inside the /usr bind (Docker mounts a parent before its children): an
    # empty one in its place, so a credential in it is not shown.
    mounts += [_bind(Path("/dev/null"), dst, rw=False) for dst in usr_hidden(root)]
    return mounts


def host_view_tar(root: Path) -> bytes:
    """The skeleton image for the `host` view: mount points, the host's top-level symlinks
    (merged /usr), passwd/group/hostname. Deterministic: same host layout, same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        def add_file(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))

        for d in ("dev", "etc", "proc", "root", "run", "sys", "tmp", "workspace"):
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        for d in SYSTEM_DIRS:
            p = root / d.lstrip("/")
            if p.is_symlink():
                ti = tarfile.TarInfo(d.lstrip("/"))
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, os.readlink(p), 0o777
                tar.addfile(ti)
            elif p.is_dir():
                add_dir(d.lstrip("/"))
        for name in etc_entries(root):  # mount points for the read-only binds
            if (root / "etc" / name).is_dir():
                add_dir(f"etc/{name}")
            else:
                add_file(f"etc/{name}", b"")
        add_file("etc/passwd", PASSWD)
        add_file("etc/group", GROUP)
        add_file("etc/hostname", b"sandbox\n")
    return buf.getvalue()


def host_view_tag(tar: bytes) -> str:
    return f"{HOST_VIEW_REPO}:{hashlib.sha256(tar).hexdigest()[:16]}"
