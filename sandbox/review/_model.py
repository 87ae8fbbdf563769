"""What a reviewer decides, as values: one item per pending change, a choice per part.

A part is a hunk of a modified text file (plus one for its mode change, as `git add -p`
offers), or the whole change for everything else. Choices keep the tree consistent as they
are made: accepting a file inside a new directory accepts the directory; rejecting that
directory rejects what is inside it; deleting a directory needs every deletion below it. So
whatever state the reviewer leaves, it can be applied as it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import assert_never

from sandbox.fs import Change, ChangeKind, ChangeSet, FileType, is_git_internal
from sandbox.governance import Risk, Verdict

__all__ = [
    "LARGE_BYTES",
    "LARGE_LINES",
    "Choice",
    "Item",
    "Mark",
    "ReviewState",
    "Tally",
    "build_state",
    "hunkable",
]

# Above these a change is marked "large" (worth a closer look, and not split into hunks).
LARGE_BYTES = 4 << 20
LARGE_LINES = 2000


class Choice(StrEnum):
    PENDING = "pending"  # not decided: stays pending (or is discarded, if the person says so)
    ACCEPT = "accept"
    REJECT = "reject"


class Mark(StrEnum):
    FORBIDDEN = "FORBIDDEN"
    PROTECTED = "protected"
    CONFLICT = "CONFLICT"  # the workspace moved since the session saw it: needs --force
    NEW_EXEC = "new-exec"
    BINARY = "binary"
    LARGE = "large"


_CREATES = (ChangeKind.ADDED, ChangeKind.TYPE_CHANGED)


def _creates_dir(c: Change) -> bool:
    return c.new_type is FileType.DIR and c.kind in _CREATES


def _removes_dir(c: Change) -> bool:
    return c.old_type is FileType.DIR and c.kind in (ChangeKind.DELETED, ChangeKind.TYPE_CHANGED)


def hunkable(c: Change) -> bool:
    """A modified text file small enough to split into hunks."""
    return (c.kind is ChangeKind.MODIFIED and c.old_type is FileType.FILE
            and c.new_type is FileType.FILE and not c.binary and c.added_lines is not None
            and max(c.old_size or 0, c.new_size or 0) <= LARGE_BYTES)


def _marks(c: Change, verdict: Verdict) -> tuple[Mark, ...]:
    out: list[Mark] = []
    match verdict.risk:
        case Risk.FORBIDDEN:
            out.append(Mark.FORBIDDEN)
        case Risk.PROTECTED:
            out.append(Mark.PROTECTED)
        case Risk.OK:
            pass
        case _:
            assert_never(verdict.risk)
    if c.conflict:
        out.append(Mark.CONFLICT)
    if c.executable_added:
        out.append(Mark.NEW_EXEC)
    if c.binary:
        out.append(Mark.BINARY)
    lines = (c.added_lines or 0) + (c.removed_lines or 0)
    size = max(c.old_size or 0, c.new_size or 0)
    if lines > LARGE_LINES or size > LARGE_BYTES:
        out.append(Mark.LARGE)
    return tuple(out)


@dataclass(frozen=True)
class Item:
    change: Change
    verdict: Verdict
    marks: tuple[Mark, ...]
    requires: tuple[int, ...]  # items that must be applied with this one
    required_by: tuple[int, ...]

    @property
    def path(self) -> str:
        return self.change.path

    @property
    def forbidden(self) -> bool:
        return self.verdict.risk is Risk.FORBIDDEN

    @property
    def protected(self) -> bool:
        return self.verdict.risk is Risk.PROTECTED


@dataclass(frozen=True)
class Tally:
    accepted: int  # items wholly accepted
    partial: int  # items decided part by part, not all alike
    rejected: int  # items wholly rejected
    pending: int  # items wholly undecided
    hunks_accepted: int  # parts accepted inside partial items

    @property
    def decided(self) -> bool:
        return bool(self.accepted or self.partial or self.rejected)


_REF_FILES = (".git/packed-refs", ".git/HEAD")


def build_state(cs: ChangeSet, verdicts: Sequence[Verdict],
                order: Sequence[Change] | None = None) -> ReviewState:
    """The review's items, in `order` (the risky first: `governance.by_risk`) or path order."""
    changes = tuple(order) if order is not None else cs.changes
    index = {c.path: i for i, c in enumerate(changes)}
    requires: list[set[int]] = [set() for _ in changes]
    for i, c in enumerate(changes):
        parts = c.path.split("/")
        for k in range(1, len(parts)):
            anc = index.get("/".join(parts[:k]))
            if anc is not None and _creates_dir(changes[anc]):
                requires[i].add(anc)
            if anc is not None and _removes_dir(changes[anc]):
                requires[anc].add(i)  # removing a directory needs everything below gone
    # A ref moved by commits made inside needs the objects (and logs) git wrote for them:
    # accepting the ref brings them, and they never go without it.
    internal = [i for i, c in enumerate(changes) if is_git_internal(c.path)]
    for i, c in enumerate(changes):
        if internal and (c.path.startswith(".git/refs/") or c.path in _REF_FILES):
            requires[i].update(internal)
            for j in internal:
                requires[j].add(i)
    required_by: list[set[int]] = [set() for _ in changes]
    for i, reqs in enumerate(requires):
        for r in reqs:
            required_by[r].add(i)
    by_path = {v.path: v for v in verdicts}
    items = tuple(
        Item(c, by_path.get(c.path, Verdict(c.path, Risk.OK)),
             _marks(c, by_path.get(c.path, Verdict(c.path, Risk.OK))),
             tuple(sorted(requires[i])), tuple(sorted(required_by[i])))
        for i, c in enumerate(changes))
    return ReviewState(items, tuple((Choice.PENDING,) for _ in items))


def _closure(start: int, step: Callable[[int], tuple[int, ...]]) -> list[int]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted(seen)


@dataclass(frozen=True)
class ReviewState:
    items: tuple[Item, ...]
    choices: tuple[tuple[Choice, ...], ...]  # per item, one per part

    def _requires(self, i: int) -> tuple[int, ...]:
        return self.items[i].requires

    def _required_by(self, i: int) -> tuple[int, ...]:
        return self.items[i].required_by

    def choice(self, i: int) -> Choice | None:
        """The item's choice, or None when its parts differ (partly accepted)."""
        parts = set(self.choices[i])
        return parts.pop() if len(parts) == 1 else None

    def with_parts(self, i: int, count: int) -> ReviewState:
        """Split item `i` into `count` parts (its hunks), each taking the item's choice."""
        if len(self.choices[i]) == count:
            return self
        first = self.choice(i) or Choice.PENDING
        return self._set({i: (first,) * max(1, count)})

    def _set(self, updates: dict[int, tuple[Choice, ...]]) -> ReviewState:
        choices = list(self.choices)
        for i, parts in updates.items():
            choices[i] = parts
        return replace(self, choices=tuple(choices))

    def cannot_accept(self, i: int) -> str | None:
        """Why item `i` cannot be accepted (a forbidden change it is or needs), else None."""
        for j in _closure(i, self._requires):
            if self.items[j].forbidden:
                item = self.items[j]
                return f"{item.path}: {item.verdict.reason}"
        return None

    def set_item(self, i: int, choice: Choice) -> ReviewState:
        """Decide the whole item, and whatever the tree makes follow from it."""
        match choice:
            case Choice.ACCEPT:
                if self.cannot_accept(i) is not None:
                    return self
                targets = _closure(i, self._requires)
            case Choice.REJECT:
                targets = _closure(i, self._required_by)
            case Choice.PENDING:
                # Only what was accepted on the strength of this item has to move with it.
                targets = [j for j in _closure(i, self._required_by)
                           if j == i or Choice.ACCEPT in self.choices[j]]
            case _:
                assert_never(choice)
        return self._set({j: (choice,) * len(self.choices[j]) for j in targets})

    def set_part(self, i: int, part: int, choice: Choice) -> ReviewState:
        """Decide one hunk of a hunked item (those never need or are needed by others)."""
        if choice is Choice.ACCEPT and self.items[i].forbidden:
            return self
        parts = list(self.choices[i])
        parts[part] = choice
        return self._set({i: tuple(parts)})

    def set_all(self, choice: Choice) -> ReviewState:
        """Decide every undecided part, never overriding a decision already made. Accepting
        skips forbidden and protected changes (a protected change is only ever accepted one
        at a time, on purpose) and changes that need something already rejected."""
        updates: dict[int, tuple[Choice, ...]] = {}

        def undecided(j: int) -> bool:
            return j not in updates and all(c is Choice.PENDING for c in self.choices[j])

        for i, item in enumerate(self.items):
            parts = updates.get(i, self.choices[i])
            if Choice.PENDING not in parts:
                continue
            if len(parts) > 1:  # a file decided hunk by hunk: fill in the rest
                updates[i] = tuple(choice if c is Choice.PENDING else c for c in parts)
                continue
            if choice is Choice.ACCEPT:
                if item.forbidden or item.protected or self.cannot_accept(i) is not None:
                    continue
                targets = _closure(i, self._requires)
                if any(Choice.REJECT in updates.get(j, self.choices[j]) for j in targets):
                    continue
            elif choice is Choice.REJECT:
                targets = _closure(i, self._required_by)
            else:
                targets = [i]
            for j in targets:
                if j == i or undecided(j):
                    updates[j] = (choice,) * len(self.choices[j])
        return self._set(updates)

    def tally(self) -> Tally:
        accepted = partial = rejected = pending = hunks = 0
        for parts in self.choices:
            kinds = set(parts)
            if kinds == {Choice.ACCEPT}:
                accepted += 1
            elif kinds == {Choice.REJECT}:
                rejected += 1
            elif kinds == {Choice.PENDING}:
                pending += 1
            else:
                partial += 1
                hunks += parts.count(Choice.ACCEPT)
        return Tally(accepted, partial, rejected, pending, hunks)

    def paths(self, choice: Choice) -> Iterable[str]:
        """Paths of the items wholly decided as `choice`."""
        return (item.path for i, item in enumerate(self.items) if self.choice(i) is choice)
