"""Image definitions: `images/NAME.toml`, a Debian suite, a variant and a package list.

Pure apart from reading the TOML file. The definition hash covers everything that changes what
a build produces (the fields, the mirror actually used, the builder's own version), so a build
can be skipped when the hash of the definition is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import NotFoundError, UsageError

# Bumped whenever the builder changes what lands in a rootfs (trim list, added files...).
BUILDER_VERSION = "1"
HOST_IMAGE = "host"  # not built: the read-only view of the host system

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Debian package names (policy 5.6.1) plus an optional =version pin.
_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_VARIANTS = ("minbase", "buildd", "-")
_FIELDS = {"description", "suite", "variant", "components", "packages", "mirror"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class ImageDefinition:
    name: str
    source: Path
    description: str
    suite: str
    variant: str
    components: tuple[str, ...]
    packages: tuple[str, ...]
    mirror: str  # empty: the host apt's Debian mirror (see `effective_mirror`)

    def definition_hash(self, mirror: str) -> str:
        doc = {"builder": BUILDER_VERSION, "suite": self.suite, "variant": self.variant,
               "components": list(self.components), "packages": sorted(self.packages),
               "mirror": mirror}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"invalid image name {name!r}",
                         hint="lower-case letters, digits, '.', '_' and '-'")
    return name


def definitions_dir(env: dict[str, str] | None = None) -> Path:
    """$SANDBOX_IMAGE_DEFS, else the repository's images/ (next to the package)."""
    environ = os.environ if env is None else env
    explicit = environ.get("SANDBOX_IMAGE_DEFS")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "images"


def available(defs: Path | None = None) -> tuple[str, ...]:
    d = defs or definitions_dir()
    return tuple(sorted(p.stem for p in d.glob("*.toml"))) if d.is_dir() else ()


def find_definition(name_or_path: str, defs: Path | None = None) -> ImageDefinition:
    """A name in the definitions dir, or a path to a .toml file."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        name = check_name(path.stem)
    else:
        name = check_name(name_or_path)
        if name == HOST_IMAGE:
            raise UsageError("`host` is the read-only host view; there is nothing to build")
        path = (defs or definitions_dir()) / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available(defs)) or "none"
        raise NotFoundError(f"no image definition {path}", hint=f"defined images: {known}")
    return parse_definition(name, path, path.read_bytes())


def parse_definition(name: str, source: Path, raw: bytes) -> ImageDefinition:
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: {exc}") from exc
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise UsageError(f"{source}: unknown field {unknown[0]!r}",
                         hint=f"fields: {', '.join(sorted(_FIELDS))}")
    suite = _str(doc, "suite", source, "bookworm")
    if not _SUITE_RE.fullmatch(suite):
        raise UsageError(f"{source}: suite {suite!r} is not a Debian suite name")
    variant = _str(doc, "variant", source, "minbase")
    if variant not in _VARIANTS:
        raise UsageError(f"{source}: variant {variant!r}", hint=f"one of {', '.join(_VARIANTS)}")
    components = _str_list(doc, "components", source, ["main"])
    packages = _str_list(doc, "packages", source, [])
    for p in packages:
        if not _PKG_RE.fullmatch(p):
            raise UsageError(f"{source}: {p!r} is not a Debian package name")
    for c in components:
        if not _SUITE_RE.fullmatch(c):
            raise UsageError(f"{source}: {c!r} is not a Debian archive component")
    mirror = _str(doc, "mirror", source, "")
    if mirror and not re.fullmatch(r"https?://[A-Za-z0-9.:/_~%+-]+", mirror):
        raise UsageError(f"{source}: mirror {mirror!r} is not an http(s) URL")
    return ImageDefinition(name=name, source=source,
                           description=_str(doc, "description", source, ""),
                           suite=suite, variant=variant, components=tuple(components),
                           packages=tuple(packages), mirror=mirror.rstrip("/"))


def effective_mirror(defn: ImageDefinition, sources_dir: Path = Path("/etc/apt")) -> str:
    """The definition's mirror, else the Debian mirror apt already uses on this host."""
    if defn.mirror:
        return defn.mirror
    texts: list[str] = []
    for p in [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") and p.is_file():
            texts.append(p.read_text(errors="replace"))
    return mirror_from_sources("\n".join(texts)) or DEFAULT_MIRROR


def mirror_from_sources(text: str) -> str | None:
    """First main Debian archive URI in one-line (`deb URI suite`) or deb822 (`URIs:`) form;
    security archives are skipped (debootstrap needs the main archive)."""
    for line in text.splitlines():
        line = line.strip()
        uris: list[str] = []
        if line.startswith("URIs:"):
            uris = line.split()[1:]
        elif line.startswith("deb "):
            parts = [p for p in line.split()[1:] if not p.startswith("[")]
            uris = parts[:1]
        for uri in uris:
            if uri.startswith(("http://", "https://")) and "security" not in uri:
                return uri.rstrip("/")
    return None


def _str(doc: dict[str, object], key: str, source: Path, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise UsageError(f"{source}: {key} must be a string")
    return value


def _str_list(doc: dict[str, object], key: str, source: Path, default: list[str]) -> list[str]:
    value = doc.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{source}: {key} must be a list of strings")
    return list(value)
