"""`sandbox` command line: argument parsing and dispatch only; the library does the work."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from sandbox.errors import EXIT_USAGE, SandboxError

RUN_EPILOG = """\
examples:
  sandbox run -- make test                     run in the current directory, changes held (level 2)
  sandbox run --level 4 -- ./fix.sh            commit automatically (forbidden changes still refused)
  sandbox run --session fix-42 -- claude -p "fix the failing test"
                                               chain runs; `sandbox approve fix-42` commits them all
  sandbox run --json --level 2 -- pytest       for CI: machine-readable outcome, changes pending

exit status: the command's own; 2 usage/policy error; 124 timeout; 125 the sandbox failed;
126 not executable; 127 not found; 128+N killed by signal N. SIGINT, SIGTERM or SIGHUP to
`sandbox run` stops the sandbox, records the run cancelled and exits 130, 143 or 129; its
changes so far stay pending. A commit that cannot happen (conflict, forbidden change) never
replaces the command's status: it is reported, and the changes stay pending.

Without -C, inside a git work tree the workspace is its top level and the command starts in
the current subdirectory (as git and the agents do); elsewhere it is the current directory.
"""

DECISION_EPILOG = """\
RUN is a run id, a session id, or `last`: the last run of the current workspace (the git work
tree's top level, else the current directory); --all-workspaces makes `last` look everywhere.
PATH may be workspace-relative, relative to the current directory, or absolute inside the
workspace; a directory means everything pending under it.

exit status: 0 done; 2 usage error (unknown RUN, no pending change at PATH, session already
closed); 3 conflict: a file changed in the workspace since the run (nothing committed; --force
to overwrite); 4 forbidden change named (never committed); 5 protected change without
--include-protected; 6 the session is busy (a run of it is going; nothing changed);
125 the sandbox failed (state or audit log unusable).
"""


class _Parser(argparse.ArgumentParser):
    json_errors = False  # `--json` was on the command line: errors are one JSON object too

    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its usage line
        self.print_usage(sys.stderr)
        if _Parser.json_errors:
            _json_error(message, EXIT_USAGE)
        self.exit(EXIT_USAGE, f"sandbox: error: {message}\n")


def _json_error(message: str, code: int) -> None:
    import json

    print(json.dumps({"error": message, "exit_code": code}))


HELP = {
    "run": "run a command sandboxed",
    "ls": "list every pending session, then recent runs (--all: every run)",
    "show": "show a run: status, usage, changes, decision",
    "review": "review pending changes interactively",
    "diff": "print the pending changes as a patch `git apply` accepts",
    "export": "write the pending changes as a commit on a new git branch "
              "(working tree and index untouched)",
    "approve": "commit pending changes (all, or the PATHs given)",
    "reject": "discard pending changes (all, or the PATHs given)",
    "kill": "stop a running run (its changes so far stay pending)",
    "audit": "show or verify the hash-chained audit log",
    "policy": "effective policy and where each field comes from",
    "trust": "let a workspace's sandbox.toml loosen your policy (pinned to its content)",
    "doctor": "check host prerequisites, each with its fix",
    "profile": "seccomp profiles: lint, show, compile, test, record",
    "image": "build and list sandbox images",
    "gateway": "LLM gateway: serve, virtual keys, usage",
    "mcp": "MCP server (stdio) whose tools are runs and file operations of one session",
    "serve": "control plane: console, API, MCP, gateway; signs the audit log",
    "agent": "run Claude Code or Codex with its loop outside: our MCP tools are its only tools",
    "report": "what the agents did and what it cost, from the audit log",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or, with `only`, just that command's arguments (the others are listed
    for --help but not built: building every subparser costs ~10 ms on each tool call)."""
    p = _Parser(prog="sandbox", description=(
        "Run AI-agent tool calls in a locked-down sandbox on a copy-on-write snapshot of the "
        "workspace; changes reach the workspace only as the governance level allows."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `sandbox COMMAND --help` for details. State lives in $SANDBOX_HOME "
               "(default ~/.local/state/sandbox).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    for name, helptext in HELP.items():
        if only is not None and name != only:
            sub.add_parser(name, help=helptext)
        elif name == "profile":
            from sandbox.cli._profile import add_profile_parser

            add_profile_parser(sub)
        elif name == "image":
            from sandbox.cli._image import add_image_parser

            add_image_parser(sub)
        elif name == "gateway":
            from sandbox.cli._gateway import add_gateway_parser

            add_gateway_parser(sub)
        elif name == "serve":
            from sandbox.cli._serve import add_serve_parser

            add_serve_parser(sub)
        elif name == "report":
            from sandbox.cli._report import add_report_parser

            add_report_parser(sub)
        elif name in ("approve", "reject", "export", "review", "kill"):
            _BUILDERS[name](sub.add_parser(
                name, help=helptext, epilog=DECISION_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter))
        elif name == "run":
            _run_args(sub.add_parser(
                name, help=helptext, epilog=RUN_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run COMMAND in a sandbox over a snapshot of the workspace."))
        else:
            _BUILDERS[name](sub.add_parser(name, help=helptext))
    return p


def _run_args(r: argparse.ArgumentParser) -> None:
    _run_options(r)
    r.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout "
                   "(the command's output is captured into it)")
    r.add_argument("--llm", action="store_true", help="model access through the LLM gateway: "
                   "the run gets a virtual key (ANTHROPIC_*/OPENAI_* set inside), never a real one")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")


def _mcp_args(m: argparse.ArgumentParser) -> None:
    _run_options(m)


def _agent_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("agent", choices=("claude", "codex"), help="which agent to run")
    _run_options(a)
    a.add_argument("--bin", metavar="PATH", help="the agent's executable (default: on PATH)")
    a.epilog = ("Arguments after `--` go to the agent, e.g. sandbox agent claude -- -p "
                "'fix the failing test'; those that would give it other tools, MCP servers, "
                "settings, plugins or directories (Claude Code: --mcp-config, --tools, "
                "--allowedTools, --settings, --plugin-dir, --add-dir, --permission-mode...; "
                "Codex: -c mcp_servers|features|tools|model_provider..., --enable, --search, "
                "--profile, --oss...) are refused before anything starts. Exit status: the "
                "agent's; 2 bad arguments; 125 when the sandbox failed or the agent could not be "
                "limited to our tools; 127 agent not found.")


def _run_options(r: argparse.ArgumentParser) -> None:
    """The options of a run (workspace, session, policy, limits...): shared by run, mcp and
    agent, whose tool calls are runs."""
    r.add_argument("-C", dest="workspace", default=None, metavar="DIR",
                   help="workspace directory (default: the git work tree's top level, else "
                   "the current directory)")
    r.add_argument("--user", default="root", metavar="root|USER",
                   help="who the command runs as inside: root (default; never root outside, "
                   "and agents see IS_SANDBOX=1) or an unprivileged USER with home /home/USER "
                   "(nsjail backend)")
    r.add_argument("--level", type=int, choices=(1, 2, 3, 4), help=(
        "1 confirm before and after; 2 hold changes for approval (default); "
        "3 auto-commit low-risk changes; 4 auto-commit (forbidden still refused)"))
    r.add_argument("--session", metavar="ID", help="chain runs: each sees the earlier ones' "
                   "pending changes; approving the session commits them all")
    r.add_argument("--policy", metavar="FILE", help="extra policy layer (may only tighten)")
    r.add_argument("--profile", metavar="NAME|PATH", help="seccomp profile (default: default)")
    r.add_argument("--allow", action="append", default=[], metavar="HOST[:PORT]",
                   help="allow egress to HOST (repeatable; wildcards like *.example.com)")
    r.add_argument("--backend", choices=("nsjail", "docker"),
                   help="isolation backend (default nsjail; docker needs a running daemon)")
    r.add_argument("--image", metavar="NAME", help="system image (default: host, read-only)")
    r.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VAL]",
                   help="pass a variable (KEY alone takes the host's value; never secrets)")
    r.add_argument("--timeout", metavar="S", help="wall-clock limit, e.g. 30, 90s, 10m")
    r.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512m, 2g")
    r.add_argument("--cpus", type=float, metavar="N", help="CPU limit")
    r.add_argument("--pids-limit", type=int, metavar="N", help="max processes")


def _json_only(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--json", action="store_true")


def _ls_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--all", action="store_true", help="every run, not only the recent ones")
    sp.add_argument("-n", "--last", type=int, default=30, metavar="N",
                    help="how many recent runs (default 30); pending sessions are always listed")
    sp.add_argument("--json", action="store_true")


_RUN_HELP = ("run id, session id, or `last` (the last run of the current workspace; "
             "with --all-workspaces, of any)")


def _ref_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("ref", metavar="RUN", help=_RUN_HELP)
    sp.add_argument("--all-workspaces", action="store_true",
                    help="let `last` name the last run of any workspace")


def _show_args(sp: argparse.ArgumentParser) -> None:
    _ref_arg(sp)
    sp.add_argument("--json", action="store_true")


def _kill_args(k: argparse.ArgumentParser) -> None:
    _ref_arg(k)
    k.add_argument("--json", action="store_true")


def _review_args(sp: argparse.ArgumentParser) -> None:
    _show_args(sp)
    sp.add_argument("-m", "--message", help="kept in the audit record of each decision")
    sp.add_argument("--force", action="store_true",
                    help="commit even where the workspace changed since the session saw it "
                   "(the session's version wins)")


def _diff_args(d: argparse.ArgumentParser) -> None:
    _ref_arg(d)
    d.add_argument("paths", nargs="*", metavar="PATH")
    d.add_argument("--json", action="store_true", help="structured changeset")
    d.add_argument("--stat", action="store_true", help="diffstat only")
    d.add_argument("--include-forbidden", action="store_true",
                   help="also show forbidden changes (each after a `# FORBIDDEN` line); "
                        "without it they are left out and named on stderr")


def _export_args(x: argparse.ArgumentParser) -> None:
    _ref_arg(x)
    x.add_argument("--branch", required=True, metavar="NAME", help="the new branch's name")
    x.add_argument("-m", "--message", help="commit message (default: session, run, command)")
    x.add_argument("--include-protected", action="store_true",
                   help="also export protected paths (CI config, hooks, policy...)")
    x.add_argument("--json", action="store_true")


def _approve_args(a: argparse.ArgumentParser) -> None:
    _ref_arg(a)
    a.add_argument("paths", nargs="*", metavar="PATH")
    a.add_argument("--force", action="store_true",
                   help="commit even where the workspace changed since the session saw it "
                   "(the session's version wins)")
    a.add_argument("--include-protected", action="store_true",
                   help="also commit protected paths (CI config, hooks, policy...)")
    a.add_argument("--include-ignored", action="store_true",
                   help="also commit ignored output (.gitignore, [changes] ignore)")
    a.add_argument("-m", "--message", help="kept in the audit record")
    a.add_argument("--json", action="store_true")


def _reject_args(j: argparse.ArgumentParser) -> None:
    _ref_arg(j)
    j.add_argument("paths", nargs="*", metavar="PATH")
    j.add_argument("-m", "--message", help="kept in the audit record")
    j.add_argument("--json", action="store_true")


def _audit_args(au: argparse.ArgumentParser) -> None:
    au.add_argument("ref", nargs="?", metavar="RUN", help="only this run's or session's records")
    au.add_argument("--all-workspaces", action="store_true",
                    help="let `last` name the last run of any workspace")
    au.add_argument("--verify", action="store_true",
                    help="check the chain and the signed checkpoints; non-zero if broken")
    au.add_argument("--pubkey", metavar="FILE", help="with --verify: the ed25519 public key "
                    "`sandbox serve` signs with (PEM or OpenSSH); the log must be signed by it")
    au.add_argument("--json", action="store_true")


def _policy_args(pol: argparse.ArgumentParser) -> None:
    pol_sub = pol.add_subparsers(dest="policy_cmd", metavar="SUBCOMMAND", parser_class=_Parser)
    ps = pol_sub.add_parser("show", help="print each effective field with the file that set it")
    ps.add_argument("-C", dest="workspace", default=None, metavar="DIR")
    ps.add_argument("--policy", metavar="FILE")
    ps.add_argument("--json", action="store_true")


def _trust_args(t: argparse.ArgumentParser) -> None:
    t.add_argument("path", nargs="?", metavar="PATH",
                   help="a policy file, or a workspace directory (its sandbox.toml); "
                        "default: the current workspace's sandbox.toml")
    t.add_argument("--revoke", action="store_true", help="forget the trust in PATH")


_BUILDERS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "ls": _ls_args, "show": _show_args, "review": _review_args,
    "diff": _diff_args, "export": _export_args, "approve": _approve_args,
    "reject": _reject_args, "audit": _audit_args, "policy": _policy_args, "trust": _trust_args,
    "doctor": _json_only, "mcp": _mcp_args, "agent": _agent_args, "kill": _kill_args,
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = words[: words.index("--")] if "--" in words else words
    _Parser.json_errors = "--json" in command
    parser = build_parser(only=words[0] if words and words[0] in HELP else None)
    tail: list[str] = []
    if words[:1] == ["agent"] and "--" in words:  # what follows `--` is the agent's own
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1:]
    args = parser.parse_args(words)
    args.agent_args = tail
    if args.cmd is None:
        parser.print_help()
        return EXIT_USAGE
    from sandbox.cli import _commands

    if args.cmd == "run":
        from sandbox.lifecycle._signals import install

        install()  # SIGINT/SIGTERM/SIGHUP stop the sandbox and are recorded, never orphan it
    try:
        code = _commands.dispatch(args, parser)
    except SandboxError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        code = exc.exit_code
        if _Parser.json_errors:
            _json_error(str(exc), code)
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", 130)
        print("sandbox: interrupted", file=sys.stderr)
        if _Parser.json_errors:
            _json_error("interrupted", code)
    except BrokenPipeError:
        # `sandbox diff | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, the traceback in a log, exit 125
        code = _crash(exc)
    if args.cmd == "run":
        from sandbox.lifecycle._signals import received

        sig = received()
        if sig is not None and code < 128:
            code = 128 + sig  # a signal came while the run was being recorded
    return code


def _crash(exc: Exception) -> int:
    import tempfile
    import time
    import traceback

    from sandbox.errors import EXIT_SANDBOX_FAILED

    text = "".join(traceback.format_exception(exc))
    log: str | None = None
    try:
        from sandbox._home import sandbox_home

        logs = sandbox_home() / "logs"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = logs / f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    except OSError:
        path = Path(tempfile.gettempdir()) / f"sandbox-crash-{os.getpid()}.log"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        log = str(path)
    except OSError:
        log = None
    if os.environ.get("SANDBOX_DEBUG") == "1":
        sys.stderr.write(text)
    where = f"; the traceback is in {log}" if log else ""
    message = f"internal error: {type(exc).__name__}: {exc}{where}"
    print(f"sandbox: {message}", file=sys.stderr)
    if _Parser.json_errors:
        _json_error(message, EXIT_SANDBOX_FAILED)
    return EXIT_SANDBOX_FAILED


if __name__ == "__main__":
    sys.exit(main())
