"""Translate a resolved profile into Kafel, the policy language nsjail compiles (`seccomp_string`).

Choices that keep the Kafel filter equivalent to libseccomp's compilation of the same JSON:
- Kafel takes the first matching rule. Per syscall we emit the resolved entries in order, as
  runs of equal verdicts; run k of every syscall goes into the k-th group of action blocks, so the
  first-match order inside one syscall is preserved and different syscalls never interact.
- Conditional rules are written `SYSCALL[nr](a0, ...)` with the name in a comment: Kafel sizes a
  *named* syscall's arguments from its table (an `int` is compared on its low 32 bits), while a
  numbered syscall's arguments are 64-bit, as runc and libseccomp compare them.
- Unconditional rules use Kafel's names (see `_syscalls.kafel_name`); the few without a Kafel
  identifier are written by number. Names skipped for the architecture are listed in the header
  comment, so nothing disappears without a trace.
"""

from __future__ import annotations

from typing import assert_never

from sandbox.errors import ProfileError
from sandbox.seccomp import _syscalls
from sandbox.seccomp._model import Action, ArgCond, Op
from sandbox.seccomp._resolve import Entry, NoteKind, Resolved, Verdict

POLICY_NAME = "sandbox_profile"


def kafel_action(v: Verdict) -> str:
    match v.action:
        case Action.ALLOW:
            return "ALLOW"
        case Action.LOG:
            return "LOG"
        case Action.KILL | Action.KILL_THREAD:
            return "KILL"
        case Action.KILL_PROCESS:
            return "KILL_PROCESS"
        case Action.ERRNO:
            return f"ERRNO({v.data})"
        case Action.TRAP:
            return f"TRAP({v.data})"
        case Action.TRACE:
            return f"TRACE({v.data})"
        case Action.NOTIFY:
            raise ProfileError("SCMP_ACT_NOTIFY cannot be enforced by nsjail (no listener)")
        case _:
            assert_never(v.action)


def _cond(c: ArgCond) -> str:
    a = f"a{c.index}"
    match c.op:
        case Op.EQ:
            return f"{a} == {c.value:#x}"
        case Op.NE:
            return f"{a} != {c.value:#x}"
        case Op.LT:
            return f"{a} < {c.value:#x}"
        case Op.LE:
            return f"{a} <= {c.value:#x}"
        case Op.GT:
            return f"{a} > {c.value:#x}"
        case Op.GE:
            return f"{a} >= {c.value:#x}"
        case Op.MASKED_EQ:
            return f"({a} & {c.value:#x}) == {c.value_two:#x}"
        case _:
            assert_never(c.op)


def _and(conds: tuple[ArgCond, ...]) -> str:
    return " && ".join(_cond(c) for c in conds)


def _run_rule(nr: int, name: str, groups: list[tuple[ArgCond, ...]]) -> str:
    if any(not g for g in groups):
        kname = _syscalls.kafel_name(name)
        return kname if kname is not None else f"SYSCALL[{nr}] /* {name} */"
    nargs = 1 + max(c.index for g in groups for c in g)
    params = ", ".join(f"a{i}" for i in range(nargs))
    body = _and(groups[0]) if len(groups) == 1 else " || ".join(f"({_and(g)})" for g in groups)
    return f"SYSCALL[{nr}]({params}) {{ {body} }} /* {name} */"


def _runs(entries: list[Entry]) -> list[tuple[Verdict, list[tuple[ArgCond, ...]]]]:
    """Consecutive entries with the same verdict, merged (an OR of their conditions)."""
    runs: list[tuple[Verdict, list[tuple[ArgCond, ...]]]] = []
    for e in entries:
        if runs and runs[-1][0].same_as(e.verdict):
            runs[-1][1].append(e.conds)
        else:
            runs.append((e.verdict, [e.conds]))
    return runs


def to_kafel(res: Resolved, *, name: str = "") -> str:
    # rank -> verdict-ret -> (verdict, rules); dicts keep insertion order, so output is stable.
    ranks: list[dict[int, tuple[Verdict, list[str]]]] = []
    for nr, entries in res.by_syscall().items():
        sname = entries[0].name
        for k, (verdict, groups) in enumerate(_runs(entries)):
            if len(ranks) <= k:
                ranks.append({})
            block = ranks[k].setdefault(verdict.ret(), (verdict, []))
            block[1].append(_run_rule(nr, sname, groups))
    t = res.target
    header = [
        f"// sandbox seccomp profile {name or '(unnamed)'} {res.digest}",
        f"// resolved for {t.arch}, kernel {t.kernel[0]}.{t.kernel[1]}, "
        f"capabilities: {', '.join(sorted(t.caps)) or 'none'}",
    ]
    skipped = sorted(
        {n for note in res.notes if note.kind is NoteKind.OTHER_ARCH for n in note.names}
    )
    if skipped:
        header.append("// not x86_64 syscalls (skipped): " + ", ".join(skipped))
    blocks: list[str] = []
    for rank in ranks:
        for verdict, rules in rank.values():
            body = ",\n".join(f"    {r}" for r in rules)
            blocks.append(f"  {kafel_action(verdict)} {{\n{body}\n  }}")
    policy = f"POLICY {POLICY_NAME} {{\n" + ",\n".join(blocks) + "\n}" if blocks else (
        f"POLICY {POLICY_NAME} {{ }}"
    )
    use = f"USE {POLICY_NAME} DEFAULT {kafel_action(res.default)}"
    return "\n".join([*header, policy, use, ""])
