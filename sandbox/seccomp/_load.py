"""`load_for_run`: the per-call entry point of the runtime, kept near-free.

Every run needs the profile's Kafel text and digest. Parsing, resolving and translating cost
milliseconds, so the result is cached by content: the key is the sha256 of the file's bytes plus
the translator version and the target (arch, kernel, capabilities). A hit costs one read of the
profile, one hash and one small read of the cache file (tens of microseconds); the in-process
memo makes repeated calls in one process a dictionary lookup. Nothing heavy is imported here: the
strict parser in `_model` validates on a miss, jsonschema is only used by lint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from sandbox.backends._base import Seccomp
from sandbox.errors import ProfileError
from sandbox.seccomp._target import Target

# Bump when the translation changes, so stale cache entries are never served.
TRANSLATOR_VERSION = "1"
DEFAULT_PROFILE = "default"


def profile_dirs() -> list[Path]:
    """Where shipped profiles live: next to the package (repo or install), then share/."""
    package = Path(__file__).resolve().parent.parent  # .../sandbox (works for a namespace package)
    return [package.parent / "profiles", Path(sys.prefix) / "share" / "sandbox" / "profiles"]


def shipped_names() -> list[str]:
    names: set[str] = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.json") if p.name != "schema.json")
    return sorted(names)


def find_profile(name_or_path: str | None) -> tuple[str, Path]:
    """(display name, file) for a shipped name or a path; ProfileError when it does not exist."""
    ref = name_or_path or DEFAULT_PROFILE
    looks_like_path = "/" in ref or ref.endswith(".json") or ref.startswith(".")
    if not looks_like_path:
        for d in profile_dirs():
            p = d / f"{ref}.json"
            if p.is_file():
                return ref, p
    p = Path(ref)
    if p.is_file():
        return str(p), p
    if looks_like_path:
        raise ProfileError(f"seccomp profile file not found: {ref}")
    raise ProfileError(
        f"unknown seccomp profile {ref!r}",
        hint=f"shipped profiles: {', '.join(shipped_names()) or 'none found'}; or give a path",
    )


def read_profile(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ProfileError(f"cannot read seccomp profile {path}: {e.strerror}") from e


def compile_for_run(raw: bytes, *, name: str, target: Target) -> Seccomp:
    """Parse, validate, resolve and translate (the slow path, no caching)."""
    # Imported here: a cache hit, the per-call case, needs none of the parser or translator.
    from sandbox.seccomp import _kafel, _model, _resolve

    profile = _model.loads(raw, source=name)
    resolved = _resolve.resolve_or_raise(profile, target)
    kafel = _kafel.to_kafel(resolved, name=name)
    oci = _model.canonical_json(json.loads(raw))
    return Seccomp(name=name, digest=profile.digest, kafel=kafel, oci_json=oci)


@functools.lru_cache(maxsize=32)
def _memo(
    key: str, raw: bytes, name: str, target: Target, cache_dir: Path | None
) -> Seccomp:
    # A pure function of its arguments (the key includes everything it depends on), so
    # memoizing it is not hidden state: it can never serve a different answer.
    if cache_dir is not None:
        hit = _read_cache(cache_dir / f"{key}.json", name)
        if hit is not None:
            return hit
    sc = compile_for_run(raw, name=name, target=target)
    if cache_dir is not None:
        _write_cache(cache_dir / f"{key}.json", sc)
    return sc


def cache_key(raw: bytes, name: str, target: Target) -> str:
    h = hashlib.sha256(raw)
    h.update(f"\0{TRANSLATOR_VERSION}\0{target.key()}\0{name}".encode())
    return h.hexdigest()


def load_for_run(name_or_path: str | None, *, cache_dir: Path | None) -> Seccomp:
    """The compiled profile for one run: `default` when None, a shipped name, or a path.

    Raises ProfileError (exit 2) naming the JSON path when the profile is bad; no run starts.
    """
    name, path = find_profile(name_or_path)
    raw = read_profile(path)
    target = Target.host()
    return _memo(cache_key(raw, name, target), raw, name, target, cache_dir)


def _read_cache(path: Path, name: str) -> Seccomp | None:
    try:
        d = json.loads(path.read_bytes())
        sc = Seccomp(name=name, digest=d["digest"], kafel=d["kafel"], oci_json=d["oci_json"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or corrupt: recompute (the cache is only an optimisation)
    if not all(isinstance(x, str) for x in (sc.digest, sc.kafel, sc.oci_json)):
        return None
    return sc


def _write_cache(path: Path, sc: Seccomp) -> None:
    import tempfile  # only on a cache miss: not on the usual `sandbox run` path

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"digest": sc.digest, "kafel": sc.kafel, "oci_json": sc.oci_json})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    except OSError:
        return  # an unwritable cache must not fail the run
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file
    except OSError:
        Path(tmp).unlink(missing_ok=True)
