"""`sandbox profile test FILE -- CMD` and `sandbox profile record -- CMD`.

Mechanism (works as root and unprivileged): the profile is rewritten into a *tracing variant*
where every verdict that is not ALLOW/LOG becomes `TRACE(code)` (code -> the original verdict);
for record, ALLOW becomes `TRACE(ALLOW_CODE)` too. The caller's `Launch` runs CMD exactly as
`sandbox run` would (same backend, snapshot, hide list, mounts, network, limits; see
sandbox._profiling) under that variant, with a host-side tracer (sandbox.seccomp._tracer) in
front of nsjail that follows nsjail and every descendant. At each seccomp stop the tracer counts
the call and then applies the original verdict itself: ERRNO(e) -> the call is skipped and
returns -e; KILL* -> the process is killed (SIGKILL: exit 137, where the kernel would report
SIGSYS); TRAP -> SIGSYS; TRACE -> ENOSYS (no tracer in a real run); ALLOW -> continues. So CMD
sees exactly what it would see under the profile, and the author gets names and counts.

record: records under a base profile (`default` unless told otherwise), so recording never
grants what the base denies; attempts the base denies are reported and left out. The output is
a deny-by-default allowlist of the calls used, the base's conditions for conditional calls
(clone's namespace mask, socket families...) restricted to the rules that matched, plus what
the runtime itself needs (execve, exit, signals' return, clone3 -> ENOSYS so libc falls back).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, assert_never

from sandbox.backends._base import Seccomp
from sandbox.errors import EnforcementError
from sandbox.seccomp import _kafel, _model, _ptrace, _resolve, _syscalls
from sandbox.seccomp._model import Action
from sandbox.seccomp._resolve import Entry, Resolved, Verdict

ALLOW_CODE = 0xFFFF
BASE_RUNTIME = ("execve", "exit", "exit_group", "rt_sigreturn", "restart_syscall")


@dataclass(frozen=True)
class Denial:
    name: str
    nr: int
    verdict: str
    count: int


@dataclass(frozen=True)
class _Code:
    verdict: Verdict
    # an explicit rule answering ENOSYS (clone3 in `default`): libc falls back by design, so the
    # call is reported apart and does not fail the test
    fallback: bool


@dataclass(frozen=True)
class TestReport:
    __test__ = False  # not a pytest class

    profile: str
    digest: str
    exit_code: int
    denials: tuple[Denial, ...]
    fallbacks: tuple[Denial, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.denials

    def render(self) -> str:
        if not self.denials:
            lines = [f"profile {self.profile}: no call denied (command exit {self.exit_code})"]
        else:
            lines = [f"profile {self.profile}: {len(self.denials)} syscall(s) denied "
                     f"(command exit {self.exit_code}):"]
            lines += [f"  {d.name:<20} {d.count:>6}x  {d.verdict}" for d in self.denials]
        if self.fallbacks:
            lines.append("answered ENOSYS by an explicit rule (libc falls back; not a failure):")
            lines += [f"  {d.name:<20} {d.count:>6}x  {d.verdict}" for d in self.fallbacks]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({
            "profile": self.profile, "digest": self.digest, "exit_code": self.exit_code,
            "passed": self.passed,
            "denied": [{"name": d.name, "nr": d.nr, "action": d.verdict, "count": d.count}
                       for d in self.denials],
            "fallbacks": [{"name": d.name, "nr": d.nr, "action": d.verdict, "count": d.count}
                          for d in self.fallbacks],
        }, indent=2)


def _variant(res: Resolved, *, record: bool) -> tuple[Resolved, dict[int, _Code]]:
    codes: dict[int, _Code] = {}
    by_key: dict[_Code, int] = {}

    def tr(v: Verdict, *, default: bool = False) -> Verdict:
        if v.action in (Action.ALLOW, Action.LOG):
            return Verdict(Action.TRACE, ALLOW_CODE) if record else v
        fallback = not default and v.action is Action.ERRNO and v.data == errno.ENOSYS
        key = _Code(Verdict(v.action, v.data), fallback)
        code = by_key.setdefault(key, len(by_key) + 1)
        codes[code] = key
        return Verdict(Action.TRACE, code)

    entries = tuple(replace(e, verdict=tr(e.verdict)) for e in res.entries)
    return replace(res, entries=entries, default=tr(res.default, default=True)), codes


@dataclass
class _Recorder:
    """Mutable per-run tally (lives only for one traced run)."""

    codes: dict[int, _Code]
    denied: Counter[tuple[int, int]]  # (nr, code) -> count
    used: dict[int, list[tuple[int, ...]]]

    def on_seccomp(self, pt: _ptrace.Ptrace, pid: int) -> None:
        sc = pt.syscall(pid)
        if sc.data == ALLOW_CODE:
            seen = self.used.setdefault(sc.nr, [])
            if len(seen) < 64 and sc.args not in seen:
                seen.append(sc.args)
            return
        code = self.codes.get(sc.data, _Code(Verdict(Action.ERRNO, errno.ENOSYS), False))
        self.denied[(sc.nr, sc.data)] += 1
        _apply(pt, pid, code.verdict)

    def to_json(self) -> dict[str, Any]:
        return {"denied": [[nr, code, n] for (nr, code), n in self.denied.items()],
                "used": {str(nr): [list(a) for a in calls] for nr, calls in self.used.items()}}

    @classmethod
    def from_json(cls, codes: dict[int, _Code], data: dict[str, Any]) -> _Recorder:
        denied: Counter[tuple[int, int]] = Counter()
        for nr, code, n in data["denied"]:
            denied[(int(nr), int(code))] += int(n)
        used = {int(nr): [tuple(int(x) for x in a) for a in calls]
                for nr, calls in data["used"].items()}
        return cls(codes, denied, used)

    def tally(self, *, fallback: bool) -> tuple[Denial, ...]:
        out = [Denial(_syscalls.name_of(nr), nr, _describe(self.codes[code].verdict), n)
               for (nr, code), n in self.denied.items()
               if code in self.codes and self.codes[code].fallback is fallback]
        return tuple(sorted(out, key=lambda d: (-d.count, d.name)))


def _apply(pt: _ptrace.Ptrace, pid: int, v: Verdict) -> None:
    match v.action:
        case Action.ERRNO:
            pt.fail_syscall(pid, v.data)
        case Action.TRACE | Action.NOTIFY:
            pt.fail_syscall(pid, errno.ENOSYS)  # what a real run returns without a tracer
        case Action.TRAP:
            pt.fail_syscall(pid, errno.ENOSYS)
            os.kill(pid, signal.SIGSYS)
        case Action.KILL | Action.KILL_THREAD | Action.KILL_PROCESS:
            pt.fail_syscall(pid, errno.EPERM)
            os.kill(pid, signal.SIGKILL)
        case Action.ALLOW | Action.LOG:
            pass
        case _:
            assert_never(v.action)


# Runs CMD confined under `seccomp` with `tracer` as the host-side argv prefix of the backend's
# launcher; returns the command's exit status (the caller owns the command and the workspace).
Launch = Callable[[Seccomp, tuple[str, ...]], int]


def _run(res: Resolved, launch: Launch, io_dir: Path, *, record: bool, name: str,
         stdout_to_stderr: bool = False) -> tuple[int, _Recorder]:
    variant, codes = _variant(res, record=record)
    kafel = _kafel.to_kafel(variant, name=f"{name} (tracing variant)")
    seccomp = Seccomp(name=f"{name} (tracing variant)", digest=res.digest, kafel=kafel)
    io_in, io_out = io_dir / "trace-codes.json", io_dir / "trace-tally.json"
    io_in.write_text(json.dumps(codes_to_json(codes)))
    # -I: the tracer runs on the host (as root, for root), so neither the current directory
    # (the workspace under test) nor PYTHON* variables may put code on its import path.
    tracer = (sys.executable, "-I", "-m", "sandbox.seccomp._tracer", str(io_in), str(io_out),
              *(("--stdout-to-stderr",) if stdout_to_stderr else ()), "--")
    code = launch(seccomp, tracer)
    try:
        rec = _Recorder.from_json(codes, json.loads(io_out.read_text()))
    except (OSError, ValueError) as exc:
        raise EnforcementError(f"the seccomp tracer left no tally ({exc})",
                               hint="run `sandbox doctor`") from exc
    return code, rec


def codes_to_json(codes: dict[int, _Code]) -> dict[str, Any]:
    return {str(k): [c.verdict.action.value, c.verdict.data, c.fallback] for k, c in codes.items()}


def codes_from_json(data: dict[str, Any]) -> dict[int, _Code]:
    return {int(k): _Code(Verdict(Action(a), int(d)), bool(f)) for k, (a, d, f) in data.items()}


def _describe(v: Verdict) -> str:
    from sandbox.seccomp._show import verdict_text

    return verdict_text(v)


def test_profile(profile: _model.Profile, launch: Launch, io_dir: Path, *, name: str,
                 target: _resolve.Target | None = None,
                 stdout_to_stderr: bool = False) -> TestReport:
    res = _resolve.resolve_or_raise(profile, target)
    code, rec = _run(res, launch, io_dir, record=False, name=name,
                     stdout_to_stderr=stdout_to_stderr)
    return TestReport(name, profile.digest, code, rec.tally(fallback=False),
                      rec.tally(fallback=True))


@dataclass(frozen=True)
class Recording:
    profile_json: dict[str, Any]
    exit_code: int
    denied: tuple[Denial, ...]  # attempts the base profile refused (not in the output)


def record(launch: Launch, io_dir: Path, *, base: _model.Profile, base_name: str,
           target: _resolve.Target | None = None) -> Recording:
    res = _resolve.resolve_or_raise(base, target)
    code, rec = _run(res, launch, io_dir, record=True, name=base_name, stdout_to_stderr=True)
    by_nr = res.by_syscall()
    plain: set[str] = set(BASE_RUNTIME)
    rules: list[dict[str, Any]] = []
    for nr in sorted(rec.used):
        entries = by_nr.get(nr, [])
        name = _syscalls.name_of(nr)
        if any(not e.conds for e in entries) or not entries:
            plain.add(name)
            continue
        matched = _matching(entries, rec.used[nr])
        for e in matched:
            why = f"recorded: {name} as the base profile {base_name} allows it"
            rules.append(_rule_json(e, why))
    rules.insert(0, {"names": sorted(plain), "action": "SCMP_ACT_ALLOW",
                     "comment": "recorded by `sandbox profile record` "
                                "(plus what the runtime needs)"})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS,
                  "comment": "ENOSYS so libc falls back to clone, whose flags can be checked"})
    if "clone" not in plain and not any("clone" in r["names"] for r in rules):
        clone_rules = [e for e in by_nr.get(_syscalls.X86_64["clone"], []) if e.conds]
        rules += [_rule_json(e, "clone without namespace flags") for e in clone_rules[:1]]
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules}
    return Recording(prof, code, rec.tally(fallback=False) + rec.tally(fallback=True))


def _matching(entries: list[Entry], calls: list[tuple[int, ...]]) -> list[Entry]:
    out: list[Entry] = []
    for args in calls:
        for e in entries:
            if all(_resolve.cond_holds(c, args) for c in e.conds):
                if e.verdict.action in (Action.ALLOW, Action.LOG) and e not in out:
                    out.append(e)
                break
    return out


def _rule_json(e: Entry, comment: str) -> dict[str, Any]:
    args = []
    for c in e.conds:
        a: dict[str, Any] = {"index": c.index, "value": c.value, "op": c.op.value}
        if c.value_two:
            a["valueTwo"] = c.value_two
        args.append(a)
    return {"names": [e.name], "action": "SCMP_ACT_ALLOW", "args": args, "comment": comment}
