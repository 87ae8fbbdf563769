"""Chain verification: walk every line once and say exactly which record broke and how.

Pure logic over (line number, bytes) pairs and the head sidecar, so it is tested without I/O
tricks and the log module only has to feed it lines.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import assert_never

from sandbox.audit._record import GENESIS, AuditRecord, RecordFormatError, compute_hash, decode_line
from sandbox.errors import AuditError

__all__ = [
    "Head",
    "HeadState",
    "Problem",
    "ProblemKind",
    "VerifyReport",
    "check_head",
    "verify_lines",
]


from sandbox.audit._head import Head, HeadState, check_head


class ProblemKind(StrEnum):
    MALFORMED = "malformed"  # not a record at all, or cut off mid-line
    HASH = "hash"  # content does not match its own hash: edited
    SEQ = "seq"  # numbering gap or step back: removed, inserted or reordered
    CHAIN = "chain"  # prev does not match the previous record's hash: replaced or inserted
    HEAD = "head"  # the sidecar disagrees with the end of the log: truncated or rolled back
    SIGNATURE = "signature"  # a signed checkpoint is forged, or the log no longer matches it


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    line: int | None  # 1-based line in the log; None for problems about the whole file
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = "log" if self.line is None else f"line {self.line}"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    records: int
    last_seq: int
    last_hash: str
    head: Head | None
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()
    # The hash of each record whose seq was asked for (`keep`): what signed checkpoints name.
    hashes: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False)
    signed_seq: int | None = None  # the last seq a valid signed checkpoint vouches for
    key: str | None = None  # the id of the key the signatures were checked against

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        if self.ok:
            text = (
                f"{self.path}: OK, {self.records} records, chain intact up to seq {self.last_seq}"
            )
            if self.signed_seq is not None:
                text += f", signed up to seq {self.signed_seq} (key {self.key})"
            return "\n".join([text, *(f"  note: {n}" for n in self.notes)])
        lines = [f"{self.path}: BROKEN, {len(self.problems)} problem(s) in {self.records} records"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    def raise_if_broken(self) -> None:
        first = self.first_problem
        if first is not None:
            raise AuditError(
                f"audit log {self.path} failed verification: {first}",
                hint="run `sandbox audit --verify` for every problem",
            )

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "records": self.records,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "head": None if self.head is None else {"seq": self.head.seq, "hash": self.head.hash},
            "problems": [
                {"kind": str(p.kind), "line": p.line, "seq": p.seq, "message": p.message}
                for p in self.problems
            ],
            "notes": list(self.notes),
            "signed_seq": self.signed_seq,
            "key": self.key,
        }


def _seq_message(expected: int, found: int) -> str:
    if found > expected:
        missing = found - expected
        return f"expected seq {expected}, found {found}: {missing} record(s) removed before it"
    return f"expected seq {expected}, found {found}: record inserted or out of order"


def _check_record(rec: AuditRecord, line_no: int | None, exp_seq: int,
                  exp_prev: str) -> Problem | None:
    """The first thing wrong with one record relative to its predecessor, if any."""
    if compute_hash(rec.body()) != rec.hash:
        return Problem(
            ProblemKind.HASH, line_no, rec.seq, "content does not match its hash (edited)"
        )
    if rec.seq != exp_seq:
        return Problem(ProblemKind.SEQ, line_no, rec.seq, _seq_message(exp_seq, rec.seq))
    if rec.prev != exp_prev:
        return Problem(
            ProblemKind.CHAIN, line_no, rec.seq, "prev does not match the previous record's hash"
        )
    return None


def check_extends(rec: AuditRecord, prev: Head, line_no: int | None = None) -> Problem | None:
    """The first thing wrong with `rec` as the record after `prev` (a reader following the log
    as it grows checks each new record with this, as `verify_lines` does)."""
    return _check_record(rec, line_no, prev.seq + 1, prev.hash)


def _head_problem(
    head: Head | None, last: AuditRecord | None, hashes: Mapping[int, str], *, head_garbled: bool
) -> tuple[Problem | None, str | None]:
    """(problem, note) from comparing the sidecar with the last good record (`hashes`: the
    records' hashes by seq, the one the sidecar names among them)."""
    if head_garbled:
        return Problem(ProblemKind.HEAD, None, None, "head sidecar is garbled"), None
    state = check_head(head, last, hashes.get)
    last_seq = 0 if last is None else last.seq
    match state:
        case HeadState.MATCH:
            return None, None
        case HeadState.LAGS:
            behind = last_seq - (0 if head is None else head.seq)
            return None, (
                f"head sidecar is {behind} record(s) behind (an append interrupted, or its "
                "update not yet on disk at a power loss); the next append repairs it"
            )
        case HeadState.MISMATCH:
            if head is None:
                msg = "head sidecar is missing but the log has records (deleted?)"
            elif head.seq > last_seq:
                msg = (
                    f"head sidecar says the last record is seq {head.seq}, but the log ends at "
                    f"seq {last_seq}: records were removed from the end (truncated)"
                )
            else:
                msg = (
                    f"head sidecar (seq {head.seq}) does not match the end of the log (seq "
                    f"{last_seq}): the log or the sidecar was rewritten"
                )
            return Problem(ProblemKind.HEAD, None, last_seq or None, msg), None
        case _:
            assert_never(state)


def verify_lines(
    path: Path,
    lines: Iterable[tuple[int, bytes]],
    head: Head | None,
    *,
    head_garbled: bool = False,
    keep: Collection[int] = (),
) -> VerifyReport:
    """Verify numbered lines (each with its newline, except a torn last one) against `head`;
    the hashes of the records numbered in `keep` are returned in the report's `hashes`."""
    problems: list[Problem] = []
    hashes: dict[int, str] = {}
    at_head: dict[int, str] = {}  # the hash of the record the sidecar names
    notes: list[str] = []
    count = 0
    exp_seq, exp_prev = 1, GENESIS
    last: AuditRecord | None = None
    # After a line we cannot parse we do not know what the next seq/prev should be; the next
    # good record re-anchors the walk instead of cascading one error per following line.
    anchored = True
    for line_no, raw in lines:
        count += 1
        if not raw.endswith(b"\n"):
            problems.append(
                Problem(ProblemKind.MALFORMED, line_no, None, "incomplete last line (truncated)")
            )
            anchored = False
            continue
        try:
            rec = decode_line(raw)
        except RecordFormatError as exc:
            problems.append(Problem(ProblemKind.MALFORMED, line_no, None, str(exc)))
            anchored = False
            continue
        if anchored:
            problem = _check_record(rec, line_no, exp_seq, exp_prev)
        elif compute_hash(rec.body()) != rec.hash:
            problem = Problem(ProblemKind.HASH, line_no, rec.seq, "content does not match its hash")
        else:
            problem = None
        if problem is not None:
            problems.append(problem)
        if rec.seq in keep:
            hashes[rec.seq] = rec.hash
        if head is not None and rec.seq == head.seq:
            at_head[rec.seq] = rec.hash
        exp_seq, exp_prev, anchored, last = rec.seq + 1, rec.hash, True, rec

    head_problem, note = _head_problem(head, last, at_head, head_garbled=head_garbled)
    if head_problem is not None:
        problems.append(head_problem)
    if note is not None:
        notes.append(note)
    return VerifyReport(
        path=path,
        records=count,
        last_seq=0 if last is None else last.seq,
        last_hash=GENESIS if last is None else last.hash,
        head=head,
        problems=tuple(problems),
        notes=tuple(notes),
        hashes=hashes,
    )
