"""Signed checkpoints of the audit chain's head (ed25519), and their verification.

Why checkpoints and not a signature on every record: records are appended by many short-lived
processes (`sandbox run`, the gateway, the CLI's approve/reject) that must not hold the key,
or anyone who can run them could sign a forged record. The key stays with `sandbox serve`,
which tails the log, checks that the new records extend the head it signed last, and signs the
new head. Each record's hash covers its predecessor's, so one signature over (seq, hash) vouches
for every record up to that seq: a log rewritten with recomputed hashes no longer matches a
signed head, and the rewriter cannot sign a new one. Records written since the last checkpoint
are reported as an unsigned tail.

A checkpoint is one JSON line in `<log stem>.checkpoints` beside the log:
    {"v":1,"seq":N,"hash":"<record N's hash>","ts":"...","key":"<key id>","sig":"<base64>"}
signed over b"sandbox-audit-checkpoint/v1\\n" + canonical JSON of every field but "sig".
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandbox.audit._record import canonical_bytes, utc_timestamp
from sandbox.errors import AuditError, UsageError

if TYPE_CHECKING:
    from sandbox.audit._log import AuditLog

__all__ = [
    "Checkpoint",
    "SigningKey",
    "checkpoints_path",
    "key_id",
    "load_public_key",
    "read_checkpoints",
    "write_checkpoint",
]

_DOMAIN = b"sandbox-audit-checkpoint/v1\n"
_FIELDS = ("v", "seq", "hash", "ts", "key", "sig")


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key: names the key in checkpoints."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoints_path(log: AuditLog) -> Path:
    return log.path.with_suffix(".checkpoints")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    ts: str
    key: str
    sig: str

    def signed_bytes(self) -> bytes:
        return _DOMAIN + canonical_bytes(
            {"v": 1, "seq": self.seq, "hash": self.hash, "ts": self.ts, "key": self.key}
        )

    def encode_line(self) -> bytes:
        obj = {"v": 1, "seq": self.seq, "hash": self.hash, "ts": self.ts, "key": self.key,
               "sig": self.sig}
        return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"

    def verifies(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.sig, validate=True), self.signed_bytes())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def _decode_checkpoint(line: bytes) -> Checkpoint:
    obj = json.loads(line.decode("ascii"))
    if not isinstance(obj, dict) or tuple(obj) != _FIELDS or obj["v"] != 1:
        raise ValueError("not a v1 checkpoint")
    seq, digest, ts, key, sig = obj["seq"], obj["hash"], obj["ts"], obj["key"], obj["sig"]
    if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0):
        raise ValueError("'seq' must be a non-negative integer")
    if not all(isinstance(v, str) for v in (digest, ts, key, sig)):
        raise ValueError("'hash', 'ts', 'key' and 'sig' must be strings")
    return Checkpoint(seq, digest, ts, key, sig)


def read_checkpoints(path: Path) -> list[tuple[int, Checkpoint | str]]:
    """(line number, checkpoint or why the line is not one); [] when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror}") from exc
    out: list[tuple[int, Checkpoint | str]] = []
    for n, line in enumerate(data.splitlines(keepends=True), 1):
        if not line.endswith(b"\n"):
            out.append((n, "incomplete last line"))
            continue
        try:
            out.append((n, _decode_checkpoint(line)))
        except (ValueError, UnicodeDecodeError, KeyError) as exc:
            out.append((n, f"malformed checkpoint: {exc}"))
    return out


def write_checkpoint(path: Path, cp: Checkpoint) -> None:
    """Append one checkpoint durably (flock'd: one writer at a time, lines never interleave)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o644)
    except OSError as exc:
        raise AuditError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, cp.encode_line())
        os.fsync(fd)
    except OSError as exc:
        raise AuditError(f"cannot write checkpoint to {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM (SubjectPublicKeyInfo) or OpenSSH ed25519 public key; UsageError if not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror}") from exc
    try:
        key = (serialization.load_ssh_public_key(data) if data.startswith(b"ssh-ed25519")
               else serialization.load_pem_public_key(data))
    except ValueError as exc:
        raise UsageError(f"{path} is not a PEM or OpenSSH public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path} is not an ed25519 public key")
    return key


def _check_private_file(path: Path, st: os.stat_result) -> None:
    # Like ssh: a key others could read (or swap) signs nothing.
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"audit signing key {path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise UsageError(f"audit signing key {path} is owned by uid {st.st_uid}, not by "
                         f"this process ({os.geteuid()})")
    if st.st_mode & 0o077:
        raise UsageError(f"audit signing key {path} is readable by others "
                         f"(mode {stat.S_IMODE(st.st_mode):04o})", hint=f"chmod 600 {path}")


@dataclass(frozen=True)
class SigningKey:
    """The private key `sandbox serve` signs checkpoints with, and where it lives."""

    path: Path
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def id(self) -> str:
        return key_id(self.public)

    @property
    def public_path(self) -> Path:
        return self.path.with_suffix(".pub")

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """Load the key at `path`, or create it (0600, in a 0700 directory) if there is none.

        Refuses a key that is not a regular file owned by this process's user with no access
        for group or others, and writes the public half beside it (`.pub`, 0644).
        """
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            key = cls(path, Ed25519PrivateKey.generate())
            key._create()
            return key
        except OSError as exc:
            raise UsageError(f"cannot open audit signing key {path}: {exc.strerror}") from exc
        try:
            _check_private_file(path, os.fstat(fd))
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
        finally:
            os.close(fd)
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise UsageError(f"{path} is not a PEM private key") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise UsageError(f"{path} is not an ed25519 private key")
        key = cls(path, private)
        key._write_public()
        return key

    def _create(self) -> None:
        pem = self.private.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot create audit signing key {self.path}: {exc.strerror}") \
                from exc
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._write_public()

    def _write_public(self) -> None:
        pem = self.public.public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            publish(self.public_path, pem)
        except OSError as exc:
            raise UsageError(f"cannot write {self.public_path}: {exc.strerror}") from exc

    def sign(self, seq: int, digest: str, ts: str | None = None) -> Checkpoint:
        draft = Checkpoint(seq, digest, ts or utc_timestamp(), self.id, "")
        sig = base64.b64encode(self.private.sign(draft.signed_bytes())).decode("ascii")
        return Checkpoint(draft.seq, draft.hash, draft.ts, draft.key, sig)


def publish(path: Path, pem: bytes) -> None:
    """A public key where anyone may read it (0644), replaced atomically, and only when it
    differs (a verifier reading it never sees a half-written file)."""
    if path.exists() and path.read_bytes() == pem:
        return
    tmp = path.with_suffix(".pub.tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o644)
    tmp.replace(path)


def trusted_keys(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    return {key_id(k): k for k in keys}
