"""The profile model: Docker/OCI seccomp JSON parsed into frozen dataclasses.

The parser is strict and self-contained (no jsonschema on the hot path): every rejection is a
`ProfileError` naming the JSON path (`$.syscalls[3].args[0].op`), so a security team sees where
their file is wrong. `profiles/schema.json` describes the same format for editors and CI; the
lint command runs it too, and the unit tests keep the two in agreement over a broken corpus.

Accepted format: the OCI `linux.seccomp` object (defaultAction, defaultErrnoRet, architectures,
flags, listenerPath, listenerMetadata, syscalls[names, action, errnoRet, args[index, value,
valueTwo, op]]) plus Docker's archMap, per-rule comment, includes/excludes {arches, caps,
minKernel} and the deprecated single `name`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

from sandbox.errors import ProfileError

U64_MAX = (1 << 64) - 1
MAX_ARGS = 6


class Action(StrEnum):
    KILL = "SCMP_ACT_KILL"
    KILL_THREAD = "SCMP_ACT_KILL_THREAD"
    KILL_PROCESS = "SCMP_ACT_KILL_PROCESS"
    TRAP = "SCMP_ACT_TRAP"
    ERRNO = "SCMP_ACT_ERRNO"
    TRACE = "SCMP_ACT_TRACE"
    LOG = "SCMP_ACT_LOG"
    ALLOW = "SCMP_ACT_ALLOW"
    NOTIFY = "SCMP_ACT_NOTIFY"


class Op(StrEnum):
    NE = "SCMP_CMP_NE"
    LT = "SCMP_CMP_LT"
    LE = "SCMP_CMP_LE"
    EQ = "SCMP_CMP_EQ"
    GE = "SCMP_CMP_GE"
    GT = "SCMP_CMP_GT"
    MASKED_EQ = "SCMP_CMP_MASKED_EQ"


@dataclass(frozen=True)
class ArgCond:
    index: int
    value: int
    op: Op
    value_two: int = 0
    path: str = ""


@dataclass(frozen=True)
class Selector:
    """Docker's includes/excludes: a rule applies by architecture, capability, kernel."""

    arches: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None

    @property
    def empty(self) -> bool:
        return not self.arches and not self.caps and self.min_kernel is None


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: Action
    path: str
    errno_ret: int | None = None
    args: tuple[ArgCond, ...] = ()
    includes: Selector = Selector()
    excludes: Selector = Selector()
    comment: str = ""


@dataclass(frozen=True)
class ArchMapEntry:
    architecture: str
    sub_architectures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    default_action: Action
    syscalls: tuple[Rule, ...]
    digest: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    arch_map: tuple[ArchMapEntry, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str = ""
    source: str = "<profile>"


def canonical_json(obj: Any) -> str:
    """The canonical text the digest is computed over (sorted keys, no whitespace)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def loads(text: str | bytes, *, source: str = "<profile>") -> Profile:
    """Parse JSON text into a Profile; malformed JSON names line and column."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(
            f"{source}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{source}: not UTF-8 text: {e}") from e
    return parse(obj, source=source)


_TOP = {
    "defaultAction", "defaultErrnoRet", "architectures", "archMap", "flags", "listenerPath",
    "listenerMetadata", "syscalls",
}
_RULE = {"names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"}
_ARG = {"index", "value", "valueTwo", "op"}
_SEL = {"arches", "caps", "minKernel"}
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
}
_KERNEL_RE = re.compile(r"^(\d+)\.(\d+)$")


def _fail(path: str, source: str, msg: str) -> ProfileError:
    return ProfileError(f"{source}: {path}: {msg}")


def _obj(v: Any, path: str, source: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(path, source, f"expected an object, got {type(v).__name__}")
    for k in v:
        if k not in allowed:
            known = ", ".join(sorted(allowed))
            raise _fail(f"{path}.{k}", source, f"unknown field (allowed: {known})")
    return v


def _uint(v: Any, path: str, source: str, limit: int = U64_MAX) -> int:
    # bool is an int in Python; a JSON true is not a number.
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limit:
        raise _fail(path, source, f"expected an integer in 0..{limit}, got {v!r}")
    return v


def _strs(v: Any, path: str, source: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _fail(path, source, "expected a list of strings")
    return tuple(v)


def _enum[E: StrEnum](cls: type[E], v: Any, path: str, source: str) -> E:
    try:
        return cls(v)
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise _fail(path, source, f"unknown value {v!r} (expected one of: {choices})") from None


def _selector(v: Any, path: str, source: str) -> Selector:
    d = _obj(v, path, source, _SEL)
    mk: tuple[int, int] | None = None
    if "minKernel" in d:
        m = _KERNEL_RE.match(str(d["minKernel"])) if isinstance(d["minKernel"], str) else None
        if m is None:
            got = d["minKernel"]
            raise _fail(f"{path}.minKernel", source, f'expected "MAJOR.MINOR", got {got!r}')
        mk = (int(m[1]), int(m[2]))
    return Selector(
        arches=_strs(d.get("arches", []), f"{path}.arches", source),
        caps=_strs(d.get("caps", []), f"{path}.caps", source),
        min_kernel=mk,
    )


def _arg(v: Any, path: str, source: str) -> ArgCond:
    d = _obj(v, path, source, _ARG)
    for req in ("index", "value", "op"):
        if req not in d:
            raise _fail(path, source, f"missing required field {req!r}")
    cond = ArgCond(
        index=_uint(d["index"], f"{path}.index", source, MAX_ARGS - 1),
        value=_uint(d["value"], f"{path}.value", source),
        value_two=_uint(d.get("valueTwo", 0), f"{path}.valueTwo", source),
        op=_enum(Op, d["op"], f"{path}.op", source),
        path=path,
    )
    _check_possible(cond, source)
    return cond


def _check_possible(c: ArgCond, source: str) -> None:
    """Reject conditions no 64-bit value can satisfy: such a rule is a mistake, never intent."""
    why = impossible_reason(c)
    if why is not None:
        raise _fail(c.path, source, f"impossible condition: {why}")


def impossible_reason(c: ArgCond) -> str | None:
    """Why no unsigned 64-bit argument can satisfy `c`, or None when some value can."""
    why = None
    match c.op:
        case Op.MASKED_EQ:
            if c.value_two & ~c.value & U64_MAX:
                why = (
                    f"(arg & {c.value:#x}) == {c.value_two:#x} can never match: valueTwo has "
                    f"bits outside the mask ({c.value_two & ~c.value & U64_MAX:#x})"
                )
        case Op.LT:
            if c.value == 0:
                why = "arg < 0 can never match (arguments are unsigned 64-bit)"
        case Op.GT:
            if c.value == U64_MAX:
                why = f"arg > {U64_MAX:#x} can never match (arguments are unsigned 64-bit)"
        case Op.NE | Op.LE | Op.EQ | Op.GE:
            pass
        case _:
            assert_never(c.op)
    return why


def _rule(v: Any, path: str, source: str) -> Rule:
    d = _obj(v, path, source, _RULE)
    if "action" not in d:
        raise _fail(path, source, "missing required field 'action'")
    names: tuple[str, ...] = ()
    if "names" in d:
        names = _strs(d["names"], f"{path}.names", source)
    if "name" in d:
        if not isinstance(d["name"], str):
            raise _fail(f"{path}.name", source, "expected a string")
        names = (*names, d["name"])
    if not names:
        raise _fail(path, source, "a rule needs a non-empty 'names' list")
    for i, n in enumerate(names):
        if not n:
            raise _fail(f"{path}.names[{i}]", source, "empty syscall name")
    args_v = d.get("args") or []
    if not isinstance(args_v, list):
        raise _fail(f"{path}.args", source, "expected a list")
    comment = d.get("comment", "")
    if not isinstance(comment, str):
        raise _fail(f"{path}.comment", source, "expected a string")
    errno_ret = d.get("errnoRet")
    return Rule(
        names=names,
        action=_enum(Action, d["action"], f"{path}.action", source),
        path=path,
        errno_ret=None if errno_ret is None else _uint(errno_ret, f"{path}.errnoRet", source, 4095),
        args=tuple(_arg(a, f"{path}.args[{i}]", source) for i, a in enumerate(args_v)),
        includes=_selector(d.get("includes", {}), f"{path}.includes", source),
        excludes=_selector(d.get("excludes", {}), f"{path}.excludes", source),
        comment=comment,
    )


def parse(obj: Any, *, source: str = "<profile>") -> Profile:
    d = _obj(obj, "$", source, _TOP)
    if "defaultAction" not in d:
        raise _fail("$", source, "missing required field 'defaultAction'")
    arch_map = d.get("archMap") or []
    if not isinstance(arch_map, list):
        raise _fail("$.archMap", source, "expected a list")
    entries = []
    for i, e in enumerate(arch_map):
        p = f"$.archMap[{i}]"
        ed = _obj(e, p, source, {"architecture", "subArchitectures"})
        if not isinstance(ed.get("architecture"), str):
            raise _fail(f"{p}.architecture", source, "expected a string")
        subs = _strs(ed.get("subArchitectures") or [], f"{p}.subArchitectures", source)
        entries.append(ArchMapEntry(ed["architecture"], subs))
    flags = _strs(d.get("flags") or [], "$.flags", source)
    for i, f in enumerate(flags):
        if f not in _FLAGS:
            raise _fail(f"$.flags[{i}]", source, f"unknown flag {f!r}")
    rules_v = d.get("syscalls") or []
    if not isinstance(rules_v, list):
        raise _fail("$.syscalls", source, "expected a list")
    listener = d.get("listenerPath", "")
    if not isinstance(listener, str):
        raise _fail("$.listenerPath", source, "expected a string")
    der = d.get("defaultErrnoRet")
    return Profile(
        default_action=_enum(Action, d["defaultAction"], "$.defaultAction", source),
        default_errno_ret=None if der is None else _uint(der, "$.defaultErrnoRet", source, 4095),
        architectures=_strs(d.get("architectures") or [], "$.architectures", source),
        arch_map=tuple(entries),
        flags=flags,
        listener_path=listener,
        syscalls=tuple(_rule(r, f"$.syscalls[{i}]", source) for i, r in enumerate(rules_v)),
        digest=digest_of(obj),
        source=source,
    )
