"""`sandbox review` (interactive, per file and per hunk) and `sandbox export` (PR-style branch).

Both hold the session's lock for their whole duration, so a run of the same session cannot
change the pending changes while they are looked at: what the person saw is what is applied.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import TYPE_CHECKING, Any

from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.cli._commands import Ctx
    from sandbox.review import ApplyResult


def review(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.cli._commands import _load, _pending
    from sandbox.governance import by_risk, classify
    from sandbox.review import (
        Finish,
        Loader,
        ReviewApp,
        Target,
        apply_plan,
        build_state,
        make_plan,
        run_tui,
        utf8_terminal,
    )

    session = ctx.store.resolve(args.ref).session
    with ctx.store.session_lock(session.id, timeout=0):
        resolved, cs, upper = _pending(ctx, args.ref)
        if not cs:
            print("nothing pending")
            return 0
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError("`sandbox review` needs a terminal",
                             hint="use `sandbox diff RUN` and `sandbox approve RUN [PATH...]` "
                             "or `sandbox reject RUN [PATH...]`")
        workspace = resolved.session.workspace
        policy = _load(workspace, None, []).policy
        state = build_state(cs, [classify(c, policy) for c in cs.changes],
                            order=by_risk(cs, policy))
        ascii_only = not utf8_terminal()
        run_id = resolved.run.id if resolved.run else None
        title = session.id + (f" (run {run_id})" if run_id else "")
        app = ReviewApp(state, Loader(upper, workspace, ascii_only=ascii_only, changes=cs).detail,
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
        target = Target(session.id, ctx.layout.session_dir(session.id), upper, workspace,
                        ctx.layout.journal_dir, resolved.session.started_ns, run_id)
        result = apply_plan(plan, cs, target, ctx.audit, message=args.message, force=args.force)
        left = _settle(ctx, session.id, result)
    _print_result(result, left)
    return 0


def _settle(ctx: Ctx, session_id: str, result: ApplyResult) -> int:
    """Record the session's new state; return how many changes are still pending."""
    from sandbox.review import Choice
    from sandbox.store import Decision, SessionState

    session = ctx.store.get_session(session_id)
    upper = ctx.layout.session_dirs(session_id).upper
    from sandbox.cli._commands import _proposed

    left, _ = _proposed(ctx, session, upper)  # ignored output left over is not pending
    committed = bool(result.committed or result.partial)
    discarded = bool(result.discarded) or any(p.rest is Choice.REJECT for p in result.partial)
    if left:
        state, decision = SessionState.PENDING, Decision.PENDING
    elif committed and discarded:
        state, decision = SessionState.PARTIAL, Decision.PARTIAL
    elif committed:
        state, decision = SessionState.COMMITTED, Decision.COMMITTED
    else:
        state, decision = SessionState.REJECTED, Decision.REJECTED
    ctx.store.set_session_state(session_id, state)
    for run in ctx.store.list_runs(limit=1, session_id=session_id):
        ctx.store.set_decision(run.id, decision)
    return len(left.changes) if left else 0


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


def export(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.audit import AuditEvent
    from sandbox.cli._commands import _load, _pending
    from sandbox.governance import classify
    from sandbox.review import esc, export_changeset

    session = ctx.store.resolve(args.ref).session
    with ctx.store.session_lock(session.id, timeout=10):
        # export judges ignored output itself (and says what it left out, and why)
        resolved, cs, upper = _pending(ctx, args.ref, include_ignored=True)
        if not cs:
            raise UsageError(f"nothing pending in session {session.id} to export")
        workspace = resolved.session.workspace
        policy = _load(workspace, None, []).policy
        message = args.message or _default_message(resolved)
        result = export_changeset(cs, [classify(c, policy) for c in cs.changes], upper=upper,
                                  workspace=workspace, branch=args.branch, message=message,
                                  include_protected=args.include_protected)
    ctx.audit.append(AuditEvent.DECISION, run=resolved.run.id if resolved.run else None,
                     session=session.id, data={
                         "decision": "export", "branch": result.branch,
                         "commit": result.commit, "base": result.base,
                         "paths": list(result.paths),
                         "skipped": [{"path": p, "reason": r} for p, r in result.skipped],
                         "carried": list(result.carried), "message": args.message})
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


def _default_message(resolved: Any) -> str:
    # Escaped: `git log` prints a message's control characters as they are, so a command
    # line from the run must not carry escape sequences into every reviewer's terminal.
    from sandbox.review import esc

    run = resolved.run
    subject = f"sandbox: changes of session {resolved.session.id}"
    body = [f"Session: {resolved.session.id}"]
    if run is not None:
        body += [f"Run: {run.id}", f"Command: {esc(shlex.join(run.command))}"]
    return subject + "\n\n" + "\n".join(body) + "\n"
