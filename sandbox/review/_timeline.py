"""A run's audit records as a timeline in words, from start to commit.

One line per record: time (UTC), run or session, event, then what happened in a sentence
(who decided what, with their message). Every value comes from the log and may come from the
run (file names, argv), so all of it is escaped.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import assert_never

from sandbox.audit import AuditEvent, AuditRecord
from sandbox.review._safe import esc

__all__ = ["timeline"]

_SHOWN_PATHS = 5


def _s(value: object) -> str:
    return esc(str(value))


def _paths(value: object) -> str:
    items = [str(p) for p in value] if isinstance(value, list) else []
    shown = ", ".join(esc(p) for p in items[:_SHOWN_PATHS])
    more = len(items) - _SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "") if items else "nothing"


def _msg(data: Mapping[str, object]) -> str:
    message = data.get("message")
    return f': "{esc(str(message))}"' if message else ""


def _count(n: object, word: str) -> str:
    k = n if isinstance(n, int) else 0
    return f"{k} {word}{'' if k == 1 else 's'}"


def _started(rec: AuditRecord, d: Mapping[str, object]) -> str:
    cmd = d.get("command")
    argv = shlex.join(esc(str(a)) for a in cmd) if isinstance(cmd, list) else "?"
    return (f"started `{argv}` (level {_s(d.get('level'))}, backend {_s(d.get('backend'))}, "
            f"profile {_s(d.get('profile'))})")


def _finished(rec: AuditRecord, d: Mapping[str, object]) -> str:
    if d.get("status") == "failed" and "error" in d:
        return f"the sandbox failed: {_s(d.get('error'))}"
    how = "timed out" if d.get("timed_out") else f"exited {_s(d.get('exit_code'))}"
    usage = f" in {_s(d.get('duration_ms'))} ms" if d.get("duration_ms") is not None else ""
    notes = d.get("notes")
    extra = "; " + "; ".join(esc(str(n)) for n in notes) if isinstance(notes, list) and notes \
        else ""
    return how + usage + extra


def _changeset(rec: AuditRecord, d: Mapping[str, object]) -> str:
    total = d.get("total", 0)
    if not total:
        return "no changes"
    kinds = [f"{d[k]} {k.replace('_', ' ')}" for k in
             ("added", "modified", "deleted", "mode_changed", "type_changed")
             if isinstance(d.get(k), int) and d[k]]
    forbidden = f", {_s(d.get('forbidden'))} forbidden" if d.get("forbidden") else ""
    return (f"{_count(total, 'change')} ({', '.join(kinds)}{forbidden}), "
            f"+{_s(d.get('added_lines', 0))} -{_s(d.get('removed_lines', 0))} lines")


def _refused(d: Mapping[str, object]) -> str:
    refused = d.get("refused")
    if not isinstance(refused, list) or not refused:
        return ""
    parts = [f"{esc(str(r.get('path')))} ({esc(str(r.get('reason')))})" for r in refused
             if isinstance(r, dict)]
    return "; refused " + "; ".join(parts)


def _hunks(d: Mapping[str, object]) -> str:
    h = d.get("hunks")
    if not isinstance(h, dict):
        return ""
    out = []
    for key in ("accepted", "rejected", "pending"):
        nums = h.get(key)
        if isinstance(nums, list) and nums:
            out.append(f"{key} {', '.join(str(n) for n in nums)}")
    mode = d.get("mode")
    if mode:
        out.append(f"mode change {esc(str(mode))}")
    return f" ({_s(h.get('total'))} hunks): " + "; ".join(out)


def _decision(rec: AuditRecord, d: Mapping[str, object]) -> str:
    who = esc(rec.actor)
    kind = str(d.get("decision", "?"))
    match kind:
        case "hold":
            reasons = d.get("reasons")
            text = "; ".join(esc(str(r)) for r in reasons) if isinstance(reasons, list) else ""
            return f"{who} held the changes: {text}{_refused(d)}"
        case "auto-commit":
            held = d.get("held")
            extra = ""
            if isinstance(held, list) and held:
                extra = "; " + "; ".join(esc(str(h.get("reason"))) for h in held
                                         if isinstance(h, dict))
            return f"{who} auto-commits {_paths(d.get('paths'))}{extra}{_refused(d)}"
        case "approve":
            return f"{who} approved {_paths(d.get('paths'))}{_refused(d)}{_msg(d)}"
        case "keep-pending":
            return f"{who} kept the changes pending{_refused(d)}"
        case "reject":
            paths = d.get("paths") if "paths" in d else [d.get("path")]
            return f"{who} rejected {_paths(paths)}{_msg(d)}"
        case "accept":
            return f"{who} accepted {_s(d.get('path'))}{_msg(d)}"
        case "export":
            commit = str(d.get("commit", ""))[:12]
            return (f"{who} exported {_paths(d.get('paths'))} to branch "
                    f"{_s(d.get('branch'))} (commit {esc(commit)}){_msg(d)}")
        case "partial":
            return f"{who} decided per hunk on {_s(d.get('path'))}{_hunks(d)}{_msg(d)}"
        case _:
            return f"{who} decided {esc(kind)} on {_paths(d.get('paths'))}{_msg(d)}"


def _commit(rec: AuditRecord, d: Mapping[str, object]) -> str:
    paths = d.get("paths")
    n = len(paths) if isinstance(paths, list) else 0
    partial = d.get("partial")
    part = ""
    if isinstance(partial, list) and partial:
        part = "; partly: " + ", ".join(
            f"{esc(str(p.get('path')))} (hunks {', '.join(str(h) for h in p.get('hunks', []))})"
            if isinstance(p, dict) else "?" for p in partial)
    force = " (forced over conflicts)" if d.get("force") else ""
    return (f"{esc(rec.actor)} committed {_count(n, 'path')}: {_paths(paths)}{part}{force}"
            f"{_msg(d)}")


def _egress(rec: AuditRecord, d: Mapping[str, object]) -> str:
    return (f"{_s(d.get('verdict', '?'))} {_s(d.get('method', ''))} "
            f"{_s(d.get('host', '?'))}:{_s(d.get('port', '?'))} ({_s(d.get('reason', ''))})")


def _llm(rec: AuditRecord, d: Mapping[str, object]) -> str:
    if rec.event is AuditEvent.LLM_BLOCKED:
        return (f"LLM call to {_s(d.get('model', '?'))} blocked "
                f"({_s(d.get('reason', ''))}: {_s(d.get('rule', ''))})")
    cost = d.get("cost_usd")
    return (f"LLM {_s(d.get('model', '?'))} via {_s(d.get('provider', '?'))}: {_s(d.get('status', '?'))}, "
            f"{_s(d.get('input_tokens', 0))} in / {_s(d.get('output_tokens', 0))} out, "
            f"${cost if isinstance(cost, int | float) else 0:.4f}")


def _tool_call(rec: AuditRecord, d: Mapping[str, object]) -> str:
    """An agent's MCP tool call: tool, command or path, exit, changed paths."""
    subject = d.get("subject")
    what = f" {_s(subject)}" if subject is not None else ""
    status = str(d.get("status", "?"))
    tail = []
    if "exit" in d:
        tail.append(f"exit {_s(d.get('exit'))}")
    if d.get("changed"):
        tail.append(f"changed {_paths(d.get('changed'))}")
    if status != "ok":
        tail.append(esc(status) + (f": {_s(d.get('error'))}" if d.get("error") else ""))
    return f"{_s(d.get('tool', '?'))}{what}" + (f" -> {'; '.join(tail)}" if tail else "")


def _generic(rec: AuditRecord, d: Mapping[str, object]) -> str:
    return " ".join(f"{esc(k)}={esc(str(v))}" for k, v in d.items())


def _describer(event: AuditEvent) -> Callable[[AuditRecord, Mapping[str, object]], str]:
    match event:
        case AuditEvent.RUN_STARTED:
            return _started
        case AuditEvent.RUN_FINISHED:
            return _finished
        case AuditEvent.CHANGESET:
            return _changeset
        case AuditEvent.DECISION:
            return _decision
        case AuditEvent.COMMIT:
            return _commit
        case AuditEvent.EGRESS:
            return _egress
        case AuditEvent.LLM_CALL | AuditEvent.LLM_BLOCKED:
            return _llm
        case AuditEvent.TOOL_CALL:
            return _tool_call
        case AuditEvent.COMMIT_RECOVERED | AuditEvent.PROFILE_DENIED | (
                AuditEvent.SESSION_REJECTED):
            return _generic
        case _:
            assert_never(event)


def timeline(records: Sequence[AuditRecord]) -> str:
    """The records as aligned lines in words; "" for none (no trailing newline)."""
    rows = []
    for rec in records:
        try:
            text = _describer(rec.event)(rec, rec.data)
        except (TypeError, ValueError, AttributeError):
            text = _generic(rec, rec.data)  # a record of an older shape: still shown
        rows.append((rec.time.strftime("%Y-%m-%d %H:%M:%S"), esc(rec.run or rec.session or "-"),
                     str(rec.event), text))
    if not rows:
        return ""
    who_w = max(len(r[1]) for r in rows)
    ev_w = max(len(r[2]) for r in rows)
    return "\n".join(f"{t}  {w.ljust(who_w)}  {e.ljust(ev_w)}  {x}".rstrip()
                     for t, w, e, x in rows)
