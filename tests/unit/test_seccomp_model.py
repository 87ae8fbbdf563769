"""Profile model and resolution: JSON paths in errors, runc's argument rule, Docker's
includes/excludes, libseccomp's precedence, names (unknown, other-arch, renamed for Kafel)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.errors import ProfileError
from sandbox.seccomp import _kafel, _model, _resolve, _syscalls
from sandbox.seccomp._model import Action, Op
from sandbox.seccomp._resolve import NoteKind, Target, Verdict, verdict_for

T = Target(arch="amd64", caps=frozenset(), kernel=(6, 18))
NR = _syscalls.X86_64


def prof(*rules: dict[str, Any], default: str = "SCMP_ACT_ERRNO", **top: Any) -> _model.Profile:
    base = [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}]
    return _model.parse({"defaultAction": default, "syscalls": [*base, *rules], **top},
                        source="t.json")


def res(*rules: dict[str, Any], **kw: Any) -> _resolve.Resolved:
    return _resolve.resolve_or_raise(prof(*rules, **kw), T)


def arg(index: int, value: int, op: str = "SCMP_CMP_EQ", two: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"index": index, "value": value, "op": op}
    if two is not None:
        d["valueTwo"] = two
    return d


@pytest.mark.parametrize(("text", "where"), [
    ('{"defaultAction": "SCMP_ACT_ERRNO", "bogus": 1}', "$.bogus"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "$.defaultAction"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}', "$.syscalls[0]"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": '
     '"SCMP_ACT_ALLOW", "args": [{"index": 0, "value": true, "op": "SCMP_CMP_EQ"}]}]}',
     "$.syscalls[0].args[0].value"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": '
     '"SCMP_ACT_ERRNO", "errnoRet": 5000}]}', "$.syscalls[0].errnoRet"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}', "$.flags[0]"),
    ('[1, 2]', "$"),
])
def test_parse_errors_name_the_json_path(text: str, where: str) -> None:
    with pytest.raises(ProfileError) as ei:
        _model.loads(text, source="p.json")
    assert f"p.json: {where}:" in str(ei.value)
    assert ei.value.exit_code == 2


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(ProfileError, match=r"line 2 column 1"):
        _model.loads('{"defaultAction": "SCMP_ACT_ERRNO",\n}', source="p.json")


@pytest.mark.parametrize(("a", "msg"), [
    (arg(0, 0xFF, "SCMP_CMP_MASKED_EQ", 0x100), "can never match"),
    (arg(0, 0, "SCMP_CMP_LT"), "arg < 0"),
    (arg(0, (1 << 64) - 1, "SCMP_CMP_GT"), "can never match"),
])
def test_impossible_conditions_are_errors(a: dict[str, Any], msg: str) -> None:
    with pytest.raises(ProfileError, match=msg) as ei:
        prof({"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [a]})
    assert "$.syscalls[1].args[0]" in str(ei.value)


def test_possible_masked_eq_is_accepted() -> None:
    p = prof({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
              "args": [arg(0, 0x7E020000, "SCMP_CMP_MASKED_EQ")]})
    assert p.syscalls[1].args[0].op is Op.MASKED_EQ


def test_digest_is_of_canonical_json_not_formatting() -> None:
    obj = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["execve"],
                                                            "action": "SCMP_ACT_ALLOW"}]}
    a = _model.loads(json.dumps(obj, indent=4))
    b = _model.loads(json.dumps(obj, separators=(",", ":"), sort_keys=True))
    c = _model.loads(json.dumps({**obj, "defaultErrnoRet": 1}))
    assert a.digest == b.digest != c.digest
    assert a.digest.startswith("sha256:")


def test_unknown_name_is_an_error_with_suggestions() -> None:
    with pytest.raises(ProfileError, match=r"names\[1\]: unknown syscall 'opnat' \(did you mean openat"):
        res({"names": ["read", "opnat"], "action": "SCMP_ACT_ALLOW"})


def test_other_arch_names_are_skipped_with_a_note_never_silently() -> None:
    r = res({"names": ["read", "_llseek", "socketcall"], "action": "SCMP_ACT_ALLOW"})
    notes = [n for n in r.notes if n.kind is NoteKind.OTHER_ARCH]
    assert notes and set(notes[0].names) == {"_llseek", "socketcall"}
    assert "_llseek" in _kafel.to_kafel(r)  # listed in the Kafel header comment
    assert verdict_for(r, NR["read"]).action is Action.ALLOW


def test_runc_semantics_distinct_indexes_are_anded() -> None:
    r = res({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [arg(0, 2), arg(1, 1)]})
    assert verdict_for(r, NR["socket"], (2, 1)).action is Action.ALLOW
    assert verdict_for(r, NR["socket"], (2, 3)).action is Action.ERRNO
    assert verdict_for(r, NR["socket"], (10, 1)).action is Action.ERRNO


def test_runc_semantics_repeated_index_ors_every_condition() -> None:
    # runc adds each condition as its own rule as soon as one index repeats: (a0==1)||(a0==2)||
    # (a1==1), not ((a0==1)||(a0==2)) && a1==1. Lint warns about this case.
    r = res({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [arg(0, 1), arg(0, 2), arg(1, 1)]})
    assert verdict_for(r, NR["socket"], (1, 5)).action is Action.ALLOW
    assert verdict_for(r, NR["socket"], (2, 5)).action is Action.ALLOW
    assert verdict_for(r, NR["socket"], (9, 1)).action is Action.ALLOW
    assert verdict_for(r, NR["socket"], (9, 5)).action is Action.ERRNO
    assert any(n.kind is NoteKind.OR_ALL for n in r.notes)


def test_same_index_only_is_an_or_without_warning() -> None:
    r = res({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [arg(0, 0), arg(0, 8)]})
    assert verdict_for(r, NR["personality"], (8,)).action is Action.ALLOW
    assert verdict_for(r, NR["personality"], (9,)).action is Action.ERRNO
    assert not any(n.kind is NoteKind.OR_ALL for n in r.notes)


def test_masked_eq_and_64_bit_comparisons() -> None:
    r = res({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [arg(0, 0x7E020000, "SCMP_CMP_MASKED_EQ")]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [arg(0, 0xFFFFFFFF)]})
    assert verdict_for(r, NR["clone"], (0x11,)).action is Action.ALLOW
    assert verdict_for(r, NR["clone"], (0x10000011,)).action is Action.ERRNO
    assert verdict_for(r, NR["personality"], (0xFFFFFFFF,)).action is Action.ALLOW
    # the high half counts: 0xffffffffffffffff is not 0xffffffff
    assert verdict_for(r, NR["personality"], ((1 << 64) - 1,)).action is Action.ERRNO


@pytest.mark.parametrize(("sel", "caps", "kernel", "applies"), [
    ({"includes": {"caps": ["CAP_SYS_ADMIN"]}}, frozenset(), (6, 18), False),
    ({"includes": {"caps": ["CAP_SYS_ADMIN"]}}, frozenset({"CAP_SYS_ADMIN"}), (6, 18), True),
    ({"includes": {"caps": ["CAP_A", "CAP_B"]}}, frozenset({"CAP_A"}), (6, 18), False),
    ({"excludes": {"caps": ["CAP_SYS_ADMIN"]}}, frozenset(), (6, 18), True),
    ({"excludes": {"caps": ["CAP_A", "CAP_B"]}}, frozenset({"CAP_B"}), (6, 18), False),
    ({"includes": {"minKernel": "4.8"}}, frozenset(), (6, 18), True),
    ({"includes": {"minKernel": "6.19"}}, frozenset(), (6, 18), False),
    ({"excludes": {"minKernel": "6.18"}}, frozenset(), (6, 18), False),
    ({"includes": {"arches": ["amd64", "x32"]}}, frozenset(), (6, 18), True),
    ({"includes": {"arches": ["arm64"]}}, frozenset(), (6, 18), False),
    ({"excludes": {"arches": ["s390", "s390x"]}}, frozenset(), (6, 18), True),
    ({"excludes": {"arches": ["x86_64"]}}, frozenset(), (6, 18), False),
])
def test_docker_includes_excludes(sel: dict[str, Any], caps: frozenset[str],
                                  kernel: tuple[int, int], applies: bool) -> None:
    p = prof({"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", **sel})
    r = _resolve.resolve(p, Target(caps=caps, kernel=kernel))
    assert (verdict_for(r, NR["ptrace"]).action is Action.ALLOW) == applies


def test_rule_equal_to_default_is_ignored_like_runc() -> None:
    # ERRNO(EPERM) == the default: runc drops it, so the later ALLOW decides.
    r = res({"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW"})
    assert verdict_for(r, NR["mount"]).action is Action.ALLOW
    assert any(n.kind is NoteKind.SAME_AS_DEFAULT for n in r.notes)


def test_unconditional_rule_wins_over_conditional_in_either_order() -> None:
    cond = {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
            "args": [arg(0, 5)]}
    uncond = {"names": ["personality"], "action": "SCMP_ACT_ALLOW"}
    for rules in ((cond, uncond), (uncond, cond)):
        r = res(*rules)
        assert verdict_for(r, NR["personality"], (5,)).action is Action.ALLOW
        assert any(n.kind is NoteKind.SHADOWED for n in r.notes)


def test_errno_defaults_follow_runc() -> None:
    r = res({"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
            default="SCMP_ACT_KILL_PROCESS")
    assert verdict_for(r, NR["mount"]) == Verdict(Action.ERRNO, 38)
    assert verdict_for(r, NR["ptrace"]) == Verdict(Action.TRACE, 1)
    assert verdict_for(r, NR["bpf"]) == Verdict(Action.KILL_PROCESS)
    r2 = res(default="SCMP_ACT_ERRNO", defaultErrnoRet=38)
    assert verdict_for(r2, NR["bpf"]) == Verdict(Action.ERRNO, 38)


def test_notify_and_denied_execve_cannot_run() -> None:
    with pytest.raises(ProfileError, match="SCMP_ACT_NOTIFY"):
        res({"names": ["mount"], "action": "SCMP_ACT_NOTIFY"})
    with pytest.raises(ProfileError, match="execve is not allowed"):
        _resolve.resolve_or_raise(_model.parse({"defaultAction": "SCMP_ACT_ERRNO"}), T)


def test_syscall_table_and_kafel_names() -> None:
    assert NR["read"] == 0 and NR["clone3"] == 435 and NR["mseal"] == 462
    assert _syscalls.kafel_name("stat") == "newstat"
    assert _syscalls.kafel_name("umount2") == "umount"
    assert _syscalls.kafel_name("_sysctl") == "sysctl"
    assert _syscalls.kafel_name("listns") is None  # by number
    assert _syscalls.name_of(56) == "clone"
    assert len(set(NR.values())) == len(NR)  # one name per number
    assert not (set(NR) & _syscalls.OTHER_ARCH_NAMES)
