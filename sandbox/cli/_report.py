"""`sandbox report`: argument parsing and rendering only (sandbox/report computes)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def add_report_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="what the agents did and what it cost, from the audit log",
        description="Sessions and runs per level, changes proposed/accepted/rejected, approval "
        "latency, time to commit, tokens and cost, denials and holds: from the audit log alone.")
    p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD (UTC) or an ISO 8601 time")
    p.add_argument("--until", metavar="DATE", help="exclusive; a bare date includes that day")
    p.add_argument("--workspace", metavar="W", help="only sessions of this workspace")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the figures as JSON, for pipelines")
    out.add_argument("--html", metavar="FILE",
                     help="a self-contained HTML page with charts (opens offline)")


def run_report(args: argparse.Namespace) -> int:
    from sandbox._home import HomeLayout
    from sandbox.audit import AuditLog
    from sandbox.errors import UsageError
    from sandbox.report import build_report, parse_when, render_html, render_text

    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until, end_of_day=True) if args.until else None
    if since and until and since >= until:
        raise UsageError("--since must be before --until")
    data = build_report(AuditLog(HomeLayout.from_env().audit), since=since, until=until,
                        workspace=args.workspace)
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.html:
        target = Path(args.html)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_text(render_html(data), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror}") from exc
    else:
        print(render_text(data))
    return 0
