"""`sandbox profile lint|show|compile|test|record`: argument parsing and rendering only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox.errors import UsageError

PROFILE_EPILOG = """\
FILE is a path to a Docker/OCI seccomp JSON profile or the name of a shipped one (default,
strict). Examples:
  sandbox profile lint my.json                 errors (exit 1), warnings by tier; --json for CI
  sandbox profile show default                 what is allowed, denied, conditional
  sandbox profile compile my.json --format kafel|bpf|pfc
  sandbox profile test my.json -- make test    which calls the profile denies, with counts
  sandbox profile record -- pytest -q > my.json

test and record run CMD confined exactly like `sandbox run` (same snapshot, hidden files, mounts,
network and limits of the workspace's policy); what CMD changes is discarded, never committed.
"""


def add_profile_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "profile", help="author and check seccomp profiles", epilog=PROFILE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Lint, show, compile, test and record Docker/OCI JSON seccomp profiles.")
    sub = p.add_subparsers(dest="profile_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    lint = sub.add_parser("lint", help="schema, names, dangerous allows (exit 1 on errors)")
    lint.add_argument("file", metavar="FILE")
    lint.add_argument("--json", action="store_true", help="machine-readable findings")
    lint.add_argument("--quiet", "-q", action="store_true", help="hide info findings")
    show = sub.add_parser("show", help="readable summary of a profile")
    show.add_argument("file", metavar="FILE")
    comp = sub.add_parser("compile", help="translate to kafel (nsjail), bpf or pfc (libseccomp)")
    comp.add_argument("file", metavar="FILE")
    comp.add_argument("--format", "-f", choices=("kafel", "bpf", "pfc"), default="kafel")
    comp.add_argument("--output", "-o", metavar="OUT", help="write here instead of stdout")
    test = sub.add_parser("test", help="run CMD sandboxed under FILE; report denied calls")
    test.add_argument("file", metavar="FILE")
    test.add_argument("--json", action="store_true")
    _confinement_args(test)
    test.add_argument("--timeout", type=int, default=600, metavar="S",
                      help="kill CMD after S seconds (default 600; 0: none)")
    test.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    rec = sub.add_parser("record", help="print a minimal allowlist profile for CMD")
    rec.add_argument("--base", default="default", metavar="NAME|PATH",
                     help="record under this profile; what it denies stays denied "
                          "(default: default)")
    rec.add_argument("--output", "-o", metavar="OUT", help="write here instead of stdout")
    _confinement_args(rec)
    rec.add_argument("--timeout", type=int, default=600, metavar="S",
                     help="kill CMD after S seconds (default 600; 0: none)")
    rec.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")


def _confinement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-C", dest="workspace", default=".", metavar="DIR",
                   help="workspace directory (default: current directory)")
    p.add_argument("--policy", metavar="FILE", help="extra policy layer (may only tighten)")


def _launch(args: argparse.Namespace) -> Any:
    """The confined launch of `sandbox run`, for CMD in the workspace under its policy."""
    from sandbox._home import HomeLayout
    from sandbox._profiling import ConfinedLaunch
    from sandbox._runner import check_workspace
    from sandbox.policy import load_policy

    workspace = check_workspace(Path(args.workspace))
    eff = load_policy(workspace, policy_file=Path(args.policy) if args.policy else None)
    return ConfinedLaunch(HomeLayout.from_env().ensure(), workspace, eff.policy,
                          tuple(_command(args)), timeout_s=float(args.timeout or 0) or None)


def _report_launch(launch: Any, verb: str) -> None:
    for note in launch.notes:
        print(f"sandbox: {verb}: {note}", file=sys.stderr)
    print(f"sandbox: {verb}: {launch.discard_note()}", file=sys.stderr)


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    elif cmd and cmd[0].startswith("-") and args.profile_cmd == "test":
        raise UsageError(f"{cmd[0]}: options go before FILE",
                         hint="sandbox profile test [-C DIR] [--policy FILE] FILE -- CMD")
    if not cmd:
        raise UsageError("missing command: sandbox profile " + args.profile_cmd + " ... -- CMD")
    return cmd


def _write(data: str | bytes, output: str | None) -> None:
    raw = data.encode() if isinstance(data, str) else data
    if output:
        Path(output).write_bytes(raw)
    elif isinstance(data, str):
        sys.stdout.write(data if data.endswith("\n") else data + "\n")
    else:
        sys.stdout.buffer.write(raw)
    sys.stdout.flush()


def run_profile(args: argparse.Namespace) -> int:
    match args.profile_cmd:
        case "lint":
            return _lint(args)
        case "show":
            from sandbox.seccomp import show

            _write(show(args.file), None)
            return 0
        case "compile":
            from sandbox.seccomp import Format, compile_profile

            _write(compile_profile(args.file, Format(args.format)), args.output)
            return 0
        case "test":
            return _test(args)
        case "record":
            return _record(args)
        case _:
            raise UsageError("usage: sandbox profile lint|show|compile|test|record ...")


def _lint(args: argparse.Namespace) -> int:
    from sandbox.seccomp import Severity, find_profile, lint_file

    _, path = find_profile(args.file)
    report = lint_file(path)
    if args.json:
        _write(report.to_json(), None)
    else:
        lines = report.render().splitlines()
        if args.quiet:
            lines = [ln for ln in lines if f": {Severity.INFO}: " not in ln]
        _write("\n".join(lines), None)
    return 0 if report.ok else 1


def _test(args: argparse.Namespace) -> int:
    from sandbox._profiling import test_profile
    from sandbox.seccomp import load_profile

    launch = _launch(args)
    name, profile = load_profile(args.file)
    # --json: the report owns stdout, so the command's output goes to stderr
    report = test_profile(launch, profile, name=name, stdout_to_stderr=args.json)
    _report_launch(launch, "profile test")
    if args.json:
        _write(report.to_json(), None)
    else:
        print(report.render(), file=sys.stderr)
    if report.denials:
        return 1
    return report.exit_code


def _record(args: argparse.Namespace) -> int:
    from sandbox._profiling import record
    from sandbox.seccomp import load_profile

    launch = _launch(args)
    base_name, base = load_profile(args.base)
    rec = record(launch, base, base_name=base_name)
    _report_launch(launch, "profile record")
    for d in rec.denied:
        print(f"sandbox: record: {d.name} denied {d.count}x by the base profile {base_name} "
              f"({d.verdict}); left out", file=sys.stderr)
    _write(json.dumps(rec.profile_json, indent=2), args.output)
    if rec.exit_code != 0:
        print(f"sandbox: record: the command exited {rec.exit_code}", file=sys.stderr)
    return rec.exit_code
