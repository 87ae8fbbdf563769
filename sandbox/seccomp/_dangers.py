"""Calls a sandbox profile should deny, with the reason and a tier, as concrete probes.

Lint and show evaluate each probe (a syscall with example arguments) against the resolved
profile, so a danger is reported whatever way the profile happens to allow it (unconditional
rule, too-loose condition, default ALLOW). The security tests run the same list as real calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    CRITICAL = "critical"  # known container-escape or kernel-exploitation primitive
    HIGH = "high"  # reaches outside the sandbox or a large, often-exploited kernel surface
    MEDIUM = "medium"  # weakens a protection, or needs a capability the sandbox lacks anyway


CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
AF_INET, AF_INET6, AF_PACKET, AF_ALG, AF_VSOCK = 2, 10, 17, 38, 40
SOCK_STREAM, SOCK_RAW = 1, 3


@dataclass(frozen=True)
class Danger:
    name: str  # libseccomp name
    args: tuple[int, ...]
    tier: Tier
    label: str  # what the probe is, e.g. "clone(CLONE_NEWUSER)"
    reason: str


_MOUNT = "mount family: reshapes the filesystem view; with user namespaces, a classic escape path"
_NS = "namespace creation or entry: unlocks user-namespace-only kernel attack surface"
_MOD = "loads code into the kernel"

DANGERS: tuple[Danger, ...] = (
    Danger("mount", (), Tier.CRITICAL, "mount", _MOUNT),
    Danger("umount2", (), Tier.CRITICAL, "umount2", _MOUNT),
    Danger("pivot_root", (), Tier.CRITICAL, "pivot_root", _MOUNT),
    Danger("fsopen", (), Tier.CRITICAL, "fsopen", _MOUNT),
    Danger("fsconfig", (), Tier.CRITICAL, "fsconfig", _MOUNT),
    Danger("fsmount", (), Tier.CRITICAL, "fsmount", _MOUNT),
    Danger("fspick", (), Tier.CRITICAL, "fspick", _MOUNT),
    Danger("move_mount", (), Tier.CRITICAL, "move_mount", _MOUNT),
    Danger("open_tree", (), Tier.CRITICAL, "open_tree", _MOUNT),
    Danger("mount_setattr", (), Tier.CRITICAL, "mount_setattr", _MOUNT),
    Danger("unshare", (CLONE_NEWUSER,), Tier.CRITICAL, "unshare(CLONE_NEWUSER)", _NS),
    Danger("setns", (), Tier.CRITICAL, "setns", _NS),
    Danger("clone", (CLONE_NEWUSER | SIGCHLD,), Tier.CRITICAL, "clone(CLONE_NEWUSER)",
           "clone without the namespace mask: " + _NS),
    Danger("clone3", (), Tier.CRITICAL, "clone3",
           "clone3's flags live in memory a filter cannot read, so allowing it allows "
           "namespace creation; answer ENOSYS so libc falls back to clone"),
    Danger("ptrace", (), Tier.CRITICAL, "ptrace",
           "inspects and controls other processes; escapes seccomp of a traced process"),
    Danger("bpf", (), Tier.CRITICAL, "bpf", "eBPF: large, frequently exploited kernel surface"),
    Danger("io_uring_setup", (), Tier.CRITICAL, "io_uring_setup",
           "io_uring performs I/O the seccomp filter never sees; frequent kernel exploits"),
    Danger("io_uring_enter", (), Tier.CRITICAL, "io_uring_enter", "io_uring (see io_uring_setup)"),
    Danger("io_uring_register", (), Tier.CRITICAL, "io_uring_register",
           "io_uring (see io_uring_setup)"),
    Danger("open_by_handle_at", (), Tier.CRITICAL, "open_by_handle_at",
           "opens files by handle, bypassing mount boundaries (the 'shocker' escape)"),
    Danger("kexec_load", (), Tier.CRITICAL, "kexec_load", "replaces the running kernel"),
    Danger("kexec_file_load", (), Tier.CRITICAL, "kexec_file_load", "replaces the running kernel"),
    Danger("init_module", (), Tier.CRITICAL, "init_module", _MOD),
    Danger("finit_module", (), Tier.CRITICAL, "finit_module", _MOD),
    Danger("delete_module", (), Tier.CRITICAL, "delete_module", "unloads kernel modules"),
    Danger("iopl", (), Tier.CRITICAL, "iopl", "direct hardware I/O port access"),
    Danger("ioperm", (), Tier.CRITICAL, "ioperm", "direct hardware I/O port access"),
    Danger("process_vm_readv", (), Tier.HIGH, "process_vm_readv", "reads other processes' memory"),
    Danger("process_vm_writev", (), Tier.HIGH, "process_vm_writev",
           "writes other processes' memory"),
    Danger("keyctl", (), Tier.HIGH, "keyctl", "the kernel keyring is not namespaced"),
    Danger("add_key", (), Tier.HIGH, "add_key", "the kernel keyring is not namespaced"),
    Danger("request_key", (), Tier.HIGH, "request_key", "the kernel keyring is not namespaced"),
    Danger("perf_event_open", (), Tier.HIGH, "perf_event_open",
           "performance counters: side channels and kernel attack surface"),
    Danger("userfaultfd", (), Tier.HIGH, "userfaultfd",
           "lets an exploit pause the kernel mid-copy to win races"),
    Danger("socket", (AF_VSOCK, SOCK_STREAM), Tier.HIGH, "socket(AF_VSOCK)",
           "talks to the hypervisor host, outside the sandbox's network"),
    Danger("socket", (AF_ALG, 5), Tier.HIGH, "socket(AF_ALG)",
           "kernel crypto API: a frequently exploited surface"),
    Danger("socket", (AF_PACKET, SOCK_RAW), Tier.MEDIUM, "socket(AF_PACKET, SOCK_RAW)",
           "raw link-layer sockets: sniffing and spoofing (needs CAP_NET_RAW)"),
    Danger("socket", (AF_INET, SOCK_RAW), Tier.MEDIUM, "socket(AF_INET, SOCK_RAW)",
           "raw IP sockets: spoofing (needs CAP_NET_RAW)"),
    Danger("socket", (AF_INET6, SOCK_RAW), Tier.MEDIUM, "socket(AF_INET6, SOCK_RAW)",
           "raw IP sockets: spoofing (needs CAP_NET_RAW)"),
    Danger("clock_settime", (), Tier.MEDIUM, "clock_settime", "sets the host clock"),
    Danger("settimeofday", (), Tier.MEDIUM, "settimeofday", "sets the host clock"),
    Danger("adjtimex", (), Tier.MEDIUM, "adjtimex", "adjusts the host clock"),
    Danger("clock_adjtime", (), Tier.MEDIUM, "clock_adjtime", "adjusts the host clock"),
    Danger("personality", (0x0400000,), Tier.MEDIUM, "personality(READ_IMPLIES_EXEC)",
           "weakens memory protections (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE)"),
    Danger("syslog", (), Tier.MEDIUM, "syslog", "reads the kernel log (addresses, other tenants)"),
    Danger("chroot", (), Tier.MEDIUM, "chroot", "changes root; a building block of escapes"),
    Danger("swapon", (), Tier.MEDIUM, "swapon", "host resource control"),
    Danger("reboot", (), Tier.MEDIUM, "reboot", "host power control"),
    Danger("acct", (), Tier.MEDIUM, "acct", "host process accounting"),
    Danger("lookup_dcookie", (), Tier.MEDIUM, "lookup_dcookie", "kernel profiling interface"),
    Danger("quotactl", (), Tier.MEDIUM, "quotactl", "host quota control"),
)

# Socket multiplexers on 32-bit ABIs: the filter sees only the sub-call number, never the family.
MULTIPLEXERS = {
    "socketcall": "on 32-bit arches socketcall multiplexes socket(); the family cannot be filtered",
}
