"""The curses front end of `sandbox review`: reads keys, paints what `ReviewApp` draws.

Why curses (the standard library's ncurses binding) rather than textual or prompt_toolkit:
- it is already there: no dependency in a tool whose job is to be trusted with approvals;
- it works over any SSH session at 80x24: terminfo describes whatever terminal TERM names,
  ncurses sends only the cells that changed (cheap on slow links), and a resize arrives as a
  key; nothing needs a mouse, true colour or a particular terminal emulator;
- the screen is simple (a list, a scrolling diff, a dialog), which is what curses is good at;
  textual's widget tree and async runtime, or prompt_toolkit's layout engine, would add
  start-up time and a large surface without making the review safer.
Safety does not come from the library: every string painted is escaped beforehand (`_safe`),
so no byte from a run ever reaches the terminal as a control sequence.
"""

from __future__ import annotations

import curses
import locale
import os
from contextlib import suppress
from typing import Any

from sandbox.review._app import Finish, ReviewApp, Style

__all__ = ["run_tui", "utf8_terminal"]

_KEYS = {
    curses.KEY_UP: "up", curses.KEY_DOWN: "down", curses.KEY_LEFT: "left",
    curses.KEY_RIGHT: "right", curses.KEY_NPAGE: "pgdn", curses.KEY_PPAGE: "pgup",
    curses.KEY_HOME: "home", curses.KEY_END: "end", curses.KEY_ENTER: "enter",
    curses.KEY_BTAB: "btab", curses.KEY_RESIZE: "resize",
}
_CHARS = {"\n": "enter", "\r": "enter", "\t": "tab", "\x1b": "esc"}


def utf8_terminal() -> bool:
    """Whether the locale can show non-ASCII text (else it is shown escaped)."""
    locale.setlocale(locale.LC_ALL, "")
    return locale.nl_langinfo(locale.CODESET).upper().replace("-", "") == "UTF8"


def _styles() -> dict[Style, int]:
    plain = {Style.NORMAL: curses.A_NORMAL, Style.TITLE: curses.A_REVERSE | curses.A_BOLD,
             Style.CURSOR: curses.A_REVERSE, Style.ADD: curses.A_NORMAL,
             Style.DEL: curses.A_NORMAL, Style.HUNK: curses.A_BOLD, Style.NOTE: curses.A_BOLD,
             Style.DIM: curses.A_DIM, Style.KEYS: curses.A_DIM}
    if os.environ.get("NO_COLOR") is not None or not curses.has_colors():
        return plain
    curses.start_color()
    curses.use_default_colors()
    for n, color in enumerate((curses.COLOR_GREEN, curses.COLOR_RED, curses.COLOR_CYAN,
                               curses.COLOR_YELLOW), start=1):
        curses.init_pair(n, color, -1)
    return plain | {Style.ADD: curses.color_pair(1), Style.DEL: curses.color_pair(2),
                    Style.HUNK: curses.color_pair(3) | curses.A_BOLD,
                    Style.NOTE: curses.color_pair(4) | curses.A_BOLD}


def _key(raw: Any) -> str:
    if isinstance(raw, int):
        return _KEYS.get(raw, "")
    if isinstance(raw, str):
        return _CHARS.get(raw, raw)
    return ""


def _paint(scr: Any, app: ReviewApp, styles: dict[Style, int]) -> None:
    rows, cols = scr.getmaxyx()
    scr.erase()
    for y, line in enumerate(app.draw(rows, cols)):
        x = 0
        for text, style in line:
            if not text or x >= cols:
                continue
            # Writing the bottom-right cell moves the cursor off screen: an error, harmless.
            with suppress(curses.error):
                scr.addstr(y, x, text, styles[style])
            x = scr.getyx()[1] if scr.getyx()[0] == y else cols
    scr.refresh()


def _loop(scr: Any, app: ReviewApp) -> None:
    with suppress(curses.error):  # a terminal that cannot hide the cursor still works
        curses.curs_set(0)
    styles = _styles()
    while app.finish is None:
        _paint(scr, app, styles)
        app.key(_key(scr.get_wch()))


def run_tui(app: ReviewApp) -> Finish:
    """Run the review on the terminal until the person finishes; Ctrl-C cancels."""
    os.environ.setdefault("ESCDELAY", "25")  # Esc alone should not wait a second
    try:
        curses.wrapper(_loop, app)
    except KeyboardInterrupt:
        return Finish.CANCEL
    return app.finish or Finish.CANCEL
