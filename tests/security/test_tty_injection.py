"""An interactive run shares the terminal, never the controlling terminal: TIOCSTI (pushing
keystrokes into the caller's shell once the sandbox exits) must fail."""

from __future__ import annotations

from pathlib import Path

import pexpect

from tests.conftest import SANDBOX_BIN, Cli

INJECT = ("import fcntl, termios\n"
          "try:\n"
          "    [fcntl.ioctl(0, termios.TIOCSTI, c) for c in (b'i', b'd', b'\\n')]\n"
          "    print('INJECTED')\n"
          "except OSError as e:\n"
          "    print('BLOCKED', e.errno)\n")


def test_tiocsti_into_the_callers_terminal_fails(cli: Cli, workspace: Path) -> None:
    argv = ["run", "-C", str(workspace), "--", "python3", "-c", INJECT]
    child: pexpect.spawn[bytes] = pexpect.spawn(str(SANDBOX_BIN), argv,
                                                env=cli.env({"TERM": "xterm"}), timeout=60)
    child.expect(["BLOCKED", "INJECTED"])
    assert child.after == b"BLOCKED", child.before
    child.expect(pexpect.EOF)
    child.close()
    assert b"INJECTED" not in (child.before or b"")
