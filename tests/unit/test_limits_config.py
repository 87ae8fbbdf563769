"""How each limit reaches nsjail's config, per mechanism: never as an address-space limit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sandbox.backends._base import LaunchSpec, Limits, Seccomp, Snapshot
from sandbox.backends._limits import Enforcer, LimitPlan
from sandbox.backends._nsjail_config import _light_import_nsjail, build_config
from tests.conftest import require_root

GIB = 1 << 30


def _cfg(tmp_path: Path, plan: LimitPlan) -> Any:
    spec = LaunchSpec(argv=("true",), snapshot=Snapshot(tmp_path, tmp_path, tmp_path),
                      scratch=tmp_path, env={}, seccomp=Seccomp("default", "d", "ALLOW {}"),
                      limits=Limits(memory_bytes=2 * GIB, pids=100, cpus=1.5))
    return build_config(spec, outside_uid=1000, outside_gid=1000, rootless_overlay=True,
                        limits=plan)


def test_cgroup_v2_sets_memory_max_pids_and_cpu_in_the_delegated_parent(tmp_path: Path) -> None:
    rl = _light_import_nsjail()[0].RLimitType
    plan = LimitPlan(Enforcer.CGROUP_V2, Enforcer.CGROUP_V2, Enforcer.CGROUP_V2,
                     v2_parent=Path("/sys/fs/cgroup/user.slice/u/sandbox"), swap_file=True)
    cfg = _cfg(tmp_path, plan)
    assert cfg.use_cgroupv2 and cfg.cgroupv2_mount == "/sys/fs/cgroup/user.slice/u/sandbox"
    assert cfg.cgroup_mem_max == 2 * GIB and cfg.cgroup_mem_swap_max == 0
    assert cfg.cgroup_pids_max == 100 and cfg.cgroup_cpu_ms_per_sec == 1500
    assert cfg.rlimit_as_type == rl.INF


def test_without_a_cgroup_memory_is_left_to_the_poller_not_rlimit_as(tmp_path: Path) -> None:
    rl = _light_import_nsjail()[0].RLimitType
    plan = LimitPlan(Enforcer.FALLBACK, Enforcer.FALLBACK, Enforcer.FALLBACK,
                     why_no_cgroup="none here")
    cfg = _cfg(tmp_path, plan)
    assert not cfg.use_cgroupv2 and not cfg.cgroup_mem_max
    assert cfg.rlimit_as_type == rl.INF  # the JVM reserves 1 GiB of class space at start
    assert cfg.rlimit_nproc_type == rl.VALUE and cfg.max_cpus == 2
    assert "polled resident memory" in plan.describe()


def test_the_delegated_subtree_is_the_highest_owned_ancestor(tmp_path: Path) -> None:
    """As systemd lays it out: user.slice (root's) / user@UID.service (the user's) / app.slice
    (the user's) / the shell's scope. The user may manage user@UID.service's subtree."""
    from sandbox.backends._limits import delegated_ancestor

    require_root()  # to give the tree other owners
    mount = tmp_path / "cgroup"
    service = mount / "user.slice" / "user@1000.service"
    own = service / "app.slice" / "run-1.scope"
    own.mkdir(parents=True)
    for d in (service, service / "app.slice", own):
        for f in ("cgroup.procs", "cgroup.subtree_control"):
            (d / f).write_text("")
    uid = os.getuid()
    os.chown(mount / "user.slice", uid + 4242, -1)  # root's in real life: not the user's
    assert delegated_ancestor(mount, own, uid) == service
    os.chown(service, uid + 4242, -1)  # a login session: nothing delegated above the scope
    assert delegated_ancestor(mount, own, uid) == service / "app.slice"
    os.chown(service / "app.slice", uid + 4242, -1)
    assert delegated_ancestor(mount, own, uid) is None


def test_pids_by_rlimit_per_user_namespace_is_exactly_the_limit_and_hard(tmp_path: Path) -> None:
    """Counted per user namespace, the run's RLIMIT_NPROC bounds its own processes: no allowance
    for the caller's, no cgroup (its attach cost ~5.5 ms per run), soft = hard (VALUE)."""
    rl = _light_import_nsjail()[0].RLimitType
    plan = LimitPlan(Enforcer.CGROUP_V1, Enforcer.RLIMIT_USERNS, Enforcer.CGROUP_V1)
    cfg = _cfg(tmp_path, plan)
    assert cfg.rlimit_nproc == 100 and cfg.rlimit_nproc_type == rl.VALUE
    assert not cfg.cgroup_pids_max and cfg.cgroup_mem_max == 2 * GIB
    assert plan.mechanism("pids") == "RLIMIT_NPROC in the run's own user namespace"


def test_rlimit_per_user_namespace_only_from_linux_5_14() -> None:
    from sandbox.backends._limits import nproc_per_userns

    assert not nproc_per_userns("5.13.19-generic") and not nproc_per_userns("4.19.0")
    assert nproc_per_userns("5.14.0") and nproc_per_userns("6.18.44-fc-v669")
