"""Which repository policy files a person trusts to loosen their policy (`sandbox trust`).

A workspace's `sandbox.toml` (or a `--policy` file inside the workspace) belongs to whoever
controls the repository: a pull request, a dependency, a cloned example. It may always tighten
the person's policy; it may loosen it (a higher level, egress, larger limits, a weaker profile,
more host variables) only once the person has trusted that exact content, like `direnv allow`.
The record is the file's absolute path and the sha256 of its bytes, kept in the person's state
dir ($SANDBOX_HOME/trust.json, 0600): a changed file is untrusted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from enum import StrEnum
from pathlib import Path

from sandbox.errors import PolicyError

TRUST_FILE = "trust.json"


class Trust(StrEnum):
    """Whose a policy layer is: the person's own, or a repository's (trusted or not)."""

    PERSON = "yours"  # built-in, org, user, flags, a --policy file outside the workspace
    TRUSTED = "trusted"  # a repository file whose exact content the person trusted
    UNTRUSTED = "untrusted"  # a repository file: it may only tighten


def content_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _store(home: Path) -> Path:
    return home / TRUST_FILE


def _read(home: Path) -> dict[str, str]:
    try:
        data = json.loads(_store(home).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{_store(home)}: unreadable trust records: {exc}",
                          hint="remove the file; then trust your workspaces again") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def _write(home: Path, files: dict[str, str]) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    import tempfile  # only when trusting: not on the `sandbox run` path

    fd, tmp = tempfile.mkstemp(dir=home, prefix=".trust-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "files": dict(sorted(files.items()))}, f, indent=1)
        os.replace(tmp, _store(home))  # atomic: readers see the old or the new records
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def layer_trust(home: Path, path: Path, data: bytes) -> Trust:
    """TRUSTED when `path` with exactly these bytes was trusted, else UNTRUSTED."""
    recorded = _read(home).get(str(path.resolve()))
    return Trust.TRUSTED if recorded == content_digest(data) else Trust.UNTRUSTED


def trust(home: Path, path: Path) -> str:
    """Record the current content of `path` as trusted; returns its digest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc.strerror}",
                          hint="check the path and its permissions; `sandbox trust` takes a "
                          "policy file or a workspace directory") from exc
    files = _read(home)
    files[str(path.resolve())] = digest = content_digest(data)
    _write(home, files)
    return digest


def revoke(home: Path, path: Path) -> bool:
    """Forget the trust in `path`; False when it was not trusted."""
    files = _read(home)
    if files.pop(str(path.resolve()), None) is None:
        return False
    _write(home, files)
    return True
