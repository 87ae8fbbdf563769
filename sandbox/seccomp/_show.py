"""`sandbox profile show FILE` (a readable summary) and `sandbox profile compile FILE --format`."""

from __future__ import annotations

import errno
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import assert_never

from sandbox.seccomp import _dangers, _kafel, _load, _model, _resolve, _syscalls
from sandbox.seccomp._model import Action, ArgCond, Op


class Format(StrEnum):
    KAFEL = "kafel"  # what nsjail enforces
    BPF = "bpf"  # libseccomp's raw struct sock_filter[] (native arch), what runc would load
    PFC = "pfc"  # libseccomp's readable pseudo filter code


def load_file(path: Path | str) -> tuple[str, _model.Profile]:
    name, p = _load.find_profile(str(path))
    return name, _model.loads(_load.read_profile(p), source=name)


def compile_profile(
    path: Path | str, fmt: Format, target: _resolve.Target | None = None
) -> str | bytes:
    name, profile = load_file(path)
    match fmt:
        case Format.KAFEL:
            return _kafel.to_kafel(_resolve.resolve_or_raise(profile, target), name=name)
        case Format.BPF:
            from sandbox.seccomp import _libseccomp

            _resolve.resolve_or_raise(profile, target)  # same errors as a run would give
            return _libseccomp.export_bpf(profile, target)
        case Format.PFC:
            from sandbox.seccomp import _libseccomp

            _resolve.resolve_or_raise(profile, target)
            return _libseccomp.export_pfc(profile, target)
        case _:
            assert_never(fmt)


def verdict_text(v: _resolve.Verdict) -> str:
    match v.action:
        case Action.ERRNO:
            return f"ERRNO({errno.errorcode.get(v.data, str(v.data))})"
        case Action.TRACE | Action.TRAP:
            return f"{v.action.name}({v.data})"
        case (
            Action.ALLOW | Action.LOG | Action.KILL | Action.KILL_THREAD | Action.KILL_PROCESS
            | Action.NOTIFY
        ):
            return v.action.name
        case _:
            assert_never(v.action)


def cond_text(c: ArgCond) -> str:
    a = f"arg{c.index}"
    match c.op:
        case Op.MASKED_EQ:
            return f"({a} & {c.value:#x}) == {c.value_two:#x}"
        case Op.EQ | Op.NE | Op.LT | Op.LE | Op.GT | Op.GE:
            sym = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}[c.op]
            return f"{a} {sym} {c.value:#x}"
        case _:
            assert_never(c.op)


def _wrap(words: list[str], indent: str = "    ") -> str:
    return textwrap.fill(" ".join(words), width=96, initial_indent=indent, subsequent_indent=indent)


def show(path: Path | str, target: _resolve.Target | None = None) -> str:
    name, profile = load_file(path)
    res = _resolve.resolve(profile, target)
    t = res.target
    out = [
        f"profile {name}  {profile.digest}",
        f"resolved for {t.arch}, kernel {t.kernel[0]}.{t.kernel[1]}, "
        f"capabilities: {', '.join(sorted(t.caps)) or 'none'}",
        f"default action: {verdict_text(res.default)}",
    ]
    unconditional: dict[str, list[str]] = {}
    conditional: list[str] = []
    for nr, entries in res.by_syscall().items():
        name_ = _syscalls.name_of(nr)
        if len(entries) == 1 and not entries[0].conds:
            unconditional.setdefault(verdict_text(entries[0].verdict), []).append(name_)
            continue
        for e in entries:
            when = " && ".join(cond_text(c) for c in e.conds) or "always"
            conditional.append(f"    {name_:<16} {verdict_text(e.verdict):<14} when {when}")
    for verdict, names in unconditional.items():
        out.append(f"{verdict} ({len(names)} syscalls):")
        out.append(_wrap(sorted(names)))
    if conditional:
        out.append("conditional (first matching line wins, else the default):")
        out += conditional
    denied, allowed = [], []
    for d in _dangers.DANGERS:
        v = _resolve.verdict_for(res, _syscalls.X86_64[d.name], d.args)
        if v.action in (Action.ALLOW, Action.LOG):
            allowed.append(f"    {d.label} [{d.tier}]: {d.reason}")
        else:
            denied.append(f"{d.label}={verdict_text(v)}")
    if denied:
        out.append("notable calls denied:")
        out.append(_wrap(denied))
    if allowed:
        out.append("DANGEROUS calls allowed:")
        out += allowed
    skipped = [n for n in res.notes if n.kind is _resolve.NoteKind.OTHER_ARCH]
    if skipped:
        out.append("not x86_64 syscalls (ignored here):")
        out.append(_wrap(sorted({x for n in skipped for x in n.names})))
    for n in res.notes:
        if n.kind is not _resolve.NoteKind.OTHER_ARCH:
            out.append(f"note: {n.path}: {n.message}")
    return "\n".join(out) + "\n"
