"""The report as one self-contained HTML file: inline CSS and inline SVG charts, no script, no
external reference of any kind, so it opens offline and can be mailed as it is.

Everything that comes from the log (session ids, workspace paths) is escaped as text, and
control, bidi and zero-width characters are shown as escapes, never acted on.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from sandbox.audit._render import safe_text

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1b1f24;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em}
.sub{color:#57606a}.tiles{display:flex;flex-wrap:wrap;gap:.8em;margin:1.2em 0}
.tile{border:1px solid #d0d7de;border-radius:6px;padding:.6em .9em;min-width:9em}
.tile b{display:block;font-size:1.35em}.tile span{color:#57606a;font-size:.85em}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}
figcaption{font-weight:600;margin-bottom:.3em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #d0d7de;padding:.3em .5em;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
code{font-size:.95em}
"""
_PALETTE = ("#0969da", "#1a7f37", "#cf222e", "#8250df", "#bf8700", "#57606a")


def _t(value: object) -> str:
    return html.escape(safe_text(str(value)), quote=True)


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        digits = 4 if abs(value) < 1 else 2
        text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _bars(caption: str, items: Sequence[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG (one bar per item, value written at its end)."""
    width, label_w, row = 420, 130, 26
    height = max(1, len(items)) * row + 8
    top = max((v for _, v in items), default=0) or 1
    parts = [f'<figure><figcaption>{_t(caption)}</figcaption>'
             f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{_t(caption)}">']
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = (width - label_w - 70) * (value / top)
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="12">{_t(label)}'
            f'</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{color}"/><text x="{label_w + w + 4:.1f}" y="{y + 16}" font-size="12">'
            f'{_t(_fmt(value, unit))}</text>')
    if not items:
        parts.append('<text x="4" y="18" font-size="12">no data</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _tile(label: str, value: str) -> str:
    return f'<div class="tile"><b>{_t(value)}</b><span>{_t(label)}</span></div>'


def _num(m: Mapping[str, object], key: str) -> float:
    v = m.get(key)
    return float(v) if isinstance(v, int | float) else 0.0


def _m(data: Mapping[str, object], key: str) -> Mapping[str, object]:
    v = data.get(key)
    return v if isinstance(v, dict) else {}


def render_html(data: Mapping[str, object]) -> str:
    rng, sessions, runs = _m(data, "range"), _m(data, "sessions"), _m(data, "runs")
    changes, llm = _m(data, "changes"), _m(data, "llm")
    lat, ttc = _m(data, "approval_latency_s"), _m(data, "first_run_to_commit_s")
    denials, holds = _m(data, "denials"), _m(data, "holds")
    blocked = _m(data, "llm_blocked")
    by_reason = _m(blocked, "by_reason")
    share = sessions.get("agent_committed_share")
    scope = (f"{rng.get('since') or 'the beginning'} to {rng.get('until') or 'now'}"
             + (f", workspace {rng['workspace']}" if rng.get("workspace") else ""))
    tiles = [
        ("sessions", _fmt(sessions.get("total"))), ("runs", _fmt(runs.get("total"))),
        ("files accepted", _fmt(_m(changes, "accepted").get("files"))),
        ("lines accepted", _fmt(_m(changes, "accepted").get("lines"))),
        ("approval latency, median", _fmt(lat.get("median"), " s")),
        ("approval latency, p90", _fmt(lat.get("p90"), " s")),
        ("first run to commit, median", _fmt(ttc.get("median"), " s")),
        ("LLM cost", _fmt(llm.get("cost_usd"), " USD")),
        ("cost per accepted file", _fmt(llm.get("cost_per_accepted_file_usd"), " USD")),
        ("LLM requests blocked", _fmt(blocked.get("total"))),
        ("agent sessions committed",
         "-" if not isinstance(share, int | float) else f"{share * 100:.1f} %"),
    ]
    by_level = _m(runs, "by_level")
    days = data.get("by_day")
    day_rows = [d for d in days if isinstance(d, dict)] if isinstance(days, list) else []
    charts = [
        _bars("Runs per level", [(f"level {k}", _num(by_level, k)) for k in by_level]),
        _bars("Changes (files)", [(k, _num(_m(changes, k), "files"))
                                  for k in ("proposed", "accepted", "rejected")]),
        _bars("Changes (lines)", [(k, _num(_m(changes, k), "lines"))
                                  for k in ("proposed", "accepted", "rejected")]),
        _bars("Denials and holds", [("egress denied", _num(denials, "egress")),
                                    ("seccomp denied", _num(denials, "seccomp")),
                                    ("protected held", _num(holds, "protected")),
                                    ("forbidden refused", _num(holds, "forbidden"))]),
        _bars("LLM requests blocked, by reason", [(k, _num(by_reason, k)) for k in by_reason]),
        _bars("Accepted files per day", [(str(d["day"]), _num(d, "accepted_files"))
                                         for d in day_rows[-31:]]),
        _bars("LLM cost per day", [(str(d["day"]), _num(d, "cost_usd")) for d in day_rows[-31:]],
              " USD"),
    ]
    per = data.get("per_session")
    rows = [s for s in per if isinstance(s, dict)][:50] if isinstance(per, list) else []
    cols = ("id", "workspace", "level", "runs", "proposed_files", "accepted_files",
            "rejected_files", "input_tokens", "output_tokens", "cost_usd", "llm_blocked",
            "committed")
    table = "".join(
        "<tr>" + "".join(f"<td>{_t(_fmt(s.get(c)))}</td>" for c in cols) + "</tr>" for s in rows)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>sandbox report</title><style>{_CSS}</style></head><body>"
        f"<h1>What the agents did, and what it cost</h1><p class=\"sub\">{_t(scope)} · "
        f"{_t(_fmt(data.get('records')))} audit records · computed from the audit log alone</p>"
        f"<div class=\"tiles\">{''.join(_tile(k, v) for k, v in tiles)}</div>"
        f"<h2>Charts</h2><div class=\"charts\">{''.join(charts)}</div>"
        f"<h2>Sessions by cost (top {len(rows)})</h2><table><thead><tr>"
        + "".join(f"<th>{_t(c.replace('_', ' '))}</th>" for c in cols)
        + f"</tr></thead><tbody>{table}</tbody></table></body></html>\n"
    )
