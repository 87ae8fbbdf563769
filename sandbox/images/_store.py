"""Where built images live and what was recorded about each build.

Layout: <store>/<NAME>/rootfs (the tree nsjail uses as LaunchSpec.image_root) and
<store>/<NAME>/image.json (the record below). <store> is $SANDBOX_IMAGES, else
$SANDBOX_HOME/images; CI points $SANDBOX_IMAGES at a stable cache dir so builds are reused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandbox._home import sandbox_home
from sandbox.errors import NotFoundError, StateError
from sandbox.images._definition import HOST_IMAGE, check_name

RECORD_FILE = "image.json"
ROOTFS_DIR = "rootfs"
DOCKER_REPO_PREFIX = "sandbox/"


@dataclass(frozen=True)
class ImageRecord:
    name: str
    digest: str  # "sha256:<hex>" of the rootfs content (see _digest)
    definition_hash: str
    suite: str
    packages: tuple[str, ...]  # as asked for in the definition
    installed: tuple[str, ...]  # every installed package as "name=version"
    files: int
    bytes: int
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    mirror: str
    docker_image: str | None = None  # "sandbox/NAME:<hex>" once imported into a daemon

    @property
    def docker_tag(self) -> str:
        return f"{DOCKER_REPO_PREFIX}{self.name}:{self.digest.split(':', 1)[1]}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["packages"], d["installed"] = list(self.packages), list(self.installed)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ImageRecord:
        return cls(
            name=str(d["name"]), digest=str(d["digest"]),
            definition_hash=str(d["definition_hash"]), suite=str(d["suite"]),
            packages=tuple(str(p) for p in d["packages"]),
            installed=tuple(str(p) for p in d["installed"]),
            files=int(d["files"]), bytes=int(d["bytes"]), built_at=str(d["built_at"]),
            build_seconds=float(d["build_seconds"]), mirror=str(d["mirror"]),
            docker_image=None if d.get("docker_image") is None else str(d["docker_image"]),
        )


def images_dir(env: Mapping[str, str] | None = None) -> Path:
    environ: Mapping[str, str] = os.environ if env is None else env
    explicit = environ.get("SANDBOX_IMAGES")
    if explicit:
        return Path(explicit).expanduser().absolute()
    return sandbox_home(environ) / "images"


@dataclass(frozen=True)
class ImageStore:
    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ImageStore:
        return cls(images_dir(env))

    def image_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def rootfs(self, name: str) -> Path:
        return self.image_dir(name) / ROOTFS_DIR

    def load(self, name: str) -> ImageRecord | None:
        """The record of a complete build, or None (never built, or a build died half-way:
        the record is written last, after the rootfs is in place)."""
        path = self.image_dir(name) / RECORD_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            rec = ImageRecord.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"corrupt image record {path}: {exc}",
                             hint=f"rebuild it: sandbox image build --force {name}") from exc
        return rec if self.rootfs(name).is_dir() else None

    def save(self, rec: ImageRecord) -> None:
        path = self.image_dir(rec.name) / RECORD_FILE
        tmp = path.with_name(f".{RECORD_FILE}.tmp")
        tmp.write_text(json.dumps(rec.to_json(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def list(self) -> tuple[ImageRecord, ...]:
        if not self.root.is_dir():
            return ()
        out = []
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                rec = self.load(d.name)
                if rec is not None:
                    out.append(rec)
        return tuple(out)

    def resolve(self, name: str) -> ImageRecord | None:
        """The built image NAME; None for `host`. NotFoundError (exit 2) if never built."""
        if name == HOST_IMAGE:
            return None
        rec = self.load(name)
        if rec is None:
            raise NotFoundError(f"image {name!r} is not built (in {self.root})",
                                hint=f"sandbox image build {name}")
        return rec


def record_for_rootfs(rootfs: Path) -> ImageRecord | None:
    """The record of the image whose rootfs is `rootfs` (LaunchSpec.image_root), if any."""
    try:
        raw = (rootfs.parent / RECORD_FILE).read_bytes()
        return ImageRecord.from_json(json.loads(raw))
    except (OSError, ValueError, KeyError, TypeError):
        return None
