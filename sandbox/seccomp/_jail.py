"""A minimal nsjail command line, used only to read back the BPF program nsjail installs for a
Kafel policy (`installed_filter`, for the translation-equivalence tests and the filter dump).

It is not a sandbox for untrusted commands: `profile test` and `profile record` run commands
through the runtime's own launch (sandbox._profiling), confined exactly like `sandbox run`.
Here only /bin/true (or a probe the caller names) runs, and it is killed at its exec.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from sandbox.errors import EnforcementError


def jail_argv(kafel: str, argv: Sequence[str], *, cwd: str | None = None, timeout_s: int = 0,
              env: Sequence[str] = ("PATH", "HOME", "LANG", "TERM")) -> list[str]:
    from sandbox.backends._nsjail import nsjail_binary  # the runtime's own lookup

    here = cwd or os.getcwd()
    out = [
        str(nsjail_binary()), "--mode", "o", "--quiet", "--chroot", "/", "--tmpfsmount", "/tmp",
        "--bindmount_ro", here, "--cwd", here, "--rlimit_as", "inf",
        "--rlimit_fsize", "65536",  # MiB; nsjail's "inf"/"max" overflow here and writes fail
        "--rlimit_nofile", "1024",
        "--time_limit", str(timeout_s), "--seccomp_string", kafel,
    ]
    for name in env:
        if name in os.environ:
            out += ["--env", f"{name}={os.environ[name]}"]
    # nsjail execs without a PATH search; the jail's root is the host's, so resolve it here.
    exe = argv[0] if "/" in argv[0] else (shutil.which(argv[0]) or argv[0])
    return [*out, "--", exe, *argv[1:]]


def installed_filter(kafel: str, argv: Sequence[str] = ("/bin/true",)) -> bytes:
    """The BPF program nsjail really installs for `kafel`, read back from the kernel.

    Runs nsjail under the ptrace engine and, at the exec of the jailed command (the filter is
    installed just before it), fetches the filter with PTRACE_SECCOMP_GET_FILTER, then kills the
    jail. Needs CAP_SYS_ADMIN (root). Raises EnforcementError if nsjail rejected the policy.
    """
    from sandbox.seccomp import _ptrace

    got: list[bytes] = []  # filled in the tracer process, handed back by report()

    def on_exec(pt: _ptrace.Ptrace, pid: int) -> bool:
        prog = pt.seccomp_filter(pid)
        if prog is None:
            return True  # an exec before the filter (not the jailed command yet)
        got.append(prog)
        return False

    _code, prog = _ptrace.run_traced(jail_argv(kafel, argv), on_exec=on_exec,
                                     report=lambda: got[0] if got else b"")
    if not prog:
        raise EnforcementError("nsjail installed no seccomp filter (policy rejected?)")
    return prog
