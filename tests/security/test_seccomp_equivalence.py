"""What nsjail enforces is what the JSON says: the BPF that real nsjail installs for our Kafel
translation, read back from the kernel, gives the same verdict as libseccomp's compilation of
the same JSON (runc's way) and as the resolver, over a corpus of syscalls and arguments, for
every shipped profile and Docker's.

Known, asserted differences (both deny): x32 syscall numbers (>= 0x40000000) are killed by
libseccomp as a bad architecture, while Kafel answers the default action. libseccomp 2.5.4
mis-compiles several range rules on one syscall; the Kafel filter is checked to be right.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from sandbox.seccomp import _bpf, _jail, _kafel, _libseccomp, _model, _resolve, _syscalls
from sandbox.seccomp._resolve import Target
from tests.conftest import REPO, require_nsjail, require_root
from tests.unit.test_seccomp_bpf import corpus, expected, need_libseccomp

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


def test_several_range_rules_on_one_syscall_are_or_ed_by_nsjail() -> None:
    obj = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "syscalls": [
        {"names": ["execve"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_LE"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 1 << 32, "op": "SCMP_CMP_LT"}]}]}
    res = _resolve.resolve_or_raise(_model.parse(obj), host_target())
    prog = nsjail_prog(res)
    for a2, want in ((0, _bpf.RET_ALLOW), (1, _bpf.RET_ALLOW), (0xFFFFFFFF, _bpf.RET_ALLOW),
                     (1 << 32, _bpf.RET_ERRNO | 13), ((1 << 64) - 1, _bpf.RET_ERRNO | 13)):
        assert _bpf.run(prog, _bpf.Call(135, (0, 0, a2, 0, 0, 0))) == want, hex(a2)


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
