"""Syntax highlighting of diff lines for the console (Pygments, chosen by the file's name).

The input is display text already made inert by review's `esc` (control, bidi and zero-width
characters shown as escapes); Pygments' HTML formatter escapes &, <, >, " and ' in every token,
so the output is text in spans whatever the file holds."""

from __future__ import annotations

from collections.abc import Callable

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

__all__ = ["MAX_ROWS", "highlighter"]

MAX_ROWS = 3000  # beyond this a file is shown plain: the page stays quick
_FORMATTER = HtmlFormatter(nowrap=True)


def highlighter(path: str) -> Callable[[str], str] | None:
    """A function from one line of code to highlighted HTML, or None for unknown file types."""
    try:
        lexer = get_lexer_for_filename(path, stripnl=False, stripall=False, ensurenl=False)
    except ClassNotFound:
        return None

    def render(code: str) -> str:
        return highlight(code, lexer, _FORMATTER).removesuffix("\n")

    return render
