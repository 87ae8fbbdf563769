"""What happens to a changeset at each governance level: decisions are values.

Per change a `Verdict` (ok / protected / forbidden, with the rule that says so); per changeset a
`Decision`: commit these paths automatically, ask the person, or hold as pending — always
listing what is refused and why, so the output can say which rule held or refused what.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from sandbox.fs import Change, ChangeKind, ChangeSet, FileType, match_path, symlink_escapes
from sandbox.policy import Level, Policy


class Risk(StrEnum):
    OK = "ok"
    PROTECTED = "protected"  # a person must approve (below level 4); refused at level 4
    FORBIDDEN = "forbidden"  # never committed at any level


@dataclass(frozen=True)
class Verdict:
    path: str
    risk: Risk
    reason: str = ""


@dataclass(frozen=True)
class AutoCommit:
    """Commit `paths` now (level 3 low-risk, level 4)."""

    paths: tuple[str, ...]
    refused: tuple[Verdict, ...] = ()
    held: tuple[Verdict, ...] = ()  # stays pending for a person (protected at level 3)


@dataclass(frozen=True)
class AskPerson:
    """Levels 1-2 with a terminal: show the summary, commit only on a yes."""

    paths: tuple[str, ...]
    refused: tuple[Verdict, ...] = ()


@dataclass(frozen=True)
class Hold:
    """Keep everything pending; `reasons` say why in words."""

    reasons: tuple[str, ...]
    refused: tuple[Verdict, ...] = ()


@dataclass(frozen=True)
class NothingToDo:
    pass


Decision = AutoCommit | AskPerson | Hold | NothingToDo


def classify(change: Change, policy: Policy) -> Verdict:
    if change.forbidden:
        return Verdict(change.path, Risk.FORBIDDEN, "; ".join(change.forbidden))
    pattern = match_path(change.path, policy.protected)
    if pattern is not None:
        return Verdict(change.path, Risk.PROTECTED, f"protected path (matches {pattern!r})")
    if change.new_type is FileType.SYMLINK and symlink_escapes(change.path,
                                                               change.link_target or ""):
        # Not forbidden (fs rules): a link into the read-only system view, as a venv makes.
        return Verdict(change.path, Risk.PROTECTED,
                       f"symlink into the system view ({change.link_target}): needs a person")
    return Verdict(change.path, Risk.OK)


class Concern(StrEnum):
    """Why a change deserves a look, most serious first: listings put them in this order."""

    FORBIDDEN = "forbidden"
    PROTECTED = "protected"
    CONFLICT = "conflict"
    DELETION = "deletion"
    MODE = "mode"  # mode, type, new executable, setid
    BINARY = "binary"
    EDIT = "edit"  # an ordinary edit or addition


_CONCERN_RANK = {c: i for i, c in enumerate(Concern)}


def concern(change: Change, policy: Policy | None) -> Concern:
    if change.forbidden:
        return Concern.FORBIDDEN
    if policy is not None and classify(change, policy).risk is Risk.PROTECTED:
        return Concern.PROTECTED
    if change.conflict:
        return Concern.CONFLICT
    if change.kind is ChangeKind.DELETED:
        return Concern.DELETION
    if (change.kind in (ChangeKind.MODE_CHANGED, ChangeKind.TYPE_CHANGED)
            or change.executable_added or change.setid):
        return Concern.MODE
    return Concern.BINARY if change.binary else Concern.EDIT


def by_risk(cs: ChangeSet, policy: Policy | None) -> tuple[Change, ...]:
    """The changes with the risky first (forbidden, protected, conflicting, deletions, mode
    and executable changes, binaries), then ordinary edits; path order within each."""
    return tuple(c for c, _ in with_concerns(cs, policy))


def with_concerns(cs: ChangeSet, policy: Policy | None) -> list[tuple[Change, Concern]]:
    """`by_risk`'s order, each change with its concern: a listing that shows the concern
    classifies each change once (against the policy's protected globs), not twice."""
    pairs = [(c, concern(c, policy)) for c in cs.changes]
    pairs.sort(key=lambda pc: _CONCERN_RANK[pc[1]])  # stable: path order within each
    return pairs


def kind_counts(changes: Sequence[Change]) -> str:
    """"2,980 added, 1 modified": how many of each kind, most frequent first."""
    tally: dict[ChangeKind, int] = {}
    for c in changes:
        tally[c.kind] = tally.get(c.kind, 0) + 1
    words = {ChangeKind.MODE_CHANGED: "mode changed", ChangeKind.TYPE_CHANGED: "type changed"}
    return ", ".join(f"{n:,} {words.get(k, k.value)}"
                     for k, n in sorted(tally.items(), key=lambda kv: -kv[1]))


def low_risk_failures(cs: ChangeSet, candidates: tuple[Change, ...], policy: Policy) -> list[str]:
    """Level-3 rules (`[review.auto]`): each failed rule in words; empty means low-risk."""
    rules = policy.review_auto
    out: list[str] = []
    files = [c for c in candidates if c.new_type is not FileType.DIR and c.old_type is not FileType.DIR]
    if len(files) > rules.max_files:
        out.append(f"{len(files)} files changed (review.auto.max_files = {rules.max_files})")
    lines = sum((c.added_lines or 0) + (c.removed_lines or 0) for c in candidates)
    if lines > rules.max_lines:
        out.append(f"{lines} lines changed (review.auto.max_lines = {rules.max_lines})")
    for c in candidates:
        is_dir = FileType.DIR in (c.new_type, c.old_type)
        if (deny := match_path(c.path, rules.deny_paths, is_dir=is_dir)) is not None:
            out.append(f"touches {c.path} (review.auto.deny_paths {deny!r})")
        # A directory is judged by what is in it: `docs/**` allows the new `docs` that holds
        # the allowed files, and each file below is checked on its own.
        if c.kind is ChangeKind.ADDED and c.new_type is FileType.DIR:
            continue
        for group in rules.allow_paths:
            if match_path(c.path, group) is None:
                out.append(f"touches {c.path}, outside review.auto.allow_paths {list(group)!r}")
        if c.binary and not rules.binaries:
            out.append(f"binary file {c.path} (review.auto.binaries = false)")
        if c.executable_added and not rules.new_executables:
            out.append(f"new executable {c.path} (review.auto.new_executables = false)")
        if c.kind is ChangeKind.DELETED and not rules.deletions:
            out.append(f"deletes {c.path} (review.auto.deletions = false)")
        if c.kind is ChangeKind.MODE_CHANGED and c.executable_added and rules.new_executables:
            pass  # allowed explicitly
    return out


def split_conflicts(paths: Sequence[str], cs: ChangeSet,
                    force: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """(paths to commit, [(path, conflict)] kept pending). A path where the workspace moved
    since the session saw it waits for a person's --force (the session's version then wins);
    so does everything below a conflicting directory."""
    conflicts = {c.path: c.conflict for c in cs.changes if c.conflict}
    if force or not conflicts:
        return list(paths), []
    kept: list[tuple[str, str]] = []
    ok: list[str] = []
    for path in paths:
        parts = path.split("/")
        above = next(("/".join(parts[:i]) for i in range(1, len(parts) + 1)
                      if "/".join(parts[:i]) in conflicts), None)
        if above is None:
            ok.append(path)
        elif above == path:
            kept.append((path, conflicts[path] or ""))
        else:
            kept.append((path, f"its directory {above!r} is in conflict"))
    return ok, kept


def decide(cs: ChangeSet, policy: Policy, *, interactive: bool) -> Decision:
    if not cs:
        return NothingToDo()
    verdicts = [classify(c, policy) for c in cs.changes]
    forbidden = tuple(v for v in verdicts if v.risk is Risk.FORBIDDEN)
    # Where the workspace moved since the session saw it, only a person may decide (--force):
    # the conflicting path and everything below it wait, at every level; the rest proceeds.
    allowed, conflicting = split_conflicts(
        [v.path for v in verdicts if v.risk is not Risk.FORBIDDEN], cs, force=False)
    waiting = set(allowed)
    conflicts = tuple(Verdict(p, Risk.OK, f"held: {p} {why}") for p, why in conflicting)
    protected = tuple(v for v in verdicts if v.risk is Risk.PROTECTED and v.path in waiting)
    ok_paths = tuple(v.path for v in verdicts if v.risk is Risk.OK and v.path in waiting)
    level = policy.level
    match level:
        case Level.HUMAN_IN_THE_LOOP | Level.HUMAN_ON_THE_LOOP:
            committable = ok_paths + tuple(v.path for v in protected)
            if interactive and committable:
                return AskPerson(paths=committable, refused=forbidden)
            return Hold(reasons=(f"level {int(level)}: changes wait for a person "
                                 "(`sandbox approve` or `sandbox review`)",
                                 *(v.reason for v in conflicts)), refused=forbidden)
        case Level.HUMAN_AS_ORCHESTRATOR:
            candidates = tuple(c for c in cs.changes if c.path in set(ok_paths))
            failures = low_risk_failures(cs, candidates, policy)
            held = tuple(Verdict(v.path, v.risk, f"held: touches {v.path} ({v.reason})")
                         for v in protected) + conflicts
            if failures:
                return Hold(reasons=tuple(f"held: {f}" for f in failures)
                            + tuple(v.reason for v in held), refused=forbidden)
            return AutoCommit(paths=ok_paths, refused=forbidden, held=held)
        case Level.HUMAN_OUTSIDE_THE_LOOP:
            allowed4 = tuple(v.path for v in protected
                            if match_path(v.path, policy.allow_at_level4) is not None)
            refused_protected = tuple(
                Verdict(v.path, v.risk, f"{v.reason}; refused at level 4 "
                        "(protect.allow_at_level4 does not name it)")
                for v in protected if v.path not in allowed4)
            return AutoCommit(paths=ok_paths + allowed4, refused=forbidden + refused_protected,
                              held=conflicts)
        case _:
            assert_never(level)
