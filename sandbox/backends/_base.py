"""The backend protocol: everything a backend needs to launch one sandboxed command.

A backend turns a `LaunchSpec` (pure data, already validated against the policy) into a
running, isolated process and reports a `LaunchResult`. It never decides policy; it either
enforces exactly what the spec says or raises `EnforcementError` (exit 125).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Network(StrEnum):
    NONE = "none"  # loopback of the sandbox only
    EGRESS = "egress"  # loopback only, plus the egress proxy bridged in (see `egress`)



# The host view every backend shows a sandbox (read-only): the directories programs and their
# libraries live in, and the /etc files they need; never /home, /root, /run, /var, /mnt -- so
# never the docker socket or $SANDBOX_HOME. One list, so the backends cannot drift apart.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_ENTRIES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
    "ca-certificates.conf", "localtime", "timezone", "nsswitch.conf", "protocols", "services",
    "mime.types", "magic", "os-release", "debian_version", "locale.alias", "locale.conf",
    "bash.bashrc", "inputrc", "profile", "profile.d", "gitconfig", "python3", "python3.11",
    "perl", "terminfo", "environment", "shells", "login.defs", "xdg", "java-17-openjdk",
    "mke2fs.conf", "npmrc",
)


def etc_entries(root: Path) -> list[str]:
    """The ETC_ENTRIES that `root`/etc has and a sandbox may see. Some of them are where
    machines (CI above all) keep credentials, shown to every sandbox: /etc/gitconfig (`git
    config --system url."https://x:TOKEN@github.com/".insteadOf ...`, an http extraheader, a
    credential helper), /etc/npmrc (`_authToken`, `_auth`, `_password`), /etc/environment
    (a TOKEN=, a proxy URL with a password) and /etc/xdg (pip's index URL with a password).
    One that might hold a credential is shown to no sandbox (a cheap look at its bytes;
    nothing in them is needed without network)."""
    names = []
    for name in ETC_ENTRIES:
        p = root / "etc" / name
        if not p.exists():
            continue
        if name in _CREDENTIAL_FILES and _CREDENTIAL_FILES[name](p):
            continue
        names.append(name)
    return names


def _npmrc_secret(path: Path) -> bool:
    return _matches(path, re.compile(rb"(?i)_auth|_password|://[^\s/@]*:[^\s/@]*@"))


def _environment_secret(path: Path) -> bool:
    from sandbox.policy import secret_env_name

    raw = _read_small(path)
    if raw is None:
        return True
    names = re.findall(rb"(?m)^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", raw)
    return (any(secret_env_name(n.decode()) for n in names)
            or re.search(rb"://[^\s/@]*:[^\s/@]*@", raw) is not None)


def _gitconfig_secret(path: Path) -> bool:
    from sandbox.fs._gitcreds import may_hold_credentials

    return may_hold_credentials(path)


def _read_small(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None  # unreadable: counts as might hold one


def _matches(path: Path, rx: re.Pattern[bytes]) -> bool:
    raw = _read_small(path)
    return raw is None or rx.search(raw) is not None


def _xdg_secret(path: Path) -> bool:
    """/etc/xdg holds pip's site config: an index URL with a password in it, or a password key."""
    conf = path / "pip" / "pip.conf"
    return conf.exists() and _matches(conf, re.compile(
        rb"(?i)://[^\s/@]*:[^\s/@]*@|^\s*(password|token)\s*=", re.M))


_CREDENTIAL_FILES: dict[str, Callable[[Path], bool]] = {
    "gitconfig": _gitconfig_secret, "npmrc": _npmrc_secret, "environment": _environment_secret,
    "xdg": _xdg_secret}

# npm's global config when npm lives under /usr or /usr/local (its `globalconfig` is
# PREFIX/etc/npmrc): inside the /usr bind, so every sandbox saw it, `_authToken` and all.
USR_NPMRC = ("/usr/etc/npmrc", "/usr/local/etc/npmrc")


def usr_hidden(root: Path) -> list[str]:
    """Files inside the /usr bind a sandbox must not see: each is covered by an empty file.
    Only those the host has (a mount needs its mount point), by the /etc/npmrc rule."""
    return [dst for dst in USR_NPMRC
            if (p := root / dst.lstrip("/")).is_file() and _npmrc_secret(p)]


# The sandbox's own /etc/passwd and /etc/group: root and nobody, nothing of the host's users.
PASSWD = b"root:x:0:0:sandbox:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"

@dataclass(frozen=True)
class BindMount:
    """A host path made visible inside. `rw=False` unless there is a reason."""

    src: Path
    dst: str
    rw: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The overlay the workspace is seen through.

    lower: the real workspace (never written); mask: an optional lower layer of whiteouts above
    it that hides secret files; upper/work: the session's dirs under $SANDBOX_HOME.
    """

    lower: Path
    upper: Path
    work: Path
    mask: Path | None = None
    mount_point: str = "/workspace"


@dataclass(frozen=True)
class Limits:
    timeout_s: float | None = None
    memory_bytes: int | None = None
    cpus: float | None = None
    pids: int | None = None
    write_bytes: int | None = None  # cap on what the run may write (upper dir / RLIMIT_FSIZE)
    output_bytes: int | None = None  # cap on captured stdout+stderr kept in the record


@dataclass(frozen=True)
class Seccomp:
    """A compiled seccomp profile: a Kafel policy for nsjail, the JSON for docker."""

    name: str
    digest: str
    kafel: str
    oci_json: str = ""


@dataclass(frozen=True)
class LaunchSpec:
    argv: tuple[str, ...]
    snapshot: Snapshot
    scratch: Path  # per-run dir for the backend's own files (config, log); never mounted
    env: Mapping[str, str]
    seccomp: Seccomp
    limits: Limits = field(default_factory=Limits)
    network: Network = Network.NONE
    extra_mounts: tuple[BindMount, ...] = ()
    # argv prefix run inside before the command (e.g. the egress forwarder launcher); the
    # command follows after it. Empty: the command is exec'd directly.
    wrapper: tuple[str, ...] = ()
    cwd: str = "/workspace"
    hostname: str = "sandbox"
    image_root: Path | None = None  # None: a read-only view of the host system
    # Who the command runs as inside: "root" (uid 0 inside, never root outside), or the name
    # of an unprivileged user (uid 1000, home /home/NAME) for tools that refuse root.
    user: str = "root"
    # argv prefix run on the host around the backend's launcher process (the profile tools'
    # ptrace tracer): it runs the rest as its child and exits with its status. Backends that
    # cannot put a host process there (docker) refuse a spec that sets it.
    tracer: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchResult:
    exit_code: int  # already mapped to the CLI contract (124 timeout, 128+N signal, 125...)
    timed_out: bool
    signal: int | None
    duration_ms: int
    cpu_ms: int
    peak_memory_kb: int
    write_limit_hit: bool = False
    backend_error: str | None = None  # set when the sandbox itself failed (exit 125): one line
    backend_log: tuple[str, ...] = ()  # then: the backend's own log lines, for `sandbox show`
    notes: tuple[str, ...] = ()  # what the person should know (a limit enforced weaker, hit)
    oom_killed: bool = False  # the kernel killed it at the memory limit (when the backend knows)


class Backend(Protocol):
    name: str

    def check(self) -> None:
        """Raise EnforcementError (with a hint naming the fix) if this host cannot enforce."""

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Run spec.argv isolated, streaming its stdout/stderr live; block until it ends and
        nothing it started survives."""
