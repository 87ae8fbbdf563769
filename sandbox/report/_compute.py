"""The ROI report's figures, computed from the audit log alone, in one pass.

Definitions (also in the README):
- a session's level is the level of its first run; its workspace that run's workspace;
- proposed: the distinct paths a session's changesets named (with each path's lines, added +
  removed, as last seen); accepted: paths committed; rejected: paths a person rejected;
- approval latency: from the first changeset naming a path to the person's decision on it
  (approve or reject, not policy's), one figure per decision: its oldest path's wait;
- first run to commit: per committed session, its first run to its last commit;
- an agent session is one with an LLM call or an MCP tool call; it ended committed when it has
  a commit and no pending or rejected change is left at the end of the range;
- LLM requests blocked: the gateway's `llm.blocked` records (refused before dispatch), per
  reason (`tools`: a tool that is not the agent's; `model`: not in the key's allowlist;
  `content`: a content rule), not counted as LLM calls.
Records outside [since, until) are read to follow sessions across the boundary (when a path
was first proposed) but only those inside are counted.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sandbox.audit import AuditEvent

__all__ = ["Report", "Session", "compute", "quantiles"]


@dataclass
class Session:
    id: str
    workspace: str | None = None
    level: int | None = None
    first_run: str | None = None
    last_commit: str | None = None
    runs: int = 0
    agent: bool = False
    lines: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, str] = field(default_factory=dict)
    proposed: set[str] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    llm_blocked: dict[str, int] = field(default_factory=dict)  # per reason
    tool_calls: int = 0
    egress_denied: int = 0
    seccomp_denied: int = 0
    protected: set[str] = field(default_factory=set)  # held or refused by a protected rule
    forbidden: set[str] = field(default_factory=set)  # refused as forbidden
    latencies: list[float] = field(default_factory=list)
    counted: bool = False  # has at least one record inside the range

    @property
    def committed(self) -> bool:
        # Some of it reached the workspace and nothing waits for a person any more (a path
        # rejected while others were accepted does not undo the commit).
        return bool(self.accepted) and not (self.proposed - self.accepted - self.rejected)

    def lines_of(self, paths: Iterable[str]) -> int:
        return sum(self.lines.get(p, 0) for p in paths)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "workspace": self.workspace, "level": self.level, "runs": self.runs,
            "agent": self.agent, "committed": self.committed,
            "proposed_files": len(self.proposed), "accepted_files": len(self.accepted),
            "rejected_files": len(self.rejected), "llm_calls": self.llm_calls,
            "llm_blocked": sum(self.llm_blocked.values()),
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    """count, median and p90 (nearest rank) of `values`, in seconds rounded to the ms."""
    if not values:
        return {"count": 0, "median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"count": len(ordered), "median": round(statistics.median(ordered), 3),
            "p90": round(p90, 3)}


def _seconds(start: str, end: str) -> float:
    # fromisoformat is C code and reads the log's "...Z" stamps (strptime is 10x slower).
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _verdicts(value: object) -> Iterator[tuple[str, str]]:
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield str(item.get("path", "")), str(item.get("reason", ""))


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass
class Report:
    since: str | None
    until: str | None
    workspace: str | None
    records: int = 0
    sessions: dict[str, Session] = field(default_factory=dict)
    runs_by_level: dict[int, int] = field(default_factory=dict)
    by_day: dict[str, dict[str, float]] = field(default_factory=dict)

    def _session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = Session(sid)
        return s

    def selected(self) -> Iterator[Session]:
        for s in self.sessions.values():
            if s.counted and (self.workspace is None or s.workspace == self.workspace):
                yield s

    def _day(self, ts: str) -> dict[str, float]:
        return self.by_day.setdefault(ts[:10], {"runs": 0, "accepted_files": 0, "cost_usd": 0.0})

    def add(self, rec: dict[str, object]) -> None:
        ts, event = str(rec.get("ts", "")), rec.get("event")
        data = rec.get("data")
        d: dict[str, object] = data if isinstance(data, dict) else {}
        inside = (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)
        s = self._session(str(rec.get("session") or ""))
        if event == "run.started":
            if s.workspace is None and isinstance(d.get("workspace"), str):
                s.workspace = str(d["workspace"])
            level = d.get("level")
            if s.level is None and isinstance(level, int):
                s.level = level
        elif event == "changeset":
            paths, lines = _strs(d.get("paths")), d.get("lines")
            for i, path in enumerate(paths):
                s.first_seen.setdefault(path, ts)
                if isinstance(lines, list) and i < len(lines):
                    s.lines[path] = int(_num(lines[i]))
        if not inside:
            return
        if self.workspace is not None and s.workspace != self.workspace:
            return  # a session's first record (run.started) names its workspace
        self.records += 1
        s.counted = True
        self._count(s, ts, event, d, str(rec.get("actor", "")))

    def _count(self, s: Session, ts: str, event: object, d: dict[str, object], actor: str) -> None:
        match event:
            case AuditEvent.RUN_STARTED:
                s.runs += 1
                s.first_run = s.first_run or ts
                level = s.level or 0
                self.runs_by_level[level] = self.runs_by_level.get(level, 0) + 1
                self._day(ts)["runs"] += 1
            case AuditEvent.CHANGESET:
                s.proposed.update(_strs(d.get("paths")))
            case AuditEvent.DECISION:
                paths = _strs(d.get("paths"))
                decision = d.get("decision")
                if decision == "reject":
                    s.rejected.update(paths)
                if decision in ("approve", "reject") and actor != "policy" and paths:
                    seen = [s.first_seen[p] for p in paths if p in s.first_seen]
                    if seen:
                        s.latencies.append(max(0.0, _seconds(min(seen), ts)))
                # Each run's decision repeats what is still held: count paths, not records.
                for key in ("refused", "held"):
                    for path, reason in _verdicts(d.get(key)):
                        if "protected path" in reason:
                            s.protected.add(path)
                        elif key == "refused":
                            s.forbidden.add(path)
            case AuditEvent.COMMIT:
                paths = _strs(d.get("paths"))
                s.accepted.update(paths)
                s.proposed.update(paths)
                s.last_commit = ts
                self._day(ts)["accepted_files"] += len(paths)
            case AuditEvent.LLM_CALL:
                s.agent = True
                s.llm_calls += 1
                s.input_tokens += int(_num(d.get("input_tokens")))
                s.output_tokens += int(_num(d.get("output_tokens")))
                s.cost_usd += _num(d.get("cost_usd"))
                self._day(ts)["cost_usd"] += _num(d.get("cost_usd"))
            case AuditEvent.LLM_BLOCKED:
                reason = str(d.get("reason") or "unknown")
                s.llm_blocked[reason] = s.llm_blocked.get(reason, 0) + 1
            case AuditEvent.TOOL_CALL:
                s.agent = True
                s.tool_calls += 1
            case AuditEvent.EGRESS:
                if d.get("verdict") == "denied":
                    s.egress_denied += 1
            case AuditEvent.PROFILE_DENIED:
                s.seccomp_denied += 1
            case _:
                pass

    def to_json(self) -> dict[str, object]:
        sel = [s for s in self.selected() if s.id or s.runs]
        unattributed = self.sessions.get("")
        everything = sel + ([unattributed] if unattributed and unattributed not in sel
                            and unattributed.counted and self.workspace is None else [])
        by_level: dict[str, int] = {}
        for s in sel:
            key = str(s.level or "unknown")
            by_level[key] = by_level.get(key, 0) + 1
        agents = [s for s in sel if s.agent]
        committed_agents = [s for s in agents if s.committed]
        accepted = sum(len(s.accepted) for s in sel)
        tokens = sum(s.input_tokens + s.output_tokens for s in everything)
        cost = sum(s.cost_usd for s in everything)
        runs_total = sum(self.runs_by_level.values())
        blocked: Counter[str] = Counter()
        for s in everything:
            blocked.update(s.llm_blocked)
        return {
            "range": {"since": self.since, "until": self.until, "workspace": self.workspace},
            "records": self.records,
            "sessions": {
                "total": len(sel), "by_level": dict(sorted(by_level.items())),
                "committed": sum(1 for s in sel if s.committed),
                "agent": len(agents), "agent_committed": len(committed_agents),
                "agent_committed_share": (round(len(committed_agents) / len(agents), 4)
                                          if agents else None),
            },
            "runs": {"total": runs_total,
                     "by_level": {str(k or "unknown"): v
                                  for k, v in sorted(self.runs_by_level.items())}},
            "changes": {
                kind: {"files": sum(len(getattr(s, kind)) for s in sel),
                       "lines": sum(s.lines_of(getattr(s, kind)) for s in sel)}
                for kind in ("proposed", "accepted", "rejected")
            },
            "approval_latency_s": quantiles([x for s in sel for x in s.latencies]),
            "first_run_to_commit_s": quantiles([
                _seconds(s.first_run, s.last_commit) for s in sel
                if s.first_run and s.last_commit and s.committed]),
            "llm": {
                "calls": sum(s.llm_calls for s in everything),
                "input_tokens": sum(s.input_tokens for s in everything),
                "output_tokens": sum(s.output_tokens for s in everything),
                "cost_usd": round(cost, 6),
                "cost_per_session_usd": round(cost / len(sel), 6) if sel else None,
                "tokens_per_session": round(tokens / len(sel), 1) if sel else None,
                "cost_per_accepted_file_usd": round(cost / accepted, 6) if accepted else None,
                "tokens_per_accepted_file": round(tokens / accepted, 1) if accepted else None,
            },
            "llm_blocked": {"total": blocked.total(),
                            "by_reason": dict(sorted(blocked.items()))},
            "denials": {"egress": sum(s.egress_denied for s in everything),
                        "seccomp": sum(s.seccomp_denied for s in everything)},
            "holds": {"protected": sum(len(s.protected) for s in sel),
                      "forbidden": sum(len(s.forbidden) for s in sel)},
            "by_day": [{"day": k, **v} for k, v in sorted(self.by_day.items())],
            "per_session": [s.to_json() for s in sorted(sel, key=lambda s: -s.cost_usd)],
        }


def compute(lines: Iterable[bytes], *, since: str | None = None, until: str | None = None,
            workspace: str | None = None) -> Report:
    """The report over raw log lines (JSON objects; lines that are not are skipped: the report
    is not the verifier, `sandbox audit --verify` is)."""
    report = Report(since, until, workspace)
    loads = json.loads
    for line in lines:
        try:
            rec = loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            report.add(rec)
    return report
