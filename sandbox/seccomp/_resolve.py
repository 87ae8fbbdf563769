"""Resolve a profile for one sandbox: which rules apply, to which syscall numbers, in what order.

Semantics follow runc and Docker exactly, so a profile behaves here as it does there:
- includes/excludes (Docker): excluded if the arch is listed in excludes.arches, if ANY of
  excludes.caps is held, or if the kernel is >= excludes.minKernel; included only if the arch is
  in includes.arches (when given), ALL includes.caps are held, and the kernel is >=
  includes.minKernel. The sandbox holds no capabilities and runs x86_64 ("amd64").
- a rule whose action equals the default action is ignored (libseccomp refuses it; runc skips it).
- arguments (runc): if no two conditions share an index, they are AND'ed in one rule; if any index
  repeats, runc adds every condition as a separate rule, i.e. ALL of them are OR'ed. Lint warns
  about the surprising case of a repeated index mixed with other indexes.
- precedence for one syscall (libseccomp): the first unconditional rule wins over every other rule
  of that syscall, earlier or later; conditional rules are tried in order (first match wins in
  Kafel). Conditional rules with different actions whose conditions overlap have no portable
  meaning; lint warns about them.
- names: libseccomp names; a name that is not a native x86_64 syscall but known on another
  architecture is skipped with a note (never silently: the note is listed by lint/show and in the
  Kafel header); an unknown name is an error with suggestions.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from enum import StrEnum
from typing import assert_never

from sandbox.errors import ProfileError
from sandbox.seccomp import _syscalls
from sandbox.seccomp._model import Action, ArgCond, Op, Profile, Rule, Selector
from sandbox.seccomp._target import Target as Target  # re-exported: callers use _resolve.Target
from sandbox.seccomp._target import kernel_version as kernel_version

# Docker compares includes/excludes arches with Go's GOARCH; accept libseccomp's spellings too.
_X86_64_ALIASES = frozenset({"amd64", "x86_64", "SCMP_ARCH_X86_64"})




@dataclass(frozen=True)
class Verdict:
    """An action with its 16-bit data (errno for ERRNO, the tracer's value for TRACE)."""

    action: Action
    data: int = 0

    def same_as(self, other: Verdict) -> bool:
        return self.ret() == other.ret()

    def ret(self) -> int:
        """The SECCOMP_RET_* value the kernel sees (KILL and KILL_THREAD are one value)."""
        return action_ret(self.action, self.data)


def action_ret(action: Action, data: int = 0) -> int:
    match action:
        case Action.KILL | Action.KILL_THREAD:
            return 0x00000000
        case Action.KILL_PROCESS:
            return 0x80000000
        case Action.TRAP:
            return 0x00030000 | (data & 0xFFFF)
        case Action.ERRNO:
            return 0x00050000 | (data & 0xFFFF)
        case Action.TRACE:
            return 0x7FF00000 | (data & 0xFFFF)
        case Action.LOG:
            return 0x7FFC0000
        case Action.ALLOW:
            return 0x7FFF0000
        case Action.NOTIFY:
            return 0x7FC00000
        case _:
            assert_never(action)


class NoteKind(StrEnum):
    UNKNOWN_NAME = "unknown-name"  # error
    OTHER_ARCH = "other-arch"  # skipped: not a native x86_64 call
    NOT_SELECTED = "not-selected"  # includes/excludes leave it out for the sandbox
    SAME_AS_DEFAULT = "same-as-default"  # ignored like runc does
    SHADOWED = "shadowed"  # an unconditional rule for the same syscall wins
    CONFLICT = "conflict"  # conditional rules with different actions
    OR_ALL = "or-all"  # repeated index mixed with other indexes: runc ORs every condition


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    path: str
    message: str
    names: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.kind is NoteKind.UNKNOWN_NAME


@dataclass(frozen=True)
class Entry:
    """One filter rule: syscall `nr` gets `verdict` when all `conds` hold (none: always)."""

    nr: int
    name: str
    verdict: Verdict
    conds: tuple[ArgCond, ...]
    path: str


@dataclass(frozen=True)
class Resolved:
    default: Verdict
    entries: tuple[Entry, ...]  # grouped by syscall (first appearance), in first-match order
    notes: tuple[Note, ...]
    digest: str
    target: Target = field(default_factory=Target)

    @property
    def errors(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.is_error)

    def by_syscall(self) -> dict[int, list[Entry]]:
        out: dict[int, list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e.nr, []).append(e)
        return out


def rule_verdict(rule: Rule) -> Verdict:
    return _verdict(rule.action, rule.errno_ret)


def _verdict(action: Action, errno_ret: int | None) -> Verdict:
    # runc: ERRNO and TRACE without errnoRet return EPERM.
    match action:
        case Action.ERRNO | Action.TRACE:
            return Verdict(action, errno.EPERM if errno_ret is None else errno_ret)
        case (
            Action.KILL | Action.KILL_THREAD | Action.KILL_PROCESS | Action.TRAP | Action.LOG
            | Action.ALLOW | Action.NOTIFY
        ):
            return Verdict(action)
        case _:
            assert_never(action)


def default_verdict(profile: Profile) -> Verdict:
    return _verdict(profile.default_action, profile.default_errno_ret)


def selected(rule: Rule, target: Target) -> bool:
    """Docker's includes/excludes test for this target."""
    arch_names = _X86_64_ALIASES if target.arch in _X86_64_ALIASES else {target.arch}

    def has_arch(sel: Selector) -> bool:
        return any(a in arch_names for a in sel.arches)

    ex, inc = rule.excludes, rule.includes
    if ex.arches and has_arch(ex):
        return False
    if any(c in target.caps for c in ex.caps):
        return False
    if ex.min_kernel is not None and target.kernel >= ex.min_kernel:
        return False
    if inc.arches and not has_arch(inc):
        return False
    if inc.caps and not all(c in target.caps for c in inc.caps):
        return False
    return not (inc.min_kernel is not None and target.kernel < inc.min_kernel)


def _split_conditions(rule: Rule) -> tuple[tuple[ArgCond, ...], ...]:
    if not rule.args:
        return ((),)
    indexes = [a.index for a in rule.args]
    if len(set(indexes)) != len(indexes):
        return tuple((a,) for a in rule.args)
    return (rule.args,)


def resolve(profile: Profile, target: Target | None = None) -> Resolved:
    """Apply includes/excludes, names, runc's argument rule and libseccomp's precedence."""
    tgt = target or Target.host()
    default = default_verdict(profile)
    notes: list[Note] = []
    per_nr: dict[int, list[Entry]] = {}
    for rule in profile.syscalls:
        if not selected(rule, tgt):
            notes.append(Note(NoteKind.NOT_SELECTED, rule.path,
                              f"not applied for {tgt.arch}, kernel "
                              f"{tgt.kernel[0]}.{tgt.kernel[1]}, "
                              f"capabilities {sorted(tgt.caps) or 'none'}", rule.names))
            continue
        verdict = rule_verdict(rule)
        if verdict.same_as(default):
            notes.append(Note(NoteKind.SAME_AS_DEFAULT, rule.path,
                              "same action as the default: has no effect", rule.names))
            continue
        groups = _split_conditions(rule)
        if len(groups) > 1 and len({a.index for a in rule.args}) > 1:
            notes.append(Note(NoteKind.OR_ALL, rule.path,
                              "an argument index repeats, so (as in runc) every condition of this "
                              "rule is OR'ed, including those on other indexes", rule.names))
        other_arch: list[str] = []
        for i, name in enumerate(rule.names):
            nr = _syscalls.number(name)
            if nr is None:
                if _syscalls.is_known(name):
                    other_arch.append(name)
                    continue
                hint = _syscalls.suggest(name)
                msg = f"unknown syscall {name!r}" + (
                    f" (did you mean {', '.join(hint)}?)" if hint else ""
                )
                notes.append(Note(NoteKind.UNKNOWN_NAME, f"{rule.path}.names[{i}]", msg, (name,)))
                continue
            for conds in groups:
                _add(per_nr, Entry(nr, name, verdict, conds, rule.path), notes)
        if other_arch:
            notes.append(Note(NoteKind.OTHER_ARCH, rule.path,
                              "not x86_64 syscalls, skipped: " + ", ".join(other_arch),
                              tuple(other_arch)))
    entries = tuple(e for lst in per_nr.values() for e in lst)
    return Resolved(default, entries, tuple(notes), profile.digest, tgt)


def _add(per_nr: dict[int, list[Entry]], new: Entry, notes: list[Note]) -> None:
    lst = per_nr.setdefault(new.nr, [])
    winner = next((e for e in lst if not e.conds), None)
    if winner is not None:
        if not winner.verdict.same_as(new.verdict):
            notes.append(Note(NoteKind.SHADOWED, new.path,
                              f"{new.name}: the unconditional rule at {winner.path} wins",
                              (new.name,)))
        return
    if not new.conds:
        for e in lst:
            if not e.verdict.same_as(new.verdict):
                notes.append(Note(NoteKind.SHADOWED, e.path,
                                  f"{e.name}: the unconditional rule at {new.path} wins",
                                  (e.name,)))
        lst[:] = [new]
        return
    for e in lst:
        if not e.verdict.same_as(new.verdict):
            notes.append(Note(NoteKind.CONFLICT, new.path,
                              f"{new.name}: conditional rules with different actions (also "
                              f"{e.path}); where both match, the first listed wins here",
                              (new.name,)))
            break
    lst.append(new)


def resolve_or_raise(profile: Profile, target: Target | None = None) -> Resolved:
    res = resolve(profile, target)
    errs = res.errors
    if errs:
        lines = [f"{profile.source}: {n.path}: {n.message}" for n in errs]
        raise ProfileError("\n".join(lines))
    for e in res.entries:
        if e.verdict.action is Action.NOTIFY:
            raise ProfileError(
                f"{profile.source}: {e.path}: SCMP_ACT_NOTIFY needs a user-notification "
                "listener, which the sandbox does not provide",
                hint="use SCMP_ACT_ERRNO or SCMP_ACT_LOG",
            )
    execve = _syscalls.X86_64["execve"]
    if verdict_for(res, execve).action not in (Action.ALLOW, Action.LOG):
        raise ProfileError(
            f"{profile.source}: execve is not allowed, so no command could start (the sandbox "
            "installs the filter right before it executes the command)",
            hint='add "execve" to an SCMP_ACT_ALLOW rule',
        )
    if res.default.action is Action.NOTIFY:
        raise ProfileError(
            f"{profile.source}: $.defaultAction: SCMP_ACT_NOTIFY is not supported by the sandbox"
        )
    return res



def cond_holds(c: ArgCond, args: tuple[int, ...]) -> bool:
    """One runc/libseccomp comparison, unsigned 64-bit."""
    v = args[c.index] & ((1 << 64) - 1)
    match c.op:
        case Op.EQ:
            return v == c.value
        case Op.NE:
            return v != c.value
        case Op.LT:
            return v < c.value
        case Op.LE:
            return v <= c.value
        case Op.GT:
            return v > c.value
        case Op.GE:
            return v >= c.value
        case Op.MASKED_EQ:
            return (v & c.value) == c.value_two
        case _:
            assert_never(c.op)


def verdict_for(res: Resolved, nr: int, args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)) -> Verdict:
    """What the resolved profile answers for one native call (first matching entry wins)."""
    padded = (*args, 0, 0, 0, 0, 0, 0)[:6]
    for e in res.entries:
        if e.nr == nr and all(cond_holds(c, padded) for c in e.conds):
            return e.verdict
    return res.default
