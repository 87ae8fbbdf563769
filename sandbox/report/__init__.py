"""The ROI report: `sandbox report` and the console's Report page, from the audit log alone.

data = build_report(AuditLog(path), since="2026-11-01", until=None, workspace=None)
html = render_html(data)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import AuditError, UsageError
from sandbox.report._compute import compute
from sandbox.report._html import render_html

if TYPE_CHECKING:
    from sandbox.audit import AuditLog

__all__ = ["build_report", "parse_when", "render_html", "render_text"]


def parse_when(text: str, *, end_of_day: bool = False) -> str:
    """A date (YYYY-MM-DD, UTC) or an ISO 8601 time, as the audit log's timestamp format.
    With `end_of_day`, a bare date means the start of the next day (so --until includes it)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_report(log: AuditLog, *, since: str | None = None, until: str | None = None,
                 workspace: str | None = None) -> dict[str, object]:
    ws = str(Path(workspace).absolute()) if workspace else None
    try:
        with open(log.path, "rb") as f:
            report = compute(f, since=since, until=until, workspace=ws)
    except FileNotFoundError:
        report = compute([], since=since, until=until, workspace=ws)
    except OSError as exc:
        raise AuditError(f"cannot read audit log {log.path}: {exc.strerror}") from exc
    return report.to_json()


def render_text(data: dict[str, object]) -> str:
    def get(*keys: str) -> object:
        cur: object = data
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return "-" if cur is None else cur

    return "\n".join([
        f"sessions        {get('sessions', 'total')} (by level {get('sessions', 'by_level')}); "
        f"committed {get('sessions', 'committed')}",
        f"runs            {get('runs', 'total')} (by level {get('runs', 'by_level')})",
        *(f"{kind:<16}{get('changes', kind, 'files')} files, {get('changes', kind, 'lines')} lines"
          for kind in ("proposed", "accepted", "rejected")),
        f"approval wait   median {get('approval_latency_s', 'median')} s, "
        f"p90 {get('approval_latency_s', 'p90')} s ({get('approval_latency_s', 'count')} decisions)",
        f"run to commit   median {get('first_run_to_commit_s', 'median')} s, "
        f"p90 {get('first_run_to_commit_s', 'p90')} s",
        f"LLM             {get('llm', 'calls')} calls, {get('llm', 'input_tokens')} in + "
        f"{get('llm', 'output_tokens')} out tokens, {get('llm', 'cost_usd')} USD; "
        f"{get('llm', 'cost_per_accepted_file_usd')} USD per accepted file",
        f"LLM blocked     {get('llm_blocked', 'total')} requests refused before the model "
        f"(by reason {get('llm_blocked', 'by_reason')})",
        f"denials         egress {get('denials', 'egress')}, seccomp {get('denials', 'seccomp')}",
        f"holds           protected {get('holds', 'protected')}, "
        f"forbidden {get('holds', 'forbidden')}",
        f"agent sessions  {get('sessions', 'agent')}, committed "
        f"{get('sessions', 'agent_committed')} (share {get('sessions', 'agent_committed_share')})",
    ])
