"""Compile a profile with libseccomp, the way runc does, for `compile --format bpf|pfc` and for
the equivalence check against the Kafel translation.

This path deliberately does NOT reuse the resolver's precedence logic: it feeds libseccomp the
JSON rule by rule, exactly like runc's `InitSeccomp` (skip rules whose action is the default,
names resolved by libseccomp, conditions AND'ed unless an index repeats, then one rule per
condition), so libseccomp's own merging decides. Only includes/excludes are shared (that logic is
Docker's, not libseccomp's). Names newer than the installed libseccomp (2.5.x lacks e.g. mseal)
are resolved with the sandbox's table.

Needs Debian's libseccomp2 and PyPI `pyseccomp`; both are imported only when called.
"""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Any, assert_never

from sandbox.errors import ProfileError
from sandbox.seccomp import _syscalls
from sandbox.seccomp._model import Op, Profile, Rule
from sandbox.seccomp._resolve import Target, default_verdict, rule_verdict, selected


def _api() -> Any:
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as e:  # RuntimeError: libseccomp.so not found
        raise ProfileError(
            f"libseccomp is not available: {e}",
            hint="apt-get install libseccomp2 && pip install pyseccomp",
        ) from e
    return pyseccomp


def _op(api: Any, op: Op) -> int:
    match op:
        case Op.NE:
            return int(api.NE)
        case Op.LT:
            return int(api.LT)
        case Op.LE:
            return int(api.LE)
        case Op.EQ:
            return int(api.EQ)
        case Op.GE:
            return int(api.GE)
        case Op.GT:
            return int(api.GT)
        case Op.MASKED_EQ:
            return int(api.MASKED_EQ)
        case _:
            assert_never(op)


def _number(api: Any, name: str) -> int | None:
    arch = api.Arch.X86_64
    try:
        nr = int(api.resolve_syscall(arch, name))
    except (OSError, ValueError):
        nr = -1
    if nr < 0:
        # Unknown to this libseccomp, or a pseudo-syscall of another arch (negative): use the
        # table for natives that are newer than libseccomp, skip the rest as runc does.
        return _syscalls.number(name)
    return nr


def build(profile: Profile, target: Target | None = None) -> Any:
    """A `pyseccomp.SyscallFilter` for the native architecture (x86_64)."""
    api = _api()
    tgt = target or Target.host()
    default = default_verdict(profile)
    filt = api.SyscallFilter(default.ret())
    for rule in profile.syscalls:
        if not selected(rule, tgt):
            continue
        verdict = rule_verdict(rule)
        if verdict.same_as(default):
            continue  # runc: "Ignore it if the action is the same as default"
        for name in rule.names:
            nr = _number(api, name)
            if nr is None:
                continue
            _add(api, filt, rule, verdict.ret(), nr)
    return filt


def _add(api: Any, filt: Any, rule: Rule, ret: int, nr: int) -> None:
    conds = [api.Arg(a.index, _op(api, a.op), a.value, a.value_two) for a in rule.args]
    indexes = [a.index for a in rule.args]
    try:
        if len(set(indexes)) != len(indexes):
            for c in conds:
                filt.add_rule(ret, nr, c)
        else:
            filt.add_rule(ret, nr, *conds)
    except OSError as e:
        raise ProfileError(f"{profile_path(rule)}: libseccomp refused the rule: {e}") from e


def profile_path(rule: Rule) -> str:
    return rule.path


def _export(profile: Profile, target: Target | None, method: str, timeout_s: float) -> bytes:
    """Build and export in a forked child: libseccomp 2.5 can loop forever on some rule sets,
    and a loop in C cannot be interrupted from Python. The child gets SIGALRM'd instead."""
    _api()  # import errors are reported here, in the parent
    with tempfile.TemporaryFile() as f:
        pid = os.fork()
        if pid == 0:  # child: no Python cleanup, just the answer through the file
            code = 1
            try:
                signal.alarm(max(1, int(timeout_s)))
                getattr(build(profile, target), method)(f)
                f.flush()
                code = 0
            except ProfileError as e:
                f.write(str(e).encode())
                f.flush()
                code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        f.seek(0)
        out = f.read()
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return out
    if code == 2:
        raise ProfileError(out.decode(errors="replace"))
    raise ProfileError(
        f"{profile.source}: libseccomp failed to compile this profile "
        + ("(did not finish: a libseccomp bug on this rule set)" if code == -signal.SIGALRM
           else f"(exit status {code})"),
        hint="the Kafel translation (what the sandbox enforces) is unaffected",
    )


def export_bpf(profile: Profile, target: Target | None = None, *, timeout_s: float = 30) -> bytes:
    """Raw `struct sock_filter[]` as libseccomp loads it."""
    return _export(profile, target, "export_bpf", timeout_s)


def export_pfc(profile: Profile, target: Target | None = None, *, timeout_s: float = 30) -> str:
    """libseccomp's Pseudo Filter Code: a readable listing of the same filter."""
    return _export(profile, target, "export_pfc", timeout_s).decode()
