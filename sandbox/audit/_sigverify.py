"""`sandbox audit --verify` with signatures: the chain walk plus every signed checkpoint.

The chain alone proves only that the log is self-consistent: anyone who can write it can edit
a record and recompute every hash after it. A checkpoint signed by `sandbox serve`'s key pins
(seq, hash) of the head at the time it was signed, so such a rewrite shows up as a record that
no longer has the signed hash, or as records missing below a signed seq.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.audit._record import GENESIS
from sandbox.audit._sign import Checkpoint, checkpoints_path, read_checkpoints
from sandbox.audit._verify import Problem, ProblemKind, VerifyReport

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sandbox.audit._log import AuditLog

__all__ = ["published_key_path", "verify_log", "verify_signed"]


def _sig_problem(message: str, seq: int | None = None) -> Problem:
    return Problem(ProblemKind.SIGNATURE, None, seq, message)


def verify_signed(
    log: AuditLog,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    key_source: str,
    required: bool,
) -> VerifyReport:
    """Verify the chain and the checkpoints signed by one of `keys` (by key id).

    `required`: the person named a key (`--pubkey`), so a log with no valid checkpoint fails;
    otherwise an unsigned log is only noted.
    """
    cp_path = checkpoints_path(log)
    problems: list[Problem] = []
    valid: list[Checkpoint] = []
    for line_no, item in read_checkpoints(cp_path):
        if isinstance(item, str):
            problems.append(_sig_problem(f"{cp_path.name} line {line_no}: {item}"))
        elif item.key not in keys:
            problems.append(_sig_problem(
                f"{cp_path.name} line {line_no}: signed by key {item.key}, not by the trusted "
                f"key ({', '.join(sorted(keys)) or 'none'})", item.seq))
        elif not item.verifies(keys[item.key]):
            problems.append(_sig_problem(
                f"{cp_path.name} line {line_no}: the signature does not verify "
                "(forged or edited checkpoint)", item.seq))
        else:
            valid.append(item)

    report = log.verify(keep={cp.seq for cp in valid})
    signed: int | None = None
    for cp in valid:
        if cp.seq > report.last_seq:
            problems.append(_sig_problem(
                f"a checkpoint signed at {cp.ts} vouches for seq {cp.seq}, but the log ends at "
                f"seq {report.last_seq}: signed records were removed", cp.seq))
        elif cp.seq and report.hashes.get(cp.seq) != cp.hash:
            problems.append(_sig_problem(
                f"record seq {cp.seq} is not the one signed at {cp.ts} "
                "(the log was rewritten after it was signed)", cp.seq))
        elif cp.seq == 0 and cp.hash != GENESIS:
            problems.append(_sig_problem("a checkpoint of the empty log names a record", 0))
        else:
            signed = cp.seq if signed is None else max(signed, cp.seq)

    notes = list(report.notes)
    if signed is None:
        if required or valid:
            problems.append(_sig_problem(
                f"no checkpoint of this log verifies with {key_source}: nothing in it is signed"))
        else:
            notes.append("not signed: no checkpoint yet (`sandbox serve` signs the log's head)")
    elif report.last_seq > signed:
        notes.append(f"{report.last_seq - signed} record(s) after seq {signed} are not signed "
                     "yet (written since the last checkpoint)")
    if signed is not None or required:
        notes.append(f"signatures checked against {key_source}")
    return dataclasses.replace(
        report,
        problems=report.problems + tuple(problems),
        notes=tuple(notes),
        signed_seq=signed,
        key=", ".join(sorted(keys)) or None,
    )


def published_key_path(log: AuditLog) -> Path:
    """Where `sandbox serve` leaves a copy of its public key, beside the log it signs."""
    return log.path.with_suffix(".pub")


def verify_log(log: AuditLog, pubkey: Path | None = None) -> VerifyReport:
    """The chain, plus signatures: against `pubkey` (required), else against the copy of the
    key `sandbox serve` published beside the log (weaker: whoever can rewrite the log can
    replace that copy too, which the report says)."""
    from sandbox.audit._sign import key_id, load_public_key

    if pubkey is not None:
        key = load_public_key(pubkey)
        return verify_signed(log, {key_id(key): key}, key_source=str(pubkey), required=True)
    published = published_key_path(log)
    if not published.exists():
        return verify_signed(log, {}, key_source="no key", required=False)
    key = load_public_key(published)
    return verify_signed(
        log, {key_id(key): key}, required=False,
        key_source=f"{published} (beside the log: pass --pubkey with a copy kept elsewhere to "
                   "rule out a replaced key)")
