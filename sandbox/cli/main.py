"""`sandbox` command line: argument parsing and dispatch only; the library does the work."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
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
126 not executable; 127 not found; 128+N killed by signal N.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"sandbox: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sandbox", description=(
        "Run AI-agent tool calls in a locked-down sandbox on a copy-on-write snapshot of the "
        "workspace; changes reach the workspace only as the governance level allows."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `sandbox COMMAND --help` for details. State lives in $SANDBOX_HOME "
               "(default ~/.local/state/sandbox).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run a command sandboxed", epilog=RUN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run COMMAND in a sandbox over a snapshot of the workspace.")
    r.add_argument("-C", dest="workspace", default=".", metavar="DIR",
                   help="workspace directory (default: current directory)")
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
    r.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout "
                   "(the command's output is captured into it)")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")

    sub.add_parser("ls", help="list recent runs").add_argument("--json", action="store_true")
    for name, helptext in (("show", "show a run: status, usage, changes, decision"),
                           ("review", "review pending changes interactively")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("ref", metavar="RUN", help="run id, session id, or `last`")
        sp.add_argument("--json", action="store_true")
        if name == "review":
            sp.add_argument("-m", "--message", help="kept in the audit record of each decision")
            sp.add_argument("--force", action="store_true",
                            help="commit even files that changed in the workspace since the run")
    d = sub.add_parser("diff", help="print the pending changes as a patch `git apply` accepts")
    d.add_argument("ref", metavar="RUN")
    d.add_argument("paths", nargs="*", metavar="PATH")
    d.add_argument("--json", action="store_true", help="structured changeset")
    d.add_argument("--stat", action="store_true", help="diffstat only")
    x = sub.add_parser("export", help="write the pending changes as a commit on a new git "
                       "branch (working tree and index untouched)")
    x.add_argument("ref", metavar="RUN")
    x.add_argument("--branch", required=True, metavar="NAME", help="the new branch's name")
    x.add_argument("-m", "--message", help="commit message (default: session, run, command)")
    x.add_argument("--include-protected", action="store_true",
                   help="also export protected paths (CI config, hooks, policy...)")
    x.add_argument("--json", action="store_true")
    a = sub.add_parser("approve", help="commit pending changes (all, or the PATHs given)")
    a.add_argument("ref", metavar="RUN")
    a.add_argument("paths", nargs="*", metavar="PATH")
    a.add_argument("--force", action="store_true",
                   help="commit even files that changed in the workspace since the run")
    a.add_argument("--include-protected", action="store_true",
                   help="also commit protected paths (CI config, hooks, policy...)")
    a.add_argument("-m", "--message", help="kept in the audit record")
    a.add_argument("--json", action="store_true")
    j = sub.add_parser("reject", help="discard pending changes (all, or the PATHs given)")
    j.add_argument("ref", metavar="RUN")
    j.add_argument("paths", nargs="*", metavar="PATH")
    j.add_argument("-m", "--message", help="kept in the audit record")
    j.add_argument("--json", action="store_true")
    au = sub.add_parser("audit", help="show or verify the hash-chained audit log")
    au.add_argument("ref", nargs="?", metavar="RUN", help="only this run's or session's records")
    au.add_argument("--verify", action="store_true", help="check the chain; non-zero if broken")
    au.add_argument("--json", action="store_true")
    pol = sub.add_parser("policy", help="effective policy and where each field comes from")
    pol_sub = pol.add_subparsers(dest="policy_cmd", metavar="SUBCOMMAND", parser_class=_Parser)
    ps = pol_sub.add_parser("show", help="print each effective field with the file that set it")
    ps.add_argument("-C", dest="workspace", default=".", metavar="DIR")
    ps.add_argument("--policy", metavar="FILE")
    ps.add_argument("--json", action="store_true")
    doc = sub.add_parser("doctor", help="check host prerequisites, each with its fix")
    doc.add_argument("--json", action="store_true")
    from sandbox.cli._image import add_image_parser
    from sandbox.cli._profile import add_profile_parser

    add_profile_parser(sub)
    add_image_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return EXIT_USAGE
    from sandbox.cli import _commands

    try:
        return _commands.dispatch(args, parser)
    except SandboxError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sandbox: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `sandbox diff | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
