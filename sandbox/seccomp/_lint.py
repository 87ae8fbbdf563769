"""`sandbox profile lint FILE`: every problem of a profile, located by JSON path.

Errors (exit 1): malformed JSON, schema violations, impossible conditions, unknown syscall names
(with suggestions), a default action that allows, a profile that denies execve (nothing could
start under it), SCMP_ACT_NOTIFY (no listener in the sandbox). Warnings: dangerous calls the
profile allows, by tier and with the reason; rules identical to the default; rules shadowed by
an unconditional rule; conditional rules with different actions; a repeated argument index mixed
with others (runc then ORs every condition); socketcall allowed. Info: names skipped for the
architecture and rules left out by includes/excludes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, assert_never

from sandbox.errors import ProfileError
from sandbox.seccomp import _dangers, _model, _resolve, _syscalls
from sandbox.seccomp._model import Action, ArgCond, Op


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    path: str
    message: str
    tier: str | None = None
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class LintReport:
    source: str
    findings: tuple[Finding, ...]
    digest: str | None = None
    schema_checked: bool = True

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def count(self, sev: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is sev)

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "source": self.source, "digest": self.digest, "ok": self.ok,
            "errors": self.count(Severity.ERROR), "warnings": self.count(Severity.WARNING),
            "schema_checked": self.schema_checked,
            "findings": [asdict(f) for f in self.findings],
        }
        return json.dumps(d, indent=2)

    def render(self) -> str:
        lines = []
        for f in self.findings:
            tier = f" [{f.tier}]" if f.tier else ""
            hint = f" (did you mean {', '.join(f.suggestions)}?)" if f.suggestions else ""
            lines.append(f"{self.source}: {f.path}: {f.severity}{tier}: {f.message}{hint}")
        e, w = self.count(Severity.ERROR), self.count(Severity.WARNING)
        lines.append(f"{self.source}: {e} error(s), {w} warning(s)")
        return "\n".join(lines)


@cache
def _schema_validator() -> Any | None:
    # Cached: building the validator parses the schema; it is immutable once built.
    try:
        import jsonschema  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    path = schema_path()
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


def schema_path() -> Path:
    """profiles/schema.json, found where the shipped profiles are (repo or install)."""
    from sandbox.seccomp._load import profile_dirs

    for d in profile_dirs():
        if (d / "schema.json").is_file():
            return d / "schema.json"
    raise ProfileError("profiles/schema.json not found next to the shipped profiles")


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def lint_file(path: Path | str) -> LintReport:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ProfileError(f"cannot read {p}: {e.strerror}") from e
    return lint_bytes(raw, source=str(p))


def lint_bytes(raw: bytes, *, source: str, target: _resolve.Target | None = None) -> LintReport:
    findings: list[Finding] = []
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        findings.append(Finding(Severity.ERROR, "json", where or "$", f"malformed JSON: {e}"))
        return LintReport(source, tuple(findings))
    validator = _schema_validator()
    if validator is not None:
        errors = sorted(validator.iter_errors(obj), key=lambda x: list(map(str, x.absolute_path)))
        for err in errors:
            findings.append(Finding(Severity.ERROR, "schema", _json_path(err.absolute_path),
                                    err.message))
    findings += _impossible(obj)
    try:
        profile = _model.parse(obj, source=source)
    except ProfileError as e:
        reported = {f.path for f in findings}
        msg = e.message.removeprefix(f"{source}: ")
        path, _, rest = msg.partition(": ")
        if path not in reported:
            findings.append(Finding(Severity.ERROR, "parse", path, rest or msg))
        return LintReport(source, tuple(findings), None, validator is not None)
    findings += _semantic(profile, _resolve.resolve(profile, target))
    return LintReport(source, tuple(findings), profile.digest, validator is not None)


def _impossible(obj: Any) -> list[Finding]:
    """Every never-matching condition (the parser stops at the first)."""
    out: list[Finding] = []
    rules = obj.get("syscalls") if isinstance(obj, dict) else None
    for i, r in enumerate(rules if isinstance(rules, list) else []):
        args = r.get("args") if isinstance(r, dict) else None
        for j, a in enumerate(args if isinstance(args, list) else []):
            try:
                cond = ArgCond(index=int(a["index"]), value=int(a["value"]), op=Op(a["op"]),
                               value_two=int(a.get("valueTwo", 0)))
            except (KeyError, ValueError, TypeError):
                continue  # malformed: the schema reports it
            why = _model.impossible_reason(cond)
            if why is not None:
                code = "masked-eq-never-matches" if cond.op is Op.MASKED_EQ else "impossible"
                out.append(Finding(Severity.ERROR, code, f"$.syscalls[{i}].args[{j}]", why))
    return out


def _note_finding(n: _resolve.Note) -> Finding:
    k = _resolve.NoteKind
    match n.kind:
        case k.UNKNOWN_NAME:
            return Finding(Severity.ERROR, n.kind, n.path, f"unknown syscall {n.names[0]!r}",
                           suggestions=tuple(_syscalls.suggest(n.names[0])))
        case k.SAME_AS_DEFAULT:
            return Finding(Severity.WARNING, n.kind, n.path,
                           "rule identical to the default action: it has no effect "
                           f"({', '.join(n.names[:5])}{'...' if len(n.names) > 5 else ''})")
        case k.SHADOWED | k.CONFLICT | k.OR_ALL:
            return Finding(Severity.WARNING, n.kind, n.path, n.message)
        case k.OTHER_ARCH | k.NOT_SELECTED:
            return Finding(Severity.INFO, n.kind, n.path, n.message)
        case _:
            assert_never(n.kind)


def _allows(v: _resolve.Verdict) -> bool:
    return v.action in (Action.ALLOW, Action.LOG)


def _semantic(profile: _model.Profile, res: _resolve.Resolved) -> list[Finding]:
    out = [_note_finding(n) for n in res.notes]
    if _allows(res.default):
        out.append(Finding(Severity.ERROR, "default-allows", "$.defaultAction",
                           f"default action {profile.default_action.value} allows every call "
                           "not listed, including syscalls added by future kernels; use "
                           "SCMP_ACT_ERRNO and list what is allowed"))
    for path, action in [(r.path, r.action) for r in profile.syscalls] + [
        ("$.defaultAction", profile.default_action)
    ]:
        if action is Action.NOTIFY:
            out.append(Finding(Severity.ERROR, "notify", path,
                               "SCMP_ACT_NOTIFY needs a listener the sandbox does not provide"))
    execve = _syscalls.X86_64["execve"]
    if not _allows(_resolve.verdict_for(res, execve)):
        out.append(Finding(Severity.ERROR, "execve-denied", "$.syscalls",
                           "execve is not allowed: the sandbox installs the filter right before "
                           "it executes the command, so nothing could start"))
    for d in _dangers.DANGERS:
        nr = _syscalls.X86_64[d.name]
        v = _resolve.verdict_for(res, nr, d.args)
        if _allows(v):
            out.append(Finding(Severity.WARNING, "dangerous-allow", _where(res, nr, d.args),
                               f"{d.label} is allowed: {d.reason}", tier=d.tier.value))
    for r in profile.syscalls:
        for name, why in _dangers.MULTIPLEXERS.items():
            if name in r.names and _allows(_resolve.rule_verdict(r)):
                out.append(Finding(Severity.WARNING, "dangerous-allow", r.path,
                                   f"{name} is allowed: {why}", tier=_dangers.Tier.MEDIUM.value))
    return out


def _where(res: _resolve.Resolved, nr: int, args: tuple[int, ...]) -> str:
    padded = (*args, 0, 0, 0, 0, 0, 0)[:6]
    for e in res.entries:
        if e.nr == nr and all(_resolve.cond_holds(c, padded) for c in e.conds):
            return e.path
    return "$.defaultAction"

