"""`sandbox mcp` (and, later, `sandbox agent`): parse, call sandbox.mcp, render the summary.

The level's rules live in the library (sandbox.mcp, sandbox.governance); here only the person's
terminal (level 1 confirmations) and the closing summary, on stderr: stdout is the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sandbox.cli._render import change_table, esc
from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.mcp import Finished, McpConfig


class TerminalConfirm:
    """Level 1: ask on the controlling terminal of whoever started the server (its stdin and
    stdout carry the protocol, so /dev/tty is the only way to reach the person)."""

    def __init__(self, tty_in: TextIO, tty_out: TextIO) -> None:
        self.tty_in, self.tty_out = tty_in, tty_out

    @classmethod
    def open(cls) -> TerminalConfirm | None:
        # Two streams: a terminal is not seekable, so one "r+" text file cannot be opened.
        try:
            tty_in = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError:
            return None  # no terminal: level-1 calls are refused with a message
        try:
            return cls(tty_in, open("/dev/tty", "w", encoding="utf-8"))
        except OSError:
            tty_in.close()
            return None

    def confirm(self, what: str) -> bool:
        self.tty_out.write(f"\nsandbox: the agent asks to {esc(what)}\nAllow? [y/N] ")
        self.tty_out.flush()
        answer = self.tty_in.readline()
        return answer.strip().lower() in ("y", "yes")


def mcp_config(args: argparse.Namespace) -> McpConfig:
    from sandbox._runner import check_workspace
    from sandbox._workspace import locate_workspace
    from sandbox.cli._commands import _flags, _load
    from sandbox.mcp import McpConfig

    # As `sandbox run`: without -C, the git work tree's top level (else the current directory).
    workspace = check_workspace(locate_workspace(args.workspace).workspace)
    effective = _load(workspace, args.policy, _flags(args), for_run=True)
    env: dict[str, str | None] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        env[key] = value if sep else None
    return McpConfig(workspace=workspace, policy=effective, session=args.session, env=env)


def run_mcp(args: argparse.Namespace) -> int:
    from sandbox.mcp import scrub_environment, serve_stdio

    if getattr(args, "command", None):
        raise UsageError("sandbox mcp takes no command", hint="sandbox mcp -C WS [--session ID]")
    scrub_environment()
    cfg = mcp_config(args)
    confirm = TerminalConfirm.open() if cfg.asks_person else None

    def ready(session_id: str) -> None:
        sys.stderr.write(f"sandbox: MCP server for session {session_id} of {cfg.workspace} "
                         "on stdio\n")

    finished = serve_stdio(cfg, confirm=confirm, on_ready=ready)
    summary(finished)
    return 0


def run_agent(args: argparse.Namespace) -> int:
    from sandbox.mcp._agent import AgentKind, AgentRequest
    from sandbox.mcp._agent import run_agent as run

    # No scrub here: this process is the control plane; the in-process gateway reads the
    # provider keys from it. No sandbox inherits it (only named variables pass).
    cfg = mcp_config(args)
    confirm = TerminalConfirm.open() if cfg.asks_person else None
    req = AgentRequest(kind=AgentKind(args.agent), binary=Path(args.bin) if args.bin else None,
                       args=tuple(args.agent_args), mcp=cfg)
    out = run(req, confirm=confirm)
    err = sys.stderr
    with contextlib.suppress(OSError):
        err.write(f"\nsandbox: agent {args.agent} exited {out.agent_run.exit_code if out.agent_run else '-'}"
                  f"; session {out.finished.session.id}: {out.tool_calls} tool call(s), "
                  f"{out.llm['calls']} LLM call(s), {out.llm['input_tokens']} tokens in / "
                  f"{out.llm['output_tokens']} out, ${out.llm['cost_usd']:.4f}\n")
        if out.failure:
            err.write(f"sandbox: error: {esc(out.failure)}\n")
    summary(out.finished)
    return out.exit_code


def summary(done: Finished) -> None:
    """The session's closing lines, as `sandbox run` ends (stderr)."""
    from sandbox.governance import AskPerson, AutoCommit, Hold, NothingToDo

    out = sys.stderr
    sid = done.session.id
    with contextlib.suppress(OSError):
        if done.committed:
            out.write(f"sandbox: session {sid}: committed {len(done.committed)} change(s) "
                      "automatically\n")
        if done.error:
            out.write(f"sandbox: not committed: {esc(done.error)}\n")
        if not done.changeset:
            out.write(f"sandbox: session {sid}: no pending changes\n")
            return
        out.write(f"sandbox: session {sid}: {len(done.changeset.changes)} pending change(s):\n"
                  f"{change_table(done.changeset, limit=30)}")
        match done.decision:
            case Hold(reasons=reasons):
                for r in reasons:
                    out.write(f"sandbox: {esc(r)}\n")
            case AutoCommit(held=held, refused=refused):
                for v in (*held, *refused):
                    out.write(f"sandbox: {esc(v.path)}: {esc(v.reason)}\n")
            case AskPerson() | NothingToDo():
                pass
        out.write(f"sandbox: pending. Review: sandbox diff {sid} | approve: sandbox approve "
                  f"{sid} | discard: sandbox reject {sid}\n")
        out.flush()
