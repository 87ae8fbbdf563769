"""Which kernel mechanism enforces each resource limit of an nsjail run, for this caller.

`--memory` must limit memory, not address space: the JVM reserves a gigabyte of compressed class
space up front, Go and V8 reserve large arenas, so RLIMIT_AS breaks them at any sane limit. In
order of preference:

1. cgroup v2 with the memory controller, in a subtree this caller may manage: for root the
   hierarchy's root; for an unprivileged caller the nearest ancestor of its own cgroup that it
   owns (systemd's user@UID.service delegates one; an admin may chown one). nsjail creates one
   cgroup per run under `<that>/sandbox` and writes memory.max (and pids.max, cpu.max).
2. cgroup v1 controllers writable by us (root on a v1 or hybrid host).
3. Otherwise memory is watched: the backend polls the run's resident memory and stops the run
   past the limit, and the run says so (a burst between two polls can exceed it briefly). pids
   fall back to RLIMIT_NPROC, cpus to CPU affinity.

pids, though, go by RLIMIT_NPROC first wherever the kernel counts it per user namespace (5.14
on: see Enforcer.RLIMIT_USERNS): as strong as the run's own pids cgroup, without its attach.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import assert_never

V1_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")
CGROUP_PARENT = "sandbox"  # nsjail's per-run cgroups live under <root or delegated>/sandbox
_V2_CONTROLLERS = ("memory", "pids", "cpu")


class Enforcer(StrEnum):
    CGROUP_V2 = "cgroup v2"
    CGROUP_V1 = "cgroup v1"
    FALLBACK = "fallback"  # per limit: see FALLBACKS
    # pids only: RLIMIT_NPROC, counted per (user namespace, uid) since Linux 5.14, and every
    # run has a user namespace of its own, so it bounds the run's processes and threads alone
    # (nested namespaces count towards it too). Preferred over a cgroup: attaching each run to
    # its own pids cgroup cost ~5.5 ms (cgroup v1 waits for an RCU grace period per attach).
    RLIMIT_USERNS = "rlimit per user namespace"


FALLBACKS = {"memory": "polled resident memory", "pids": "RLIMIT_NPROC", "cpus": "CPU affinity"}


@dataclass(frozen=True)
class LimitPlan:
    memory: Enforcer
    pids: Enforcer
    cpus: Enforcer
    v2_parent: Path | None = None  # nsjail's cgroupv2_mount, for CGROUP_V2
    swap_file: bool = False  # the memory cgroup can forbid swap (memory.swap.max / memsw)
    why_no_cgroup: str = ""  # for the warning and `doctor`, when memory is only polled

    def mechanism(self, limit: str) -> str:
        e = {"memory": self.memory, "pids": self.pids, "cpus": self.cpus}[limit]
        match e:
            case Enforcer.CGROUP_V2:
                return f"cgroup v2 ({self.v2_parent})"
            case Enforcer.CGROUP_V1:
                return f"cgroup v1 ({V1_ROOT}/*/{CGROUP_PARENT})"
            case Enforcer.FALLBACK:
                return FALLBACKS[limit]
            case Enforcer.RLIMIT_USERNS:
                return "RLIMIT_NPROC in the run's own user namespace"
            case _:
                assert_never(e)

    def describe(self) -> str:
        return (f"--memory: {self.mechanism('memory')}; --pids-limit: {self.mechanism('pids')}; "
                f"--cpus: {self.mechanism('cpus')}")


def plan_limits(*, prepare: bool) -> LimitPlan:
    """The mechanisms for this caller. prepare=True creates/enables what a run needs (launch);
    False only looks (doctor)."""
    plan = _cgroup_plan(prepare=prepare)
    if nproc_per_userns():
        return replace(plan, pids=Enforcer.RLIMIT_USERNS)
    return plan


def nproc_per_userns(release: str | None = None) -> bool:
    """Does this kernel count RLIMIT_NPROC per user namespace (5.14, "ucounts" rlimits)?
    Before it, the count is the outside uid's across the host: the caller's own processes, or
    every root sandbox at once (they share one mapped uid)."""
    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= (5, 14)


def _cgroup_plan(*, prepare: bool) -> LimitPlan:
    v2 = _v2_plan(prepare=prepare)
    if v2 is not None:
        return v2
    if os.getuid() == 0 and all(os.access(V1_ROOT / c, os.W_OK) for c in V1_CONTROLLERS):
        if prepare:
            for c in V1_CONTROLLERS:
                (V1_ROOT / c / CGROUP_PARENT).mkdir(exist_ok=True)
        return LimitPlan(Enforcer.CGROUP_V1, Enforcer.CGROUP_V1, Enforcer.CGROUP_V1,
                         swap_file=(V1_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists())
    return LimitPlan(Enforcer.FALLBACK, Enforcer.FALLBACK, Enforcer.FALLBACK,
                     why_no_cgroup=_why_no_v2())


def _v2_mount() -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            if post.split(" ", 1)[0] == "cgroup2":
                return Path(pre.split(" ")[4])
    return None


def _own_v2_cgroup(mount: Path) -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return mount / line[3:].lstrip("/")
    return None


def _controllers(d: Path, name: str = "cgroup.controllers") -> set[str]:
    try:
        return set((d / name).read_text().split())
    except OSError:
        return set()


def _delegated_root(mount: Path) -> Path | None:
    """The subtree whose limits this caller may set: the v2 root for root; else the highest
    owned ancestor of the caller's own cgroup (see `delegated_ancestor`)."""
    if os.getuid() == 0:
        return mount
    own = _own_v2_cgroup(mount)
    return None if own is None else delegated_ancestor(mount, own, os.getuid())


def delegated_ancestor(mount: Path, own: Path, uid: int) -> Path | None:
    """The highest ancestor of `own` (below `mount`) that `uid` owns, with every dir between
    owned too, and whose cgroup.procs and cgroup.subtree_control it may write. Moving a process
    between two cgroups needs write access to their common ancestor's cgroup.procs: such an
    ancestor is one (systemd's user@UID.service is one, for the user's own processes)."""
    found = None
    d = own.parent
    while d != mount and mount in d.parents:
        try:
            owned = d.stat().st_uid == uid
        except OSError:
            break
        if not owned:
            break
        if os.access(d / "cgroup.subtree_control", os.W_OK) and os.access(
                d / "cgroup.procs", os.W_OK):
            found = d
        d = d.parent
    return found


def _enable(d: Path, controllers: list[str]) -> bool:
    missing = [c for c in controllers if c not in _controllers(d, "cgroup.subtree_control")]
    if not missing:
        return True
    try:
        (d / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError:  # EBUSY: the cgroup holds processes (a container's namespaced root)
        return False
    return True


def _v2_plan(*, prepare: bool) -> LimitPlan | None:
    mount = _v2_mount()
    if mount is None:
        return None
    top = _delegated_root(mount)
    if top is None or "memory" not in _controllers(top):
        return None
    wanted = [c for c in _V2_CONTROLLERS if c in _controllers(top)]
    parent = top / CGROUP_PARENT
    if prepare:
        with contextlib.suppress(FileExistsError):
            parent.mkdir()
        # The per-run cgroups nsjail makes under `parent` need the controllers passed down
        # both levels; `parent` never holds a process, so enabling them there cannot fail
        # with EBUSY; `top` can (a container's namespaced root), and then v2 is not usable.
        if not (_enable(top, wanted) and _enable(parent, wanted)):
            return None
    elif not os.access(top / "cgroup.subtree_control", os.W_OK):
        return None
    return LimitPlan(
        Enforcer.CGROUP_V2,
        Enforcer.CGROUP_V2 if "pids" in wanted else Enforcer.FALLBACK,
        Enforcer.CGROUP_V2 if "cpu" in wanted else Enforcer.FALLBACK,
        v2_parent=parent,
        swap_file=(not prepare) or (parent / "memory.swap.max").exists(),
    )


def _why_no_v2() -> str:
    mount = _v2_mount()
    if mount is None:
        return "no cgroup v2 hierarchy is mounted"
    if "memory" not in _controllers(mount):
        v1 = " (it is bound to cgroup v1)" if (V1_ROOT / "memory").is_dir() else ""
        return f"cgroup v2 ({mount}) has no memory controller{v1}"
    if os.getuid() == 0:
        return f"cannot enable the memory controller in {mount} (it holds processes)"
    top = _delegated_root(mount)
    if top is None:
        return f"no cgroup v2 subtree is delegated to uid {os.getuid()}"
    return f"the memory controller is not delegated to uid {os.getuid()} in {top}"
