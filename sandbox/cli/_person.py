"""The person at the terminal (levels 1-2): confirm a command, review a changeset.

Prompts go to stderr so stdout stays the command's; answers come from the terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.cli._render import change_table, esc, policy_lines
from sandbox.fs import ChangeSet, render_patch
from sandbox.governance import AskPerson
from sandbox.policy import EffectivePolicy
from sandbox.store import SessionRecord


class TerminalPerson:
    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    @classmethod
    def detect(cls, *, json_out: bool) -> TerminalPerson:
        return cls(not json_out and sys.stdin.isatty() and sys.stderr.isatty())

    def interactive(self) -> bool:
        return self._enabled

    def _ask(self, prompt: str, choices: str) -> str:
        while True:
            sys.stderr.write(prompt)
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                return "n"
            answer = line.strip().lower()[:1] or choices[-1]
            if answer in choices:
                return answer

    def confirm_run(self, argv: Sequence[str], policy: EffectivePolicy) -> bool:
        out = sys.stderr
        out.write("sandbox: level 1: confirm before running\n")
        out.write(f"  command: {' '.join(esc(a) for a in argv)}\n")
        for line in policy_lines(policy, short=True):
            out.write(f"  {line}\n")
        return self._ask("Run it? [y/N] ", "yn") == "y"

    def review(self, cs: ChangeSet, decision: AskPerson, session: SessionRecord,
               upper: Path) -> bool:
        out = sys.stderr
        out.write(f"\nsandbox: {len(cs.changes)} change(s) in session {session.id}:\n")
        out.write(change_table(cs))
        for v in decision.refused:
            out.write(f"  refused: {esc(v.path)}: {esc(v.reason)}\n")
        while True:
            answer = self._ask("Commit to the workspace? [y]es / [n]o, keep pending / "
                               "[d]iff: ", "ydn")
            if answer == "d":
                self._page(render_patch(cs, upper=upper, lower=session.workspace))
                continue
            return answer == "y"

    def ask_egress(self, host: str, port: int) -> object:
        """Level 1: the command wants a host outside the allowlist. Asked from a proxy thread,
        one request at a time; the command waits for the answer."""
        from sandbox.egress import Allow, Deny, DenyReason

        answer = self._ask(f"\nsandbox: the command wants to reach {esc(host)}:{port}, which "
                           "is not in the allowlist. Allow [o]nce, for this [s]ession, or "
                           "[d]eny? ", "osd")
        match answer:
            case "o":
                return Allow(rule="asked: once")
            case "s":
                return Allow(rule="asked: this session", remember=True)
            case _:
                return Deny(DenyReason.USER, "denied by the person at the terminal")

    def _page(self, patch: bytes) -> None:
        from sandbox.cli._render import safe_patch_for_terminal

        text = safe_patch_for_terminal(patch)
        pager = os.environ.get("PAGER") or ("less" if shutil.which("less") else "")
        if pager and shutil.which(pager.split()[0]):
            subprocess.run([*pager.split(), "-R"] if pager == "less" else pager.split(),
                           input=text.encode(), check=False)
        else:
            sys.stderr.write(text)
