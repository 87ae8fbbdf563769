"""Overlay set-up for a sandbox launched by root: idmapped lower layer in a private mount ns.

Why this exists: when root runs `sandbox`, uid 0 inside the sandbox must be an unprivileged id
outside (`MAPPED_ROOT_ID`). The workspace, though, is usually owned by root, and a process whose
outside id is `MAPPED_ROOT_ID` may neither read root's 0600 files nor edit root's 0644 files, and
may not even traverse `/root` to reach the workspace or `$SANDBOX_HOME`. So, as real root, in the
spawner thread that is about to start nsjail (`_spawn`: no fork of this process), we:

1. unshare a private mount namespace for that thread (nothing here is ever visible on the host;
   nsjail starts in it, the thread then leaves it, so it dies with the nsjail process tree: no
   mount outlives the run, even after `kill -9`);
2. clone the workspace as a detached mount and idmap it (disk uid of the owner -> MAPPED_ROOT_ID)
   so the sandbox sees the workspace owner's files as its own root's files;
3. mount the overlay (mask and idmapped workspace as lower layers, the session's upper dir) as
   real root, on a fresh tmpfs at STAGE_DIR in this private namespace, where the mapped id can
   reach it; nsjail then bind-mounts it to /workspace;
4. likewise attach a read-only clone of the image's rootfs (if the run uses a built image) at
   STAGE_IMAGE: the image store usually lives in the 0700 state dir, which the mapped id may not
   traverse, and the state dir itself must stay closed to the sandbox.

An unprivileged caller needs none of this: nsjail maps inside 0 to the caller's own uid and mounts
the overlay itself inside its user namespace.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import EnforcementError

# Outside id of the sandbox's root when root launches it: far above any login or subordinate
# id range (useradd hands out subuids from 100000), so no real account shares it.
MAPPED_ROOT_ID = 1_000_000_000

# Where the overlay is staged for nsjail to bind: a fresh tmpfs mounted, in the private mount
# namespace only, on a dedicated empty directory (so it shadows nothing: the nsjail binary, the
# workspace or the state dir may live anywhere, /tmp included). Root-only, created on demand.
STAGE_DIR = "/run/sandbox-stage"
STAGE_WORKSPACE = f"{STAGE_DIR}/workspace"
STAGE_IMAGE = f"{STAGE_DIR}/image"
_STAGE_LOWER = f"{STAGE_DIR}/lower"

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_IDMAP = 0x100000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_AT_FDCWD = -100


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


@dataclass(frozen=True)
class OverlayLayers:
    lower: Path
    upper: Path
    work: Path
    mask: Path | None

    def options(self, lower_override: str | None = None) -> str:
        lower = lower_override or str(self.lower)
        lowers = f"{self.mask}:{lower}" if self.mask is not None else lower
        # redirect_dir=nofollow, metacopy off: renames of lower dirs fall back to copy+delete, so the
        # diff never has to interpret redirect xattrs; index off keeps upper self-contained.
        return (
            f"lowerdir={lowers},upperdir={self.upper},workdir={self.work},"
            "redirect_dir=nofollow,metacopy=off,index=off"
        )


def check_overlay_path(path: Path) -> None:
    """Overlay mount options cannot carry these characters; say so instead of misparsing."""
    bad = [c for c in (",", ":", "\\", "\n") if c in str(path)]
    if bad:
        raise EnforcementError(
            f"cannot build an overlay over {path!s}: the path contains {bad[0]!r}",
            hint="move or symlink the workspace to a path without ',', ':' or '\\'",
        )


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# One user namespace per mapping, made once per process and kept (a server runs many sandboxes:
# making one forks this whole process, which cost more than the rest of the overlay set-up). It
# is only a mapping for mount_setattr: no process lives in it, and it ends with this process.
_IDMAP_USERNS: dict[tuple[int, int], int] = {}
_IDMAP_LOCK = threading.Lock()


def make_idmap_userns(disk_uid: int, disk_gid: int) -> int:
    """Return an fd (the caller's to close) of a user namespace mapping disk ids ->
    MAPPED_ROOT_ID, for idmapped mounts; the namespace itself is made once per mapping."""
    with _IDMAP_LOCK:
        fd = _IDMAP_USERNS.get((disk_uid, disk_gid))
        if fd is None:
            fd = _IDMAP_USERNS[(disk_uid, disk_gid)] = _new_idmap_userns(disk_uid, disk_gid)
        return os.dup(fd)


def _new_idmap_userns(disk_uid: int, disk_gid: int) -> int:
    """A short-lived child unshares CLONE_NEWUSER; we write its maps and keep a handle to the ns."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    with warnings.catch_warnings():
        # Proxy threads may be running (egress); the child only makes raw syscalls and
        # _exits, so the "fork in a multi-threaded process" hazard does not apply.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.unshare(os.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        os.close(ready_w)
        if os.read(ready_r, 1) != b"1":
            raise EnforcementError(
                "could not create a user namespace for the idmapped workspace mount",
                hint="run `sandbox doctor`",
            )
        Path(f"/proc/{pid}/uid_map").write_text(f"{disk_uid} {MAPPED_ROOT_ID} 1\n")
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        Path(f"/proc/{pid}/gid_map").write_text(f"{disk_gid} {MAPPED_ROOT_ID} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.write(done_w, b"1")
        for fd in (ready_r, done_r, done_w):
            os.close(fd)
        os.waitpid(pid, 0)


def root_stage(layers: OverlayLayers, userns_fd: int,
               image_root: Path | None = None) -> Callable[[], None]:
    """Build the staging step, run as real root by the spawner thread (_spawn) in its own
    mount namespace just before it starts nsjail there.

    image_root: a built image's rootfs, staged read-only at STAGE_IMAGE (see the module doc)."""

    libc = _libc()
    os.makedirs(STAGE_DIR, mode=0o755, exist_ok=True)

    def stage() -> None:
        try:
            _stage(libc, layers, userns_fd, image_root)
        except OSError as exc:
            raise EnforcementError(
                "could not stage the workspace overlay (private mount namespace, idmapped "
                f"mount): {exc}", hint="run `sandbox doctor`") from exc

    return stage


def _clone_tree(libc: ctypes.CDLL, path: Path, what: str) -> int:
    return _check(
        libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(path),
                     _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE),
        f"open_tree({what})",
    )


def _attach(libc: ctypes.CDLL, tree: int, target: str, what: str) -> None:
    _check(libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, target.encode(),
                        _MOVE_MOUNT_F_EMPTY_PATH), f"attach {what}")


def _stage(libc: ctypes.CDLL, layers: OverlayLayers, userns_fd: int,
           image_root: Path | None) -> None:
    # The caller (the spawner thread) goes on living: every fd taken here is closed however
    # this ends; the mounts go with the namespace when the thread leaves it.
    fds: list[int] = []
    try:
        _stage_in(libc, layers, userns_fd, image_root, fds)
    finally:
        for fd in fds:
            os.close(fd)


def _stage_in(libc: ctypes.CDLL, layers: OverlayLayers, userns_fd: int,
              image_root: Path | None, fds: list[int]) -> None:
    os.unshare(os.CLONE_NEWNS)
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    # Take handles on every layer first: the stage tmpfs below may shadow their paths.
    tree = _clone_tree(libc, layers.lower, "workspace")
    fds.append(tree)
    image = -1
    if image_root is not None:
        image = _clone_tree(libc, image_root, "image")
        fds.append(image)
        ro = _MountAttr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV, 0, 0, 0)
        _check(libc.syscall(_SYS_MOUNT_SETATTR, image, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                            ctypes.byref(ro), ctypes.sizeof(ro)), "make the image read-only")
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    _check(
        libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                     ctypes.byref(attr), ctypes.sizeof(attr)),
        "idmap workspace mount",
    )
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    upper = os.open(layers.upper, flags)
    fds.append(upper)
    work = os.open(layers.work, flags)
    fds.append(work)
    mask = -1
    if layers.mask is not None:
        mask = os.open(layers.mask, flags)
        fds.append(mask)
    _check(libc.mount(b"sandbox-stage", STAGE_DIR.encode(), b"tmpfs",
                      _MS_NOSUID | _MS_NODEV, b"mode=0755,size=64k"), "stage tmpfs")
    os.mkdir(_STAGE_LOWER, 0o755)
    os.mkdir(STAGE_WORKSPACE, 0o755)
    _attach(libc, tree, _STAGE_LOWER, "idmapped workspace")
    if image >= 0:
        os.mkdir(STAGE_IMAGE, 0o755)
        _attach(libc, image, STAGE_IMAGE, "image")
    staged = OverlayLayers(
        lower=Path(_STAGE_LOWER),
        upper=Path(f"/proc/self/fd/{upper}"),
        work=Path(f"/proc/self/fd/{work}"),
        mask=Path(f"/proc/self/fd/{mask}") if mask >= 0 else None,
    )
    _check(libc.mount(b"overlay", STAGE_WORKSPACE.encode(), b"overlay", _MS_NOSUID,
                      staged.options().encode()), "mount overlay")
