"""What nsjail enforces is what the JSON says: the BPF that real nsjail installs for our Kafel
translation, read back from the kernel, gives the same verdict as libseccomp's compilation of
the same JSON (runc's way) and as the resolver, over a corpus of syscalls and arguments, for
every shipped profile and Docker's.

Known, asserted differences (both deny): x32 syscall numbers (>= 0x40000000) are killed by
libseccomp as a bad architecture, while Kafel answers the default action. libseccomp 2.5.4
mis-merges some sets of several conditional rules on one syscall (none in the shipped or Docker
profiles); for those the nsjail filter is checked against the resolver directly.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.seccomp import _bpf, _jail, _kafel, _libseccomp, _model, _resolve, _syscalls
from sandbox.seccomp._resolve import Target
from tests.conftest import REPO, require_nsjail, require_root
from tests.unit.test_seccomp_bpf import corpus, expected, need_libseccomp, rules

DATA = REPO / "tests" / "data" / "seccomp"
PROFILES = {
    "default": REPO / "profiles" / "default.json",
    "strict": REPO / "profiles" / "strict.json",
    "docker-default": DATA / "docker-default.json",
    "dangerous": DATA / "dangerous.json",
    "or-all": DATA / "or-all.json",
    "shadowed": DATA / "shadowed.json",
}


def host_target() -> Target:
    return Target.host()


def nsjail_prog(res: _resolve.Resolved) -> tuple[_bpf.Insn, ...]:
    require_root()
    require_nsjail()
    return _bpf.parse(_jail.installed_filter(_kafel.to_kafel(res)))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_nsjail_filter_equals_libseccomp_and_resolver(name: str) -> None:
    need_libseccomp()
    profile = _model.loads(PROFILES[name].read_bytes(), source=name)
    res = _resolve.resolve(profile, host_target())
    kafel_prog = nsjail_prog(res)
    lib_prog = _bpf.parse(_libseccomp.export_bpf(profile, host_target()))
    calls = corpus(res)
    diffs = []
    for call in calls:
        k = _bpf.normalize(_bpf.run(kafel_prog, call))
        lib = _bpf.normalize(_bpf.run(lib_prog, call))
        want = expected(res, call)
        if not k == lib == want:
            diffs.append((call.nr, [hex(a) for a in call.args[:3]], _bpf.describe(k),
                          _bpf.describe(lib), _bpf.describe(want)))
    assert diffs == [], diffs[:10]
    assert len(calls) >= 480


def test_foreign_arches_and_x32_are_denied_by_both() -> None:
    need_libseccomp()
    profile = _model.loads(PROFILES["default"].read_bytes())
    res = _resolve.resolve(profile, host_target())
    kafel_prog = nsjail_prog(res)
    lib_prog = _bpf.parse(_libseccomp.export_bpf(profile, host_target()))
    allow = {_bpf.RET_ALLOW, _bpf.RET_LOG}
    for arch in (_bpf.AUDIT_ARCH_I386, _bpf.AUDIT_ARCH_AARCH64):
        for prog in (kafel_prog, lib_prog):
            assert _bpf.normalize(_bpf.run(prog, _bpf.Call(0, arch=arch))) in (
                _bpf.RET_KILL_THREAD, _bpf.RET_KILL_PROCESS)
    for nr in (0, 1, 59, 231):  # read, write, execve, exit_group via the x32 ABI
        x32 = _bpf.Call(_bpf.X32_SYSCALL_BIT | nr)
        assert _bpf.normalize(_bpf.run(kafel_prog, x32)) not in allow
        assert _bpf.normalize(_bpf.run(lib_prog, x32)) not in allow
        assert _bpf.run(kafel_prog, _bpf.Call(nr)) == _bpf.RET_ALLOW  # native: allowed


DENY = _bpf.RET_ERRNO | 13
MULTI_RULE_CASES = [
    # libseccomp 2.5.4 answers the default for a2 == 1 (found by the random test)
    ("personality", [[{"index": 2, "value": 0, "op": "SCMP_CMP_LE"}],
                     [{"index": 2, "value": 1 << 32, "op": "SCMP_CMP_LT"}]],
     [((0, 0, 0), _bpf.RET_ALLOW), ((0, 0, 1), _bpf.RET_ALLOW), ((0, 0, 0xFFFFFFFF), _bpf.RET_ALLOW),
      ((0, 0, 1 << 32), DENY), ((0, 0, (1 << 64) - 1), DENY)]),
    # libseccomp 2.5.4 answers the default for (0, 1) (found by the random test)
    ("socket", [[{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
                [{"index": 1, "value": 1, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0},
                 {"index": 0, "value": 1, "op": "SCMP_CMP_NE"}]],
     [((0, 1, 0), _bpf.RET_ALLOW), ((0, 0, 0), _bpf.RET_ALLOW), ((2, 0, 0), _bpf.RET_ALLOW),
      ((1, 0, 0), DENY), ((2, 1, 0), DENY)]),
]


@pytest.mark.parametrize(("name", "rule_args", "cases"), MULTI_RULE_CASES,
                         ids=[c[0] for c in MULTI_RULE_CASES])
def test_several_rules_on_one_syscall_are_or_ed_by_nsjail(
        name: str, rule_args: list[list[dict[str, int | str]]],
        cases: list[tuple[tuple[int, int, int], int]]) -> None:
    obj = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "syscalls": [
        {"names": ["execve"], "action": "SCMP_ACT_ALLOW"},
        *({"names": [name], "action": "SCMP_ACT_ALLOW", "args": a} for a in rule_args)]}
    res = _resolve.resolve_or_raise(_model.parse(obj), host_target())
    prog = nsjail_prog(res)
    nr = _syscalls.X86_64[name]
    for args, want in cases:
        assert _bpf.run(prog, _bpf.Call(nr, (*args, 0, 0, 0))) == want, args


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rules(), min_size=2, max_size=5))
def test_random_multi_rule_profiles_against_nsjail(rs: list[dict[str, Any]]) -> None:
    """Where libseccomp cannot serve as the oracle (several rules on one syscall, one action
    per syscall), the filter nsjail installs must still implement the resolver's semantics."""
    first: dict[str, tuple[str, Any]] = {}
    for r in rs:
        first.setdefault(r["names"][0], (r["action"], r.get("errnoRet")))
        r["action"], err = first[r["names"][0]]
        r.pop("errnoRet", None)
        if err is not None:
            r["errnoRet"] = err
    obj = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
           "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}, *rs]}
    res = _resolve.resolve_or_raise(_model.parse(obj), host_target())
    prog = nsjail_prog(res)
    for call in corpus(res):
        assert _bpf.normalize(_bpf.run(prog, call)) == expected(res, call), (json.dumps(obj), call)


def test_every_known_syscall_name_is_accepted_by_nsjail(tmp_path: Path) -> None:
    """No name is dropped: each native name translates to something nsjail's Kafel accepts and
    maps to the same number (checked on the installed filter)."""
    names = sorted(_syscalls.X86_64)
    obj = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
           "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}
    res = _resolve.resolve_or_raise(_model.parse(obj), host_target())
    prog = nsjail_prog(res)
    for name, nr in _syscalls.X86_64.items():
        assert _bpf.run(prog, _bpf.Call(nr)) == _bpf.RET_ALLOW, name
    assert _bpf.run(prog, _bpf.Call(max(_syscalls.X86_64.values()) + 1)) == _bpf.RET_ERRNO | 13


def test_nsjail_rejects_a_policy_loudly() -> None:
    require_nsjail()
    bad = "POLICY p { ALLOW { not_a_syscall } } USE p DEFAULT KILL"
    r = subprocess.run(_jail.jail_argv(bad, ["/bin/true"]), capture_output=True, check=False)
    assert r.returncode != 0
    assert re.search(rb"not_a_syscall", r.stderr)


def test_kafel_header_lists_what_was_skipped() -> None:
    profile = _model.loads(PROFILES["docker-default"].read_bytes())
    k = _kafel.to_kafel(_resolve.resolve(profile, host_target()), name="docker")
    skipped = re.search(r"// not x86_64 syscalls \(skipped\): (.*)", k)
    assert skipped is not None
    listed = set(skipped.group(1).split(", "))
    raw = json.loads(PROFILES["docker-default"].read_text())
    applied = [r for r in raw["syscalls"] if not r.get("includes") and not r.get("excludes")]
    non_native = {n for r in applied for n in r["names"] if n not in _syscalls.X86_64}
    assert non_native and non_native <= listed
