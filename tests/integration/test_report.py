"""`sandbox report` over an audit log built with known numbers: every figure checked."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from sandbox.audit import AuditLog
from tests.conftest import Cli
from tests.support.auditlogs import write_log

WS_A, WS_B = "/work/a", "/work/b"


def _ts(seconds: int, day: int = 20) -> str:
    h, rem = divmod(seconds, 3600)
    return f"2026-11-{day:02d}T{10 + h:02d}:{rem // 60:02d}:{rem % 60:02d}.000000Z"


def _run(ws: str, level: int) -> dict[str, object]:
    return {"command": ["agent"], "workspace": ws, "level": level}


def _blocked(reason: str, **extra: object) -> dict[str, object]:
    return {"key": "k1", "api": "messages", "model": "m", "reason": reason, "rule": "r", **extra}


KNOWN = [
    (_ts(0, day=19), "run.started", "s0", "u", _run(WS_A, 2)),  # before --since
    (_ts(1, day=19), "llm.blocked", "s0", "u", _blocked("tools")),
    # s1, level 2, an agent: one hunk accepted after 60 s, one rejected after 120 s
    (_ts(0), "run.started", "s1", "u", _run(WS_A, 2)),
    (_ts(1), "llm.call", "s1", "u", {"model": "m", "input_tokens": 1000, "output_tokens": 200,
                                     "cost_usd": 0.5}),
    (_ts(2), "changeset", "s1", "u", {"paths": ["a.py", "b.py"], "lines": [10, 4]}),
    (_ts(3), "llm.blocked", "s1", "u", _blocked("tools", tools=["Bash"], why="foreign")),
    (_ts(4), "llm.blocked", "s1", "u", _blocked("tools", tools=["x"], why="before-server")),
    (_ts(2), "decision", "s1", "policy", {"decision": "hold", "refused": []}),
    (_ts(62), "decision", "s1", "alice", {"decision": "approve", "paths": ["a.py"]}),
    (_ts(62), "commit", "s1", "alice", {"paths": ["a.py"]}),
    (_ts(122), "decision", "s1", "bob", {"decision": "reject", "paths": ["b.py"]}),
    # s2, level 4: auto-committed after 1 s, a device node refused
    (_ts(200), "run.started", "s2", "u", _run(WS_A, 4)),
    (_ts(201), "changeset", "s2", "u", {"paths": ["c.py"], "lines": [2]}),
    (_ts(201), "decision", "s2", "policy", {"decision": "auto-commit", "paths": ["c.py"],
                                            "refused": [{"path": "dev0", "reason": "device node"}]}),
    (_ts(201), "commit", "s2", "policy", {"paths": ["c.py"]}),
    # s3, level 2, an agent in workspace B: two runs, denials, still pending
    (_ts(300), "run.started", "s3", "u", _run(WS_B, 2)),
    (_ts(301), "tool.call", "s3", "u", {"tool": "bash"}),
    (_ts(302), "egress", "s3", "u", {"verdict": "denied", "host": "evil.example"}),
    (_ts(303), "egress", "s3", "u", {"verdict": "allowed", "host": "pypi.org"}),
    (_ts(304), "egress", "s3", "u", {"verdict": "denied", "host": "1.2.3.4"}),
    (_ts(305), "profile.denied", "s3", "u", {"syscall": "ptrace"}),
    (_ts(305), "llm.blocked", "s3", "u", _blocked("model")),
    (_ts(305), "llm.blocked", "s3", "u", _blocked("content")),
    (_ts(305), "llm.blocked", "s3", "u", _blocked("tools")),
    (_ts(306), "changeset", "s3", "u", {"paths": ["d.py", "ci.yml"], "lines": [6, 3]}),
    (_ts(306), "decision", "s3", "policy", {"decision": "hold", "refused": []}),
    (_ts(400), "run.started", "s3", "u", _run(WS_B, 2)),
    (_ts(401), "changeset", "s3", "u", {"paths": ["d.py", "ci.yml"], "lines": [8, 3]}),
    # s4, level 3: the low-risk file committed, the protected one held
    (_ts(500), "run.started", "s4", "u", _run(WS_A, 3)),
    (_ts(501), "changeset", "s4", "u", {"paths": ["e.py", ".bashrc"], "lines": [1, 1]}),
    (_ts(501), "decision", "s4", "policy", {"decision": "auto-commit", "paths": ["e.py"], "held": [
        {"path": ".bashrc", "reason": "held: touches .bashrc (protected path (matches '.bashrc'))"}]}),
    (_ts(501), "commit", "s4", "policy", {"paths": ["e.py"]}),
]


@pytest.fixture
def known(base_dir: Path) -> Cli:
    home = base_dir / "home" / "state"
    home.parent.mkdir()
    HomeLayout(home).ensure()
    write_log(AuditLog(home / "audit.log"), KNOWN)  # type: ignore[arg-type]
    return Cli(home=home)


def _report(cli: Cli, *args: str) -> dict[str, object]:
    p = cli("report", "--json", *args)
    assert p.returncode == 0, p.stderr
    data: dict[str, object] = json.loads(p.stdout)
    return data


def test_report_figures_from_known_log(known: Cli) -> None:
    r = _report(known, "--since", "2026-11-20")
    assert r["sessions"] == {"total": 4, "by_level": {"2": 2, "3": 1, "4": 1}, "committed": 2,
                             "agent": 2, "agent_committed": 1, "agent_committed_share": 0.5}
    assert r["runs"] == {"total": 5, "by_level": {"2": 3, "3": 1, "4": 1}}
    assert r["changes"] == {"proposed": {"files": 7, "lines": 29},
                            "accepted": {"files": 3, "lines": 13},
                            "rejected": {"files": 1, "lines": 4}}
    assert r["approval_latency_s"] == {"count": 2, "median": 90.0, "p90": 120.0}
    assert r["first_run_to_commit_s"] == {"count": 2, "median": 31.5, "p90": 62.0}
    assert r["llm"] == {"calls": 1, "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.5,
                        "cost_per_session_usd": 0.125, "tokens_per_session": 300.0,
                        "cost_per_accepted_file_usd": 0.166667, "tokens_per_accepted_file": 400.0}
    assert r["denials"] == {"egress": 2, "seccomp": 1}
    # refused before the model: not LLM calls (the one on day 19 is outside the range)
    assert r["llm_blocked"] == {"total": 5, "by_reason": {"content": 1, "model": 1, "tools": 3}}
    assert r["holds"] == {"protected": 1, "forbidden": 1}
    per = {s["id"]: s for s in r["per_session"]}  # type: ignore[attr-defined]
    assert per["s1"]["cost_usd"] == 0.5 and per["s1"]["committed"] is True
    assert per["s3"]["committed"] is False and per["s3"]["runs"] == 2
    assert (per["s1"]["llm_blocked"], per["s3"]["llm_blocked"], per["s2"]["llm_blocked"]) == (
        2, 3, 0)


def test_report_filters(known: Cli) -> None:
    everything = _report(known)
    assert everything["sessions"]["total"] == 5  # type: ignore[index]
    only_b = _report(known, "--workspace", WS_B)
    assert only_b["sessions"]["total"] == 1  # type: ignore[index]
    assert only_b["changes"]["proposed"] == {"files": 2, "lines": 11}  # type: ignore[index]
    assert only_b["denials"] == {"egress": 2, "seccomp": 1}
    assert only_b["llm"]["calls"] == 0  # type: ignore[index]
    assert only_b["llm_blocked"] == {"total": 3,
                                     "by_reason": {"content": 1, "model": 1, "tools": 1}}
    assert _report(known)["llm_blocked"]["by_reason"]["tools"] == 4  # type: ignore[index]
    day19 = _report(known, "--until", "2026-11-19")
    assert day19["runs"]["total"] == 1  # type: ignore[index]
    text = known("report", "--since", "2026-11-20").stdout.decode()
    assert ("LLM blocked     5 requests refused before the model (by reason {'content': 1, "
            "'model': 1, 'tools': 3})") in text
    bad = known("report", "--since", "yesterday-ish")
    assert bad.returncode == 2 and b"not a date" in bad.stderr


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [f"{tag}.{k}={v}" for k, v in attrs
                      if k in ("src", "href", "xlink:href", "action", "srcset", "data")]


def test_report_html_is_self_contained(known: Cli, base_dir: Path) -> None:
    out = base_dir / "report.html"
    p = known("report", "--since", "2026-11-20", "--html", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    parser = _Refs()
    parser.feed(page)
    assert parser.refs == [] and "script" not in parser.tags and "link" not in parser.tags
    assert "url(" not in page and "@import" not in page and "//" not in page.replace("<!--", "")
    assert page.count("<svg") == 7
    blocked = page.split("LLM requests blocked, by reason</figcaption>")[1].split("</svg>")[0]
    assert re.findall(r'font-size="12">([^<]+)</text>', blocked) == [
        "content", "1", "model", "1", "tools", "3"]
    assert "<b>5</b><span>LLM requests blocked</span>" in page
    assert "90 s" in page and "120 s" in page and "50.0 %" in page


def test_report_counts_lines_of_a_real_run(cli: Cli, workspace: Path) -> None:
    """The runner's changeset record carries each path's lines, so accepted lines are known."""
    p = cli("run", "--level", "4", "--", "sh", "-c", "printf 'a\\nb\\nc\\n' > new.txt",
            cwd=workspace)
    assert p.returncode == 0, p.stderr
    assert (workspace / "new.txt").read_text() == "a\nb\nc\n"
    r = _report(cli)
    assert r["changes"]["accepted"] == {"files": 1, "lines": 3}  # type: ignore[index]
    assert r["runs"] == {"total": 1, "by_level": {"4": 1}}
