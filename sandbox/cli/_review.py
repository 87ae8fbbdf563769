"""`sandbox review` (interactive, per file and per hunk) and `sandbox export` (PR-style branch).

Both go through the library's session lifecycle (`sandbox.lifecycle`), which holds the
session's lock for their whole duration, so a run of the same session cannot change the pending
changes while they are looked at: what the person saw is what is applied.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.cli._commands import Ctx
    from sandbox.review import ApplyResult
    from sandbox.store import ResolvedRef


def review(ctx: Ctx, ref: ResolvedRef, args: argparse.Namespace) -> int:
    from sandbox.governance import by_risk
    from sandbox.review import (
        Finish,
        Loader,
        ReviewApp,
        build_state,
        make_plan,
        run_tui,
        utf8_terminal,
    )

    with ctx.lifecycle.reviewing(ref) as pending:
        cs = pending.changeset
        if not cs:
            print("nothing pending")
            return 0
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError("`sandbox review` needs a terminal",
                             hint="use `sandbox diff RUN` and `sandbox approve RUN [PATH...]` "
                             "or `sandbox reject RUN [PATH...]`")
        workspace = pending.session.workspace
        state = build_state(cs, pending.verdicts(), order=by_risk(cs, pending.policy))
        ascii_only = not utf8_terminal()
        run_id = pending.run_id
        title = pending.session.id + (f" (run {run_id})" if run_id else "")
        app = ReviewApp(state, Loader(pending.upper, workspace, ascii_only=ascii_only,
                                      changes=cs).detail,
                        title=title, ascii_only=ascii_only)
        finish = run_tui(app)
        if finish is Finish.CANCEL:
            print(f"nothing applied; {len(cs.changes)} change(s) still pending")
            return 0
        plan = make_plan(app.state, app.hunked(),
                         discard_pending=finish is Finish.APPLY_DISCARD)
        if plan.empty:
            print("nothing to apply")
            return 0
        done = ctx.lifecycle.apply_review(pending, plan, message=args.message, force=args.force)
    _print_result(done.result, done.left)
    return 0


def _print_result(result: ApplyResult, left: int) -> None:
    from sandbox.review import Choice, esc

    print(f"committed {len(result.committed)} change(s)"
          + (f" and part of {len(result.partial)} file(s)" if result.partial else "")
          + f"; discarded {len(result.discarded)}; {left} still pending")
    for path in result.committed:
        print(f"  committed: {esc(path)}")
    for p in result.partial:
        what = f"hunk(s) {', '.join(map(str, p.hunks))}" if p.hunks else "the mode change"
        rest = "discarded" if p.rest is Choice.REJECT else "pending"
        print(f"  committed {what} of {esc(p.path)}; the rest is {rest}")
    for path in result.discarded:
        print(f"  discarded: {esc(path)}")
    for path in result.deferred:
        print(f"  still pending: {esc(path)} (needs changes you did not accept)")


def export(ctx: Ctx, ref: ResolvedRef, args: argparse.Namespace) -> int:
    from sandbox.review import esc

    result = ctx.lifecycle.export(ref, args.branch, message=args.message,
                                  include_protected=args.include_protected)
    if args.json:
        print(json.dumps({"branch": result.branch, "commit": result.commit,
                          "base": result.base, "paths": list(result.paths),
                          "carried": list(result.carried),
                          "skipped": [{"path": p, "reason": r} for p, r in result.skipped]},
                         indent=2))
        return 0
    base = f", parent {result.base[:12]}" if result.base else ""
    print(f"exported {len(result.paths)} change(s) to branch {esc(result.branch)} "
          f"(commit {result.commit[:12]}{base}); the working tree and index are untouched")
    if result.carried:
        print(f"  with the {len(result.carried)} commit(s) made inside, messages and authors kept")
    for path, why in result.skipped:
        print(f"  left out {esc(path)}: {esc(why)}")
    return 0
