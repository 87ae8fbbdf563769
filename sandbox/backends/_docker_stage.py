"""The workspace snapshot for a Docker container: an overlay staged on the host, bind-mounted in.

The daemon runs in the host's mount namespace, so unlike nsjail (whose overlay lives in a
private namespace that dies with it) the overlay must exist on the host while the container
runs. It is staged as root under the run's scratch dir (inside the 0700 $SANDBOX_HOME), made
private so nothing propagates, and unmounted in `unstage` -- the backend calls it in `finally`.
A run killed with SIGKILL cannot clean up: `reap_stale` unmounts stages whose owner process is
gone, and every launch calls it first.

Layout of one stage (<scratch>/docker-stage):
    owner   "<pid> <start time>" of the sandbox process that made it
    lower/  the workspace, idmapped: its owner appears as MAPPED_ROOT_ID
    ws/     the overlay (mask and idmapped workspace below, the session's upper dir above)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends._base import Snapshot
from sandbox.backends._mountns import (
    _AT_EMPTY_PATH,
    _AT_FDCWD,
    _AT_RECURSIVE,
    _MOUNT_ATTR_IDMAP,
    _MOVE_MOUNT_F_EMPTY_PATH,
    _MS_NODEV,
    _MS_NOSUID,
    _MS_PRIVATE,
    _OPEN_TREE_CLOEXEC,
    _OPEN_TREE_CLONE,
    _SYS_MOUNT_SETATTR,
    _SYS_MOVE_MOUNT,
    _SYS_OPEN_TREE,
    OverlayLayers,
    _check,
    _MountAttr,
    check_overlay_path,
    make_idmap_userns,
)
from sandbox.errors import EnforcementError

STAGE_NAME = "docker-stage"
_MS_BIND = 0x1000
_MNT_DETACH = 2


@dataclass(frozen=True)
class Stage:
    root: Path

    @property
    def lower(self) -> Path:
        return self.root / "lower"

    @property
    def workspace(self) -> Path:
        return self.root / "ws"


def stage_overlay(snap: Snapshot, scratch: Path) -> Stage:
    """Mount the snapshot at <scratch>/docker-stage/ws on the host (root only)."""
    for p in (snap.lower, snap.upper, snap.work, *([snap.mask] if snap.mask else []), scratch):
        check_overlay_path(p)
    if os.geteuid() != 0:
        raise EnforcementError("the docker backend stages the workspace overlay as root",
                               hint="run sandbox as root, or use the nsjail backend")
    stage = Stage(scratch / STAGE_NAME)
    unstage(stage)  # a leftover of this very run dir (a retried run) must not stack mounts
    stage.root.mkdir(parents=True, mode=0o700)
    stage.lower.mkdir()
    stage.workspace.mkdir()
    (stage.root / "owner").write_text(owner_token(os.getpid()))
    libc = ctypes.CDLL(None, use_errno=True)
    st = snap.lower.stat()
    userns_fd = make_idmap_userns(st.st_uid, st.st_gid)
    try:
        # A private bind of the stage dir onto itself: the mounts below it then never
        # propagate to the host's shared peers (other namespaces, containers).
        _check(libc.mount(os.fsencode(stage.root), os.fsencode(stage.root), None, _MS_BIND,
                          None), "bind stage dir")
        _check(libc.mount(None, os.fsencode(stage.root), None, _MS_PRIVATE, None),
               "make stage private")
        tree = _check(libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(snap.lower),
                                   _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE),
                      "open_tree(workspace)")
        try:
            attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
            _check(libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                                ctypes.byref(attr), ctypes.sizeof(attr)),
                   "idmap workspace mount")
            _check(libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(stage.lower),
                                _MOVE_MOUNT_F_EMPTY_PATH), "attach idmapped workspace")
        finally:
            os.close(tree)
        layers = OverlayLayers(lower=stage.lower, upper=snap.upper, work=snap.work,
                               mask=snap.mask)
        _check(libc.mount(b"overlay", os.fsencode(stage.workspace), b"overlay",
                          _MS_NOSUID | _MS_NODEV, layers.options().encode()), "mount overlay")
    except OSError as exc:
        unstage(stage)
        raise EnforcementError(f"could not stage the workspace overlay for docker: {exc}",
                               hint="run `sandbox doctor` (needs root, overlayfs, idmapped "
                               "mounts: Linux >= 5.19)") from exc
    finally:
        os.close(userns_fd)
    return stage


def unstage(stage: Stage) -> None:
    """Unmount (deepest first) and remove the stage; quiet when parts are already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    mounted = _mount_points()
    for p in (stage.workspace, stage.lower, stage.root):
        while str(p) in mounted:
            if libc.umount2(os.fsencode(p), _MNT_DETACH) != 0:
                break
            mounted = _mount_points()
    # Never delete through a mount that is still there: lower/ is the real workspace.
    if any(m == str(stage.root) or m.startswith(f"{stage.root}/") for m in mounted):
        return
    for p in (stage.workspace, stage.lower):
        with contextlib.suppress(OSError):
            p.rmdir()  # empty mount points only; anything else stays for a person to see
    with contextlib.suppress(OSError):
        (stage.root / "owner").unlink()
        stage.root.rmdir()


def reap_stale() -> int:
    """Unstage every stage whose owner process is gone; return how many."""
    roots = {Path(m).parent if Path(m).name in ("ws", "lower") else Path(m)
             for m in _mount_points() if f"/{STAGE_NAME}" in m}
    reaped = 0
    for root in sorted(roots):
        if root.name != STAGE_NAME:
            continue
        try:
            owner = (root / "owner").read_text()
        except OSError:
            continue  # not (yet) a complete stage: its owner is still writing it
        if not owner_is_gone(owner):
            continue
        unstage(Stage(root))
        reaped += 1
    return reaped


def owner_token(pid: int) -> str:
    """"<pid namespace> <pid> <start time>": a recycled pid does not look like the owner, and
    a sandbox in another pid namespace (another container sharing the daemon) is never
    mistaken for a dead one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "gone"
    return f"{_pid_namespace()} {pid} {start}"


def owner_is_gone(token: str) -> bool:
    """True only for an owner in our pid namespace that no longer runs."""
    parts = token.split(" ")
    if len(parts) != 3 or parts[0] != _pid_namespace() or not parts[1].isdigit():
        return False  # not ours to judge: leave it alone
    return owner_token(int(parts[1])) != token


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "?"


def _mount_points() -> set[str]:
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            out.add(_unescape(fields[4]))
    return out


def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)
