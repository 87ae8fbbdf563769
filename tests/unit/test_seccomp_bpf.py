"""The classic-BPF interpreter, and equivalence of the resolver's semantics (which the Kafel
translation encodes) with libseccomp's compilation of the same JSON, over a syscall corpus.

The stronger check, against the BPF nsjail really installs, is in
tests/security/test_seccomp_equivalence.py (needs root and nsjail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sandbox.seccomp import _bpf, _libseccomp, _model, _resolve, _syscalls
from sandbox.seccomp._resolve import Target

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "seccomp"
T = Target(kernel=(6, 18))
NR = _syscalls.X86_64

try:
    import pyseccomp  # noqa: F401

    HAVE_LIBSECCOMP = True
except (ImportError, RuntimeError):
    HAVE_LIBSECCOMP = False


def need_libseccomp() -> None:
    from tests.conftest import require

    require(HAVE_LIBSECCOMP, "libseccomp (apt-get install libseccomp2; pip install pyseccomp)")


INTERESTING = [0, 1, 2, 3, 5, 8, 10, 16, 17, 38, 39, 40, 0x11, 0x80, 0x20000, 0x20008,
               0x400000, 0x10000011, 0x7E020000, 0x80000 | 1, 0x800 | 2, 0xFFFFFFFF,
               0x100000000, 0x1_0000_0011, (1 << 64) - 1]


def corpus(res: _resolve.Resolved) -> list[_bpf.Call]:
    """Every native number, plus argument sweeps for every syscall the profile conditions."""
    conditioned = {e.nr for e in res.entries if e.conds}
    values = set(INTERESTING)
    for e in res.entries:
        for c in e.conds:
            values |= {c.value, c.value_two, max(c.value - 1, 0), min(c.value + 1, (1 << 64) - 1),
                       c.value | c.value_two}
    # x32 numbers (>= 0x40000000) are checked in the security test: libseccomp kills them as a
    # bad arch, Kafel returns the default; both deny.
    calls = [_bpf.Call(nr) for nr in range(0, 480)] + [_bpf.Call(0xFFFF), _bpf.Call(1000)]
    for nr in conditioned:
        idx = sorted({c.index for e in res.entries if e.nr == nr for c in e.conds})
        for v in sorted(values):
            for i in idx:
                args = [0] * 6
                args[i] = v
                calls.append(_bpf.Call(nr, tuple(args)))  # type: ignore[arg-type]
            if len(idx) >= 2:
                for w in sorted(values)[:12]:
                    args = [0] * 6
                    args[idx[0]], args[idx[1]] = v, w
                    calls.append(_bpf.Call(nr, tuple(args)))  # type: ignore[arg-type]
    return calls


def expected(res: _resolve.Resolved, call: _bpf.Call) -> int:
    return _bpf.normalize(_resolve.verdict_for(res, call.nr, call.args).ret())


def test_interpreter_on_a_hand_written_filter() -> None:
    # ld arch; jne x86_64 -> kill; ld nr; jeq 39 -> allow; ld a0; jset 0x10 -> errno(5); allow
    prog = (
        _bpf.Insn(0x20, 0, 0, 4), _bpf.Insn(0x15, 1, 0, _bpf.AUDIT_ARCH_X86_64),
        _bpf.Insn(0x06, 0, 0, _bpf.RET_KILL_PROCESS), _bpf.Insn(0x20, 0, 0, 0),
        _bpf.Insn(0x15, 3, 0, 39), _bpf.Insn(0x20, 0, 0, 16), _bpf.Insn(0x45, 0, 1, 0x10),
        _bpf.Insn(0x06, 0, 0, _bpf.RET_ERRNO | 5), _bpf.Insn(0x06, 0, 0, _bpf.RET_ALLOW),
    )
    assert _bpf.run(prog, _bpf.Call(39)) == _bpf.RET_ALLOW
    assert _bpf.run(prog, _bpf.Call(1, (0x11, 0, 0, 0, 0, 0))) == _bpf.RET_ERRNO | 5
    assert _bpf.run(prog, _bpf.Call(1, (0x1, 0, 0, 0, 0, 0))) == _bpf.RET_ALLOW
    assert _bpf.run(prog, _bpf.Call(1, arch=_bpf.AUDIT_ARCH_I386)) == _bpf.RET_KILL_PROCESS
    assert _bpf.parse(_bpf.pack(prog)) == prog
    assert _bpf.describe(_bpf.RET_ERRNO | 38) == "ERRNO(38)"
    with pytest.raises(_bpf.BpfError):
        _bpf.run(prog[:2], _bpf.Call(0, arch=0))


def _profiles() -> list[tuple[str, bytes]]:
    out = [(p.stem, p.read_bytes()) for p in sorted((REPO / "profiles").glob("*.json"))
           if p.name != "schema.json"]
    out.append(("docker-default", (DATA / "docker-default.json").read_bytes()))
    for name in ("dangerous", "or-all", "socketcall", "same-as-default", "shadowed"):
        out.append((name, (DATA / f"{name}.json").read_bytes()))
    return out


@pytest.mark.parametrize(("name", "raw"), _profiles(), ids=[n for n, _ in _profiles()])
def test_libseccomp_agrees_with_the_resolver(name: str, raw: bytes) -> None:
    need_libseccomp()
    profile = _model.loads(raw, source=name)
    res = _resolve.resolve(profile, T)
    prog = _bpf.parse(_libseccomp.export_bpf(profile, T))
    diffs = []
    for call in corpus(res):
        got = _bpf.normalize(_bpf.run(prog, call))
        if got != expected(res, call):
            diffs.append((call.nr, call.args, _bpf.describe(got), _bpf.describe(expected(res, call))))
    assert diffs == [], diffs[:10]


def test_libseccomp_numbers_match_the_table() -> None:
    need_libseccomp()
    import pyseccomp

    checked = 0
    for name, nr in NR.items():
        try:
            got = int(pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, name))
        except (OSError, ValueError):
            continue
        if got >= 0:
            assert got == nr, name
            checked += 1
    assert checked > 300


def libseccomp_rules(rules_of_one_syscall: list[dict[str, Any]]) -> int:
    """How many libseccomp rules runc makes: one per condition when an index repeats."""
    return sum(len(r["args"]) if len({a["index"] for a in r["args"]}) < len(r["args"]) else 1
               for r in rules_of_one_syscall)


ACTIONS = st.sampled_from([("SCMP_ACT_ALLOW", None), ("SCMP_ACT_ERRNO", 13),
                           ("SCMP_ACT_ERRNO", 38), ("SCMP_ACT_KILL_PROCESS", None),
                           ("SCMP_ACT_LOG", None), ("SCMP_ACT_TRAP", None)])
OPS = st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                       "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"])
VALUES = st.sampled_from([0, 1, 2, 5, 8, 0xF0, 0xFFFFFFFF, 0x100000000, (1 << 64) - 2])
SYSCALLS = st.sampled_from(["personality", "socket", "mmap", "ioctl"])


@st.composite
def rules(draw: Any) -> dict[str, Any]:
    action, err = draw(ACTIONS)
    nargs = draw(st.integers(0, 2))
    args = []
    for _ in range(nargs):
        op, value = draw(OPS), draw(VALUES)
        a: dict[str, Any] = {"index": draw(st.integers(0, 2)), "value": value, "op": op}
        if op == "SCMP_CMP_MASKED_EQ":
            a["valueTwo"] = value & draw(VALUES)
        elif op == "SCMP_CMP_LT" and value == 0:
            a["op"] = "SCMP_CMP_LE"
        args.append(a)
    r: dict[str, Any] = {"names": [draw(SYSCALLS)], "action": action, "args": args}
    if err is not None:
        r["errnoRet"] = err
    return r


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rules(), min_size=1, max_size=4), ACTIONS)
def test_random_profiles_single_action_per_syscall(rs: list[dict[str, Any]],
                                                  default: tuple[str, int | None]) -> None:
    """Generated profiles where each syscall has one action and compiles to one libseccomp
    rule: libseccomp == resolver (operators, 64-bit values, masks, actions, defaults).

    Several libseccomp rules on one syscall are left to the nsjail test
    (tests/security/test_seccomp_equivalence.py): libseccomp 2.5.4 mis-merges some such sets,
    e.g. socket: (a0 == 0) OR ((a1 & 1) == 0 AND a0 != 1) answers the default for (0, 1), and
    personality: a2 <= 0 OR a2 < 2**32 answers the default for a2 == 1. nsjail's Kafel filter
    gets both right."""
    need_libseccomp()
    for name in {r["names"][0] for r in rs}:
        mine = [r for r in rs if r["names"][0] == name]
        assume(libseccomp_rules(mine) == 1)
    first: dict[str, tuple[str, Any]] = {}
    for r in rs:
        first.setdefault(r["names"][0], (r["action"], r.get("errnoRet")))
        r["action"], err = first[r["names"][0]]
        r.pop("errnoRet", None)
        if err is not None:
            r["errnoRet"] = err
    obj: dict[str, Any] = {"defaultAction": default[0],
                           "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}, *rs]}
    if default[1] is not None:
        obj["defaultErrnoRet"] = default[1]
    profile = _model.parse(obj)
    res = _resolve.resolve(profile, T)
    prog = _bpf.parse(_libseccomp.export_bpf(profile, T, timeout_s=10))
    for call in corpus(res):
        assert _bpf.normalize(_bpf.run(prog, call)) == expected(res, call), (
            json.dumps(obj), call)
