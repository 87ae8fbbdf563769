"""A small ptrace engine (x86_64, ctypes) for `profile test`, `profile record` and for reading
back the filter nsjail really installed.

Why ptrace from outside: nsjail installs the filter itself, right before execve of the command,
so no listener fd (user notification) can be handed to us, and the kernel log (SECCOMP_RET_LOG)
needs privileges to read. A tracer that starts nsjail and follows every fork/clone stays
attached across nsjail's namespace setup (auto-attach needs no permission check), and a filter
whose denials say TRACE(code) makes the kernel stop the caller and hand `code` to us. This works
as root and as an unprivileged user (a process may trace its own descendants under Yama
ptrace_scope 0 and 1).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox._parent_death import die_with_parent

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SECCOMP_GET_FILTER = 0x420C

O_TRACESYSGOOD = 0x01
O_TRACEFORK = 0x02
O_TRACEVFORK = 0x04
O_TRACECLONE = 0x08
O_TRACEEXEC = 0x10
O_TRACESECCOMP = 0x80
O_EXITKILL = 0x100000

EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3
EVENT_EXEC = 4
EVENT_SECCOMP = 7
EVENT_STOP = 128

__WALL = 0x40000000

# struct user_regs_struct on x86_64, as indexes of 8-byte words
REG_R10, REG_R9, REG_R8, REG_RAX = 7, 8, 9, 10
REG_RDX, REG_RSI, REG_RDI, REG_ORIG_RAX = 12, 13, 14, 15
_NREGS = 27


class Regs(ctypes.Structure):
    _fields_ = [("w", ctypes.c_uint64 * _NREGS)]


def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    lib.ptrace.restype = ctypes.c_long
    lib.ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    return lib


@dataclass(frozen=True)
class Syscall:
    pid: int
    nr: int
    args: tuple[int, int, int, int, int, int]
    data: int  # the 16-bit SECCOMP_RET_DATA of the TRACE verdict


class Ptrace:
    """Thin checked wrappers; raises OSError with errno."""

    def __init__(self) -> None:
        self.libc = _libc()

    def call(self, req: int, pid: int, addr: int | None = None, data: object = None) -> int:
        ctypes.set_errno(0)
        res = int(self.libc.ptrace(req, pid, addr, data))
        err = ctypes.get_errno()
        if res == -1 and err:
            raise OSError(err, f"ptrace({req:#x}, {pid}): {os.strerror(err)}")
        return res

    def getregs(self, pid: int) -> Regs:
        regs = Regs()
        self.call(PTRACE_GETREGS, pid, None, ctypes.addressof(regs))
        return regs

    def setregs(self, pid: int, regs: Regs) -> None:
        self.call(PTRACE_SETREGS, pid, None, ctypes.addressof(regs))

    def eventmsg(self, pid: int) -> int:
        v = ctypes.c_ulong(0)
        self.call(PTRACE_GETEVENTMSG, pid, None, ctypes.addressof(v))
        return int(v.value)

    def cont(self, pid: int, sig: int = 0) -> None:
        # ProcessLookupError: killed meanwhile (e.g. SIGKILL from its parent)
        with contextlib.suppress(ProcessLookupError):
            self.call(PTRACE_CONT, pid, None, sig)

    def seccomp_filter(self, pid: int, index: int = 0) -> bytes | None:
        """The index-th most recent filter of a stopped tracee (needs CAP_SYS_ADMIN)."""
        try:
            n = self.call(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
        except FileNotFoundError:  # ENOENT: no filter at this index
            return None
        buf = ctypes.create_string_buffer(n * 8)
        self.call(PTRACE_SECCOMP_GET_FILTER, pid, index, ctypes.addressof(buf))
        return buf.raw

    def syscall(self, pid: int) -> Syscall:
        w = self.getregs(pid).w
        args = (w[REG_RDI], w[REG_RSI], w[REG_RDX], w[REG_R10], w[REG_R8], w[REG_R9])
        return Syscall(pid, int(ctypes.c_int64(w[REG_ORIG_RAX]).value), args, self.eventmsg(pid))

    def fail_syscall(self, pid: int, err: int) -> None:
        """Skip the syscall at a seccomp stop and make it return -err."""
        regs = self.getregs(pid)
        regs.w[REG_ORIG_RAX] = (1 << 64) - 1  # -1: the kernel skips the call
        regs.w[REG_RAX] = (-err) & ((1 << 64) - 1)
        self.setregs(pid, regs)


OnExec = Callable[[Ptrace, int], bool]  # return False to stop tracing (kills everything)
OnSeccomp = Callable[[Ptrace, int], None]  # must leave the tracee ready to PTRACE_CONT


def run_traced(argv: Sequence[str], *, env: dict[str, str] | None = None,
               on_exec: OnExec | None = None, on_seccomp: OnSeccomp | None = None,
               report: Callable[[], bytes] | None = None) -> tuple[int, bytes]:
    """Run argv with every descendant traced, from a tracer process of its own; returns a
    shell-style exit status and what `report` returned (called in the tracer once argv ended).

    The tracer loop waits for *any* child (a tracee's children are auto-attached, and one
    cannot block on a set of pids), so it must run where the tracees are the only children:
    here a forked tracer process. In the caller's process it would reap, or block on, children
    that are none of its business (a terminal helper, a lifeline, another subprocess). The
    callbacks run in the tracer: what they learn comes back through `report`.
    """
    pt = Ptrace()  # libc is found and loaded before the fork (no loader work in the child)
    rfd, wfd = os.pipe()
    tracer = os.fork()
    if tracer == 0:  # the tracer: never returns into the caller's code
        code = 125
        try:
            os.close(rfd)
            _die_with_parent(pt.libc)
            code = trace_children(argv, env=env, on_exec=on_exec, on_seccomp=on_seccomp, pt=pt)
            out = b"\0" + (report() if report is not None else b"")
        except BaseException as exc:  # carried back to the caller as text
            out = b"\1" + f"{type(exc).__name__}: {exc}".encode(errors="replace")
        finally:
            try:
                with os.fdopen(wfd, "wb") as f:
                    f.write(out)
            finally:
                os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out = f.read()
    _, status = os.waitpid(tracer, 0)  # only our tracer: other children stay the caller's
    code = os.waitstatus_to_exitcode(status)
    if out[:1] != b"\0":
        raise OSError(f"the ptrace tracer failed: {out[1:].decode(errors='replace') or code}")
    return (128 - code if code < 0 else code), out[1:]


def _die_with_parent(libc: ctypes.CDLL) -> None:
    """The tracer goes when its caller does (PR_SET_PDEATHSIG), and its tracees with it
    (PTRACE_O_EXITKILL)."""
    die_with_parent(signal.SIGKILL, libc)  # libc loaded before the fork


def trace_children(argv: Sequence[str], *, env: dict[str, str] | None = None,
                   on_exec: OnExec | None = None, on_seccomp: OnSeccomp | None = None,
                   stdout_to_stderr: bool = False, pt: Ptrace | None = None) -> int:
    """Run argv with every descendant traced, in this process; returns a shell-style status.

    Only for a process whose only children are the ones this starts (the `_tracer` process
    of `profile test|record`, or run_traced's forked tracer): the loop reaps any child.
    """
    pt = pt or Ptrace()
    pid = os.fork()
    if pid == 0:  # child: become traceable, wait for the options, then exec
        try:
            pt.call(PTRACE_TRACEME, 0)
            if stdout_to_stderr:  # keep our stdout clean (record writes JSON there)
                os.dup2(2, 1)
            os.kill(os.getpid(), signal.SIGSTOP)
            if env is None:
                os.execvp(argv[0], list(argv))
            else:
                os.execvpe(argv[0], list(argv), env)
        finally:
            os._exit(127)
    os.waitpid(pid, __WALL)  # the child's SIGSTOP: it now waits for our options
    opts = (O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC | O_TRACESECCOMP
            | O_EXITKILL)
    pt.call(PTRACE_SETOPTIONS, pid, None, opts)
    pt.cont(pid)
    return _loop(pt, pid, on_exec, on_seccomp)


def _loop(pt: Ptrace, root: int, on_exec: OnExec | None, on_seccomp: OnSeccomp | None) -> int:
    result = 125
    first_exec_done = False
    while True:
        try:
            wpid, status = os.waitpid(-1, __WALL)
        except ChildProcessError:
            return result
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if wpid == root:
                result = os.waitstatus_to_exitcode(status)
                result = 128 - result if result < 0 else result
            continue
        if not os.WIFSTOPPED(status):
            continue
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if event == EVENT_EXEC:
            if wpid == root and not first_exec_done:
                first_exec_done = True  # our own exec of argv[0]
            elif on_exec is not None and not on_exec(pt, wpid):
                os.kill(root, signal.SIGKILL)
            pt.cont(wpid)
        elif event == EVENT_SECCOMP:
            if on_seccomp is not None:
                on_seccomp(pt, wpid)
            pt.cont(wpid)
        elif event in (EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_STOP) or sig == signal.SIGSTOP:
            # new tracees start with a SIGSTOP that must be swallowed; group stops too
            pt.cont(wpid)
        else:
            pt.cont(wpid, sig if sig != signal.SIGTRAP else 0)
