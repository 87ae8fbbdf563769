"""Talking to the Docker daemon: connect (or say how to start one), and what the daemon enforces.

The Docker SDK is imported here and only here, lazily: it costs ~100 ms and must stay off the
nsjail run path (sandbox.backends imports this module only for `--backend docker`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.errors import EnforcementError

if TYPE_CHECKING:
    from docker import DockerClient

START_HINT = ("start one: sudo scripts/dockerd.sh (from the sandbox repository), or "
              "sudo systemctl start docker; DOCKER_HOST selects another daemon")
# With --userns-remap the daemon keeps its data in <root>/<uid>.<gid>: the outside ids of root
# inside. It is the one place the API reveals the mapping.
_REMAP_ROOT_DIR = re.compile(r"/(\d+)\.(\d+)/?$")


@dataclass(frozen=True)
class DaemonInfo:
    version: str
    seccomp: bool
    userns_root: tuple[int, int] | None  # outside (uid, gid) of root inside, with userns-remap
    cgroup_driver: str
    cgroup_version: str

    @property
    def honours_default_errno(self) -> bool:
        """Docker before 23.0 drops a profile's `defaultErrnoRet` without a word (moby#42604):
        the filter then answers EPERM where the profile asked for another errno."""
        major = self.version.split(".", 1)[0]
        return major.isdigit() and int(major) >= 23


def connect(timeout: float = 60.0) -> DockerClient:
    """A client for $DOCKER_HOST (default the local socket), API version negotiated.

    EnforcementError (exit 125) naming how to start a daemon when none answers."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise EnforcementError("the Docker SDK for Python is not installed",
                               hint="pip install docker") from exc
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        # "auto" asks the daemon its API version: the Debian daemon (20.10) speaks 1.41,
        # older than the SDK's default, and would refuse every call otherwise.
        return docker.from_env(version="auto", timeout=int(timeout))
    except DockerException as exc:
        raise EnforcementError(f"no Docker daemon answers at {where} ({_short(exc)})",
                               hint=START_HINT) from exc


def daemon_info(client: DockerClient) -> DaemonInfo:
    from docker.errors import DockerException

    try:
        info = client.api.info()
    except DockerException as exc:
        raise EnforcementError(f"the Docker daemon did not answer `info` ({_short(exc)})",
                               hint=START_HINT) from exc
    opts = [str(o) for o in info.get("SecurityOptions") or []]
    userns = any(o == "name=userns" for o in opts)
    root: tuple[int, int] | None = None
    if userns:
        m = _REMAP_ROOT_DIR.search(str(info.get("DockerRootDir", "")))
        if m:
            root = (int(m.group(1)), int(m.group(2)))
    return DaemonInfo(
        version=str(info.get("ServerVersion", "?")),
        seccomp=any(o.startswith("name=seccomp") for o in opts),
        userns_root=root,
        cgroup_driver=str(info.get("CgroupDriver", "")),
        cgroup_version=str(info.get("CgroupVersion", "1")),
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@dataclass(frozen=True)
class DoctorReport:
    ok: bool
    detail: str
    fix: str = ""


def doctor_report() -> DoctorReport:
    """For `sandbox doctor`: does a daemon answer, and does it enforce what the backend needs?
    Only an optional backend: a missing daemon is reported, never an error of its own."""
    try:
        client = connect(timeout=5)
        info = daemon_info(client)
    except EnforcementError as exc:
        return DoctorReport(False, exc.message, START_HINT)
    client.close()
    root = (f"root inside = uid {info.userns_root[0]} outside" if info.userns_root
            else "no userns-remap: runs as a non-root uid")
    detail = f"Docker {info.version}, seccomp {'on' if info.seccomp else 'OFF'}, {root}"
    if not info.seccomp:
        return DoctorReport(False, detail, "use a daemon built with seccomp (Debian's docker.io)")
    if not info.honours_default_errno:
        detail += "; profiles must use defaultErrnoRet 1 (Docker < 23 ignores others)"
    return DoctorReport(True, detail)
