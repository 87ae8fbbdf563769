"""A classic-BPF interpreter for seccomp filters, and the seccomp return values.

Used to show that two compilations of one profile (nsjail's Kafel and libseccomp) give the same
verdict for the same call, and by `show`/`lint` callers who want to evaluate a filter. It
implements exactly the instruction subset the kernel's seccomp checker accepts
(kernel/seccomp.c: seccomp_check_filter): 32-bit absolute loads from `struct seccomp_data`,
the ALU, jumps, scratch memory and returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF

_M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int


@dataclass(frozen=True)
class Call:
    """What a filter sees: `struct seccomp_data`."""

    nr: int
    args: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
    arch: int = AUDIT_ARCH_X86_64
    ip: int = 0

    def pack(self) -> bytes:
        return struct.pack("<iIQ6Q", self.nr, self.arch, self.ip, *self.args)


def parse(raw: bytes) -> tuple[Insn, ...]:
    """`struct sock_filter[]` (8 bytes each, host order) as produced by export_bpf."""
    if len(raw) % 8:
        raise ValueError(f"BPF program length {len(raw)} is not a multiple of 8")
    return tuple(Insn(*struct.unpack_from("<HBBI", raw, i)) for i in range(0, len(raw), 8))


def pack(prog: tuple[Insn, ...]) -> bytes:
    return b"".join(struct.pack("<HBBI", i.code, i.jt, i.jf, i.k) for i in prog)


class BpfError(Exception):
    """The program is not a valid seccomp filter for this input."""


def run(prog: tuple[Insn, ...], call: Call) -> int:
    """Evaluate a seccomp filter; returns the 32-bit SECCOMP_RET_* value."""
    data = call.pack()
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    while pc < len(prog):
        steps += 1
        if steps > 100_000:
            raise BpfError("program does not terminate")
        ins = prog[pc]
        code, k = ins.code, ins.k
        cls = code & 0x07
        pc += 1
        if cls == 0x00:  # LD
            mode = code & 0xE0
            if mode == 0x20 and (code & 0x18) == 0x00:  # ABS, W
                if k % 4 or k + 4 > len(data):
                    raise BpfError(f"bad load offset {k}")
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:  # IMM
                a = k
            elif mode == 0x60:  # MEM
                a = mem[k]
            elif mode == 0x80:  # LEN
                a = len(data)
            else:
                raise BpfError(f"unsupported load {code:#x}")
        elif cls == 0x01:  # LDX
            mode = code & 0xE0
            if mode == 0x00:
                x = k
            elif mode == 0x60:
                x = mem[k]
            elif mode == 0x80:
                x = len(data)
            else:
                raise BpfError(f"unsupported ldx {code:#x}")
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            a = _alu(code, a, x if code & 0x08 else k)
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:  # JA
                pc += k
                continue
            if op == 0x10:
                cond = a == src
            elif op == 0x20:
                cond = a > src
            elif op == 0x30:
                cond = a >= src
            elif op == 0x40:
                cond = (a & src) != 0
            else:
                raise BpfError(f"unsupported jump {code:#x}")
            pc += ins.jt if cond else ins.jf
        elif cls == 0x06:  # RET
            rv = (code & 0x18) == 0x10
            return (a if rv else k) & _M32
        else:  # MISC
            if code & 0xF8 == 0x00:  # TAX
                x = a
            else:  # TXA
                a = x
    raise BpfError("fell off the end of the program")


def _alu(code: int, a: int, v: int) -> int:
    op = code & 0xF0
    if op == 0x00:
        r = a + v
    elif op == 0x10:
        r = a - v
    elif op == 0x20:
        r = a * v
    elif op == 0x30:
        if v == 0:
            raise BpfError("division by zero")
        r = a // v
    elif op == 0x40:
        r = a | v
    elif op == 0x50:
        r = a & v
    elif op == 0x60:
        r = a << v if v < 32 else 0
    elif op == 0x70:
        r = a >> v if v < 32 else 0
    elif op == 0x80:
        r = -a
    elif op == 0x90:
        if v == 0:
            raise BpfError("modulo by zero")
        r = a % v
    elif op == 0xA0:
        r = a ^ v
    else:
        raise BpfError(f"unsupported alu {code:#x}")
    return r & _M32


def describe(ret: int) -> str:
    """A readable name for a SECCOMP_RET_* value (`ERRNO(1)`, `ALLOW`...)."""
    action, data = ret & RET_ACTION_FULL, ret & RET_DATA
    names = {
        RET_KILL_PROCESS: "KILL_PROCESS", RET_KILL_THREAD: "KILL", RET_USER_NOTIF: "USER_NOTIF",
        RET_LOG: "LOG", RET_ALLOW: "ALLOW",
    }
    if action in names:
        return names[action]
    with_data = {RET_TRAP: "TRAP", RET_ERRNO: "ERRNO", RET_TRACE: "TRACE"}
    if action in with_data:
        return f"{with_data[action]}({data})"
    return f"RET({ret:#x})"


def normalize(ret: int) -> int:
    """Collapse values the kernel treats identically (unknown actions kill the process)."""
    action = ret & RET_ACTION_FULL
    known = {RET_KILL_PROCESS, RET_KILL_THREAD, RET_TRAP, RET_ERRNO, RET_USER_NOTIF, RET_TRACE,
             RET_LOG, RET_ALLOW}
    if action not in known:
        return RET_KILL_PROCESS
    if action in (RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG, RET_ALLOW, RET_USER_NOTIF):
        return action
    return ret
