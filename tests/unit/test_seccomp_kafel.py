"""Kafel translation: first-match order per syscall, 64-bit argument checks by number, names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox.errors import ProfileError
from sandbox.seccomp import _kafel, _model, _resolve
from sandbox.seccomp._resolve import Target

T = Target(kernel=(6, 18))


def kafel(*rules: dict[str, Any], default: str = "SCMP_ACT_ERRNO", **top: Any) -> str:
    base = [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}]
    p = _model.parse({"defaultAction": default, "syscalls": [*base, *rules], **top})
    return _kafel.to_kafel(_resolve.resolve_or_raise(p, T), name="t")


def test_unconditional_rules_use_kafel_names() -> None:
    k = kafel({"names": ["stat", "fstat", "uname", "umount2", "read"], "action": "SCMP_ACT_ALLOW"})
    for name in ("newstat", "newfstat", "newuname", "umount", "read", "execve"):
        assert re.search(rf"^\s+{name},?$", k, re.M), name
    assert k.rstrip().endswith("USE sandbox_profile DEFAULT ERRNO(1)")


def test_conditional_rules_are_numbered_so_arguments_are_64_bit() -> None:
    k = kafel({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]})
    assert "SYSCALL[135](a0) { a0 == 0xffffffff } /* personality */" in k


@pytest.mark.parametrize(("op", "expect"), [
    ("SCMP_CMP_EQ", "a2 == 0x5"), ("SCMP_CMP_NE", "a2 != 0x5"), ("SCMP_CMP_LT", "a2 < 0x5"),
    ("SCMP_CMP_LE", "a2 <= 0x5"), ("SCMP_CMP_GT", "a2 > 0x5"), ("SCMP_CMP_GE", "a2 >= 0x5"),
    ("SCMP_CMP_MASKED_EQ", "(a2 & 0x5) == 0x4"),
])
def test_operators(op: str, expect: str) -> None:
    k = kafel({"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 2, "value": 5, "valueTwo": 4, "op": op}]})
    assert f"SYSCALL[9](a0, a1, a2) {{ {expect} }}" in k


def test_and_within_rule_or_across_rules() -> None:
    k = kafel({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
              {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]})
    assert "(a0 == 0x1 && a1 == 0x2) || (a0 == 0xa)" in k


def test_first_match_order_is_kept_per_syscall() -> None:
    # ERRNO(22) when a0 == 5, else ALLOW when a0 < 10: the ERRNO block must come first.
    k = kafel({"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
               "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
              {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_LT"}]})
    assert k.index("ERRNO(22)") < k.index("a0 < 0xa")


@pytest.mark.parametrize(("action", "kafel_action"), [
    ("SCMP_ACT_KILL", "KILL"), ("SCMP_ACT_KILL_THREAD", "KILL"),
    ("SCMP_ACT_KILL_PROCESS", "KILL_PROCESS"), ("SCMP_ACT_LOG", "LOG"), ("SCMP_ACT_TRAP", "TRAP(0)"),
    ("SCMP_ACT_TRACE", "TRACE(1)"),
])
def test_actions(action: str, kafel_action: str) -> None:
    k = kafel({"names": ["ptrace"], "action": action})
    assert f"  {kafel_action} {{\n    ptrace\n  }}" in k


def test_names_without_kafel_identifier_are_numbered() -> None:
    k = kafel({"names": ["listns", "_sysctl"], "action": "SCMP_ACT_ALLOW"})
    assert "SYSCALL[470] /* listns */" in k
    assert re.search(r"^\s+sysctl,?$", k, re.M)


def test_notify_cannot_be_translated() -> None:
    p = _model.parse({"defaultAction": "SCMP_ACT_NOTIFY"})
    with pytest.raises(ProfileError):
        _kafel.kafel_action(_resolve.default_verdict(p))


def test_shipped_default_translates_with_required_denials() -> None:
    from sandbox.seccomp import load_for_run

    k = load_for_run("default", cache_dir=None).kafel
    assert "ERRNO(38) {\n    clone3\n  }" in k
    assert "SYSCALL[56](a0) { (a0 & 0x7e020000) == 0x0 } /* clone */" in k
    for denied in ("ptrace", "mount", "unshare", "setns", "bpf", "io_uring_setup", "keyctl",
                   "perf_event_open", "userfaultfd", "process_vm_readv", "open_by_handle_at",
                   "kexec_load", "init_module", "clock_settime", "adjtimex"):
        assert not re.search(rf"^\s+{denied},?$", k, re.M), denied
