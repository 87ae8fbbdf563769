"""The review screen's logic, without a terminal: keys in, lines of styled text out.

`ReviewApp.key(name)` changes what is selected and decided; `ReviewApp.draw(rows, cols)`
returns exactly `rows` lines that fit `cols` columns. The curses front end (`_tui`) only
reads keys and paints these lines, so this file is tested without a terminal, and every
string drawn has been escaped before it gets here (rows from `_detail`, paths via `esc`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import assert_never

from sandbox.fs import is_git_internal
from sandbox.review._apply import HunkedFile
from sandbox.review._detail import Detail, RowKind
from sandbox.review._layout import Layout, Pos, Visual
from sandbox.review._model import Choice, Item, Mark, ReviewState
from sandbox.review._safe import cell_width, esc, wrap_cells

__all__ = ["Finish", "ReviewApp", "Segment", "Style"]


class Style(StrEnum):
    NORMAL = "normal"
    TITLE = "title"
    CURSOR = "cursor"
    ADD = "add"
    DEL = "del"
    HUNK = "hunk"
    NOTE = "note"
    DIM = "dim"
    KEYS = "keys"


class Finish(StrEnum):
    APPLY = "apply"  # apply decisions; undecided stays pending
    APPLY_DISCARD = "apply-discard"  # apply decisions and discard the undecided
    CANCEL = "cancel"  # apply nothing


class _Mode(StrEnum):
    LIST = "list"
    FILE = "file"
    HELP = "help"
    CONFIRM = "confirm"


Segment = tuple[str, Style]
Line = tuple[Segment, ...]

_ROW_STYLE = {RowKind.INFO: Style.DIM, RowKind.NOTE: Style.NOTE, RowKind.HUNK: Style.HUNK,
              RowKind.CONTEXT: Style.NORMAL, RowKind.ADD: Style.ADD, RowKind.DEL: Style.DEL,
              RowKind.MODE: Style.HUNK}
_KIND = {"added": "A", "modified": "M", "deleted": "D", "mode_changed": "m",
         "type_changed": "T"}
_HELP = (
    "Keys in the list of changes:",
    "  Up/Down, k/j     move             Enter, l, Right  show the change (its hunks)",
    "  y                accept the change         n   reject it (discard)",
    "  u                undecided again (stays pending)",
    "  A                accept every undecided change (not protected or forbidden ones)",
    "  R                reject every undecided change",
    "  q                finish: apply the decisions (asks first), or quit if none",
    "Keys in a change:",
    "  y / n / u        accept / reject / undecide this hunk, then go to the next",
    "  a / d            accept / reject the whole file",
    "  Tab, J / K       next / previous hunk",
    "  Up/Down, PgUp/PgDn, Space, Home/End   scroll",
    "  q, Esc, Left, h  back to the list",
    "Marks: [y] accepted  [n] rejected  [~] partly accepted  [ ] undecided",
    "       FORBIDDEN never committed; protected must be accepted one by one.",
    "Ctrl-C leaves without applying anything. Press any key to close this help.",
)


def _fit(text: str, width: int) -> str:
    """Cut `text` to `width` columns, marking the cut (never silently)."""
    if cell_width(text) <= width:
        return text
    pieces = wrap_cells(text, max(1, width - 3))
    return pieces[0] + "..."


def _middle(text: str, width: int) -> str:
    """Shorten a path in the middle: both ends of a name matter."""
    if cell_width(text) <= width:
        return text
    keep = max(1, (width - 3) // 2)
    head = wrap_cells(text, keep)[0]
    tail_pieces = wrap_cells(text[::-1], keep)[0][::-1]
    return f"{head}...{tail_pieces}"


class ReviewApp:
    def __init__(self, state: ReviewState, load: Callable[[Item], Detail], *, title: str,
                 ascii_only: bool = False) -> None:
        self.state = state
        self._load = load
        self.title = title
        self.ascii_only = ascii_only
        self.finish: Finish | None = None
        # Object files, logs and the index that a moved branch stands for are not listed:
        # they go with their ref (see build_state), which the list shows by its commits.
        self._shown = [i for i, it in enumerate(state.items)
                       if not (is_git_internal(it.path) and it.requires)] \
            or list(range(len(state.items)))
        self.cursor = self._shown[0] if self._shown else 0
        self._list_top = 0  # a position in _shown
        self._mode = _Mode.LIST
        self._back = _Mode.LIST
        self._details: dict[int, Detail] = {}
        self._top: Pos = (0, 0)  # first screen line of the file view: (row, piece)
        self._part = 0
        self._message = ""
        self._lay: Layout | None = None
        self._width = 75  # of the file view's text, as last drawn

    # -- data ------------------------------------------------------------------------------
    def detail(self, i: int) -> Detail:
        if i not in self._details:
            d = self._load(self.state.items[i])
            self._details[i] = d
            if d.diff is not None:
                self.state = self.state.with_parts(i, d.parts)
        return self._details[i]

    def hunked(self) -> Mapping[int, HunkedFile]:
        """The files split into hunks, for applying per-hunk decisions."""
        return {i: HunkedFile(d.diff, d.mode_part) for i, d in self._details.items()
                if d.diff is not None}

    # -- keys ------------------------------------------------------------------------------
    def key(self, name: str) -> None:
        """Handle one key (a character, or up/down/pgup/pgdn/home/end/enter/left/right/tab/
        btab/esc/resize)."""
        self._message = ""
        match self._mode:
            case _Mode.HELP:
                self._mode = self._back
            case _Mode.CONFIRM:
                self._confirm_key(name)
            case _Mode.LIST:
                self._list_key(name)
            case _Mode.FILE:
                self._file_key(name)
            case _:
                assert_never(self._mode)

    def _decide(self, i: int, choice: Choice) -> bool:
        if choice is Choice.ACCEPT:
            why = self.state.cannot_accept(i)
            if why is not None:
                self._message = "cannot accept: " + esc(why, ascii_only=self.ascii_only)
                return False
        self.state = self.state.set_item(i, choice)
        return True

    def _list_key(self, name: str) -> None:
        match name:
            case "down" | "j":
                self._step(1)
            case "up" | "k":
                self._step(-1)
            case "pgdn" | " ":
                self._step(10)
            case "pgup":
                self._step(-10)
            case "home" | "g":
                self._step(-len(self._shown))
            case "end" | "G":
                self._step(len(self._shown))
            case "enter" | "l" | "right":
                self._open(self.cursor)
            case "y" | "n" | "u":
                choice = {"y": Choice.ACCEPT, "n": Choice.REJECT, "u": Choice.PENDING}[name]
                if self._decide(self.cursor, choice):
                    self._step(1)
            case "A":
                self.state = self.state.set_all(Choice.ACCEPT)
                skipped = [it for i, it in enumerate(self.state.items)
                           if (it.protected or it.forbidden) and self.state.choice(i) is
                           Choice.PENDING]
                if skipped:
                    self._message = (f"{len(skipped)} protected/forbidden change(s) left "
                                     "undecided: accept protected ones one by one")
            case "R":
                self.state = self.state.set_all(Choice.REJECT)
            case "q" | "esc":
                if self.state.tally().decided:
                    self._mode = _Mode.CONFIRM
                else:
                    self.finish = Finish.CANCEL
            case "?" | "h":
                self._back, self._mode = _Mode.LIST, _Mode.HELP
            case _:
                pass

    def _open(self, i: int) -> None:
        self.cursor = i
        self.detail(i)
        self._mode = _Mode.FILE
        self._top = (0, 0)
        self._part = 0
        self._lay = None

    def _parts(self) -> int:
        return len(self.state.choices[self.cursor])

    def _next_file(self) -> None:
        self._mode = _Mode.LIST
        self._step(1)

    def _pos(self) -> int:
        return self._shown.index(self.cursor) if self.cursor in self._shown else 0

    def _step(self, delta: int) -> None:
        if self._shown:
            self.cursor = self._shown[max(0, min(len(self._shown) - 1, self._pos() + delta))]

    def _file_key(self, name: str) -> None:
        i = self.cursor
        detail = self.detail(i)
        hunked = detail.diff is not None
        match name:
            case "y" | "n" | "u":
                choice = {"y": Choice.ACCEPT, "n": Choice.REJECT, "u": Choice.PENDING}[name]
                if not hunked:
                    if self._decide(i, choice):
                        self._next_file()
                    return
                if choice is Choice.ACCEPT and self.state.cannot_accept(i) is not None:
                    self._decide(i, choice)  # sets the message
                    return
                self.state = self.state.set_part(i, self._part, choice)
                if self._part + 1 < self._parts():
                    self._goto_part(self._part + 1)
                else:
                    self._next_file()
            case "a" | "d":
                if self._decide(i, Choice.ACCEPT if name == "a" else Choice.REJECT):
                    self._next_file()
            case "tab" | "J":
                self._goto_part(min(self._parts() - 1, self._part + 1))
            case "btab" | "K":
                self._goto_part(max(0, self._part - 1))
            case "down" | "j":
                self._top = self._layout(detail).forward(self._top, 1)
            case "up" | "k":
                self._top = self._layout(detail).back(self._top, 1)
            case "pgdn" | " ":
                self._top = self._layout(detail).forward(self._top, 10)
            case "pgup":
                self._top = self._layout(detail).back(self._top, 10)
            case "home" | "g":
                self._top = (0, 0)
            case "end" | "G":
                self._top = self._layout(detail).last()  # drawing shows the last screen
            case "q" | "esc" | "left" | "h":
                self._mode = _Mode.LIST
            case "?":
                self._back, self._mode = _Mode.FILE, _Mode.HELP
            case _:
                pass

    def _goto_part(self, part: int) -> None:
        self._part = part
        starts = self.detail(self.cursor).part_starts()
        if part < len(starts):
            self._top = (max(0, starts[part] - 1), 0)

    def _confirm_key(self, name: str) -> None:
        match name:
            case "y" | "enter":
                self.finish = Finish.APPLY
            case "D":
                self.finish = Finish.APPLY_DISCARD
            case "x":
                self.finish = Finish.CANCEL
            case _:
                self._mode = _Mode.LIST

    # -- drawing ---------------------------------------------------------------------------
    def draw(self, rows: int, cols: int) -> list[Line]:
        if rows < 8 or cols < 40:
            return self._pad([(("terminal too small: need 40x8", Style.NOTE),)], rows, cols)
        match self._mode:
            case _Mode.LIST:
                body = self._draw_list(rows, cols)
            case _Mode.FILE:
                body = self._draw_file(rows, cols)
            case _Mode.HELP:
                body = [((_fit(t, cols), Style.NORMAL),) for t in _HELP]
            case _Mode.CONFIRM:
                body = self._draw_confirm(cols)
            case _:
                assert_never(self._mode)
        return self._pad(body, rows, cols)

    def _pad(self, body: list[Line], rows: int, cols: int) -> list[Line]:
        out = [tuple((_fit(t, cols), s) for t, s in line) for line in body[:rows]]
        out += [(("", Style.NORMAL),)] * (rows - len(out))
        return out

    def _mark(self, i: int) -> str:
        choice = self.state.choice(i)
        match choice:
            case Choice.ACCEPT:
                return "[y]"
            case Choice.REJECT:
                return "[n]"
            case Choice.PENDING:
                return "[!]" if self.state.items[i].forbidden else "[ ]"
            case None:
                return "[~]"
            case _:
                assert_never(choice)

    def _title(self, text: str, cols: int) -> Line:
        return ((_fit(text, cols).ljust(cols), Style.TITLE),)

    def _status(self, cols: int) -> Line:
        if self._message:
            return ((_fit(self._message, cols), Style.NOTE),)
        t = self.state.tally()
        text = (f"accepted {t.accepted}  partly {t.partial}  rejected {t.rejected}  "
                f"undecided {t.pending}")
        return ((_fit(text, cols), Style.DIM),)

    def _draw_list(self, rows: int, cols: int) -> list[Line]:
        view = rows - 4
        pos = self._pos()
        if pos < self._list_top:
            self._list_top = pos
        if pos >= self._list_top + view:
            self._list_top = pos - view + 1
        folded = len(self.state.items) - len(self._shown)
        more = f" +{folded} git files" if folded else ""
        out: list[Line] = [self._title(f"sandbox review  {self.title}  "
                                       f"{len(self._shown)} change(s){more}   ? help", cols)]
        out.append((("     K PATH", Style.DIM),))
        for i in self._shown[self._list_top:self._list_top + view]:
            out.append(self._item_line(i, cols))
        out += [(("", Style.NORMAL),)] * (rows - 2 - len(out))
        out.append(self._status(cols))
        out.append(((_fit("j/k move  Enter open  y accept  n reject  u undo  A/R all  "
                          "q finish  ? help", cols), Style.KEYS),))
        return out

    def _item_line(self, i: int, cols: int) -> Line:
        item = self.state.items[i]
        c = item.change
        counts = "" if c.added_lines is None else f"+{c.added_lines} -{c.removed_lines or 0}"
        ftype = c.new_type or c.old_type
        tag = "" if ftype is None or ftype.value == "file" else f"[{ftype.value}]"
        marks = " ".join(str(m) for m in item.marks)
        tail = " ".join(x for x in (tag, counts, marks) if x)
        prefix = f"{'>' if i == self.cursor else ' '}{self._mark(i)} {_KIND[c.kind.value]} "
        room = max(8, cols - len(prefix) - cell_width(tail) - 2)
        name = _middle(esc(item.path, ascii_only=self.ascii_only), room)
        pad = " " * max(1, cols - len(prefix) - cell_width(name) - cell_width(tail) - 1)
        style = Style.CURSOR if i == self.cursor else Style.NORMAL
        mark_style = Style.CURSOR if i == self.cursor else (
            Style.NOTE if {Mark.FORBIDDEN, Mark.PROTECTED} & set(item.marks) else Style.DIM)
        return ((prefix + name + pad, style), (tail, mark_style))

    def _layout(self, detail: Detail, width: int | None = None) -> Layout:
        """The open change's screen lines at `width` (default: as last drawn), made lazily."""
        width = self._width if width is None else width
        if self._lay is None or self._lay.rows is not detail.rows or self._lay.width != width:
            if self._lay is not None and self._lay.width != width:
                self._top = (self._top[0], 0)  # same row at the top after a resize
            self._lay = Layout(detail.rows, width, cont="\\" if self.ascii_only else "\u21aa")
            self._width = width
        return self._lay

    def _draw_file(self, rows: int, cols: int) -> list[Line]:
        i = self.cursor
        detail = self.detail(i)
        lay = self._layout(detail, cols - 5)
        view = rows - 3
        self._top = lay.clamp(self._top, view)
        parts = self._parts()
        where = f"hunk {self._part + 1}/{parts}" if detail.diff is not None else "whole file"
        out: list[Line] = [self._title(
            f"{self._mark(i)} {esc(self.state.items[i].path, ascii_only=self.ascii_only)}  "
            f"({self._pos() + 1}/{len(self._shown)}, {where})", cols)]
        for v in lay.lines(self._top, view):
            out.append(self._file_line(v, detail))
        out += [(("", Style.NORMAL),)] * (rows - 2 - len(out))
        out.append(self._status(cols))
        keys = ("y/n/u hunk  a/d file  Tab/K next/prev hunk  arrows scroll  q back"
                if detail.diff is not None else "y accept  n reject  u undo  arrows scroll  "
                "q back")
        out.append(((_fit(keys, cols), Style.KEYS),))
        return out

    def _file_line(self, v: Visual, detail: Detail) -> Line:
        current = detail.diff is not None and v.part == self._part
        gutter = ">" if current else " "
        mark = "    "
        style = _ROW_STYLE[v.kind]
        if v.part is not None and not v.continued and style is Style.HUNK:
            mark = self._part_mark(v.part) + " "
        return ((gutter + mark, Style.CURSOR if current else Style.DIM), (v.text, style))

    def _part_mark(self, part: int) -> str:
        choice = self.state.choices[self.cursor][part]
        return {Choice.ACCEPT: "[y]", Choice.REJECT: "[n]", Choice.PENDING: "[ ]"}[choice]

    def _draw_confirm(self, cols: int) -> list[Line]:
        t = self.state.tally()
        lines = [
            "Apply your decisions?",
            "",
            f"  commit to the workspace: {t.accepted} change(s)"
            + (f" + {t.hunks_accepted} part(s) of {t.partial} file(s) decided per hunk"
               if t.partial else ""),
            f"  discard:                 {t.rejected} change(s)",
            f"  undecided:               {t.pending} change(s)",
            "",
            "  y / Enter  apply; undecided changes stay pending",
            "  D          apply, and discard the undecided changes too",
            "  x          quit without applying anything",
            "  any other  back to the list",
        ]
        return [self._title("sandbox review: finish", cols)] + [
            ((_fit(t, cols), Style.NORMAL),) for t in lines]
