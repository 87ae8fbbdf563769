"""Reviewing pending changes: safe rendering, per-file and per-hunk decisions, partial commits,
the interactive screen, PR-style export and the audit timeline.

Typical flow (what `sandbox review RUN` does, holding the session lock):

    state = build_state(cs, [classify(c, policy) for c in cs.changes])
    app = ReviewApp(state, Loader(upper, workspace).detail, title=session_id)
    finish = run_tui(app)                       # keys in, decisions out
    plan = make_plan(app.state, app.hunked(), discard_pending=finish is Finish.APPLY_DISCARD)
    result = apply_plan(plan, cs, Target(...), audit, message=msg)

Everything shown on a terminal goes through `esc`/`esc_line` (names, contents, reasons).
"""

from typing import TYPE_CHECKING, Any

from sandbox.review._safe import cell_width, describe_binary, esc, esc_line, sniff_type, wrap_cells

if TYPE_CHECKING:
    from sandbox.review._app import Finish, ReviewApp, Style
    from sandbox.review._apply import (
        ApplyResult,
        HunkedFile,
        PartialOutcome,
        Plan,
        Target,
        apply_plan,
        make_plan,
    )
    from sandbox.review._detail import Detail, Loader, Row, RowKind
    from sandbox.review._export import ExportResult, export_changeset
    from sandbox.review._hunks import Hunk, TextDiff, text_diff
    from sandbox.review._model import (
        Choice,
        Item,
        Mark,
        ReviewState,
        Tally,
        build_state,
        hunkable,
    )
    from sandbox.review._patchview import (
        decode_binary_literal,
        patch_lines,
        terminal_lines,
        terminal_patch,
    )
    from sandbox.review._timeline import timeline
    from sandbox.review._tui import run_tui, utf8_terminal

# `esc` is on every command's output path (`sandbox run` included), the rest only on review,
# diff, audit and export: those modules load on first use.
_LAZY = {
    **dict.fromkeys(("Finish", "ReviewApp", "Style"), "_app"),
    **dict.fromkeys(("ApplyResult", "HunkedFile", "PartialOutcome", "Plan", "Target",
                     "apply_plan", "make_plan"), "_apply"),
    **dict.fromkeys(("Detail", "Loader", "Row", "RowKind"), "_detail"),
    **dict.fromkeys(("ExportResult", "export_changeset"), "_export"),
    **dict.fromkeys(("Hunk", "TextDiff", "text_diff"), "_hunks"),
    **dict.fromkeys(("Choice", "Item", "Mark", "ReviewState", "Tally", "build_state",
                     "hunkable"), "_model"),
    **dict.fromkeys(("decode_binary_literal", "patch_lines", "terminal_lines",
                     "terminal_patch"), "_patchview"),
    "timeline": "_timeline",
    **dict.fromkeys(("run_tui", "utf8_terminal"), "_tui"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox.review' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"sandbox.review.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ApplyResult",
    "Choice",
    "Detail",
    "ExportResult",
    "Finish",
    "Hunk",
    "HunkedFile",
    "Item",
    "Loader",
    "Mark",
    "PartialOutcome",
    "Plan",
    "ReviewApp",
    "ReviewState",
    "Row",
    "RowKind",
    "Style",
    "Tally",
    "Target",
    "TextDiff",
    "apply_plan",
    "build_state",
    "cell_width",
    "decode_binary_literal",
    "describe_binary",
    "esc",
    "esc_line",
    "export_changeset",
    "hunkable",
    "make_plan",
    "patch_lines",
    "run_tui",
    "sniff_type",
    "terminal_lines",
    "terminal_patch",
    "text_diff",
    "timeline",
    "utf8_terminal",
    "wrap_cells",
]
