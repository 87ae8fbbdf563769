"""Sandbox images: definitions (images/NAME.toml), debootstrap builds, the store of built ones.

`host` (the default) is not an image: it is the read-only view of the host system. A built image
is a rootfs directory the nsjail backend uses as LaunchSpec.image_root, plus the same tree
imported into Docker as `sandbox/NAME:<content digest>`. The Docker SDK is only imported by
`ensure_docker_image`, never by loading this package.
"""

from sandbox.images._build import BuildResult, build_image, installed_packages, trim
from sandbox.images._definition import (
    HOST_IMAGE,
    ImageDefinition,
    available,
    definitions_dir,
    effective_mirror,
    find_definition,
    mirror_from_sources,
    parse_definition,
)
from sandbox.images._digest import TreeDigest, tree_digest
from sandbox.images._docker_import import ensure_docker_image, has_image
from sandbox.images._store import ImageRecord, ImageStore, images_dir, record_for_rootfs

__all__ = [
    "HOST_IMAGE",
    "BuildResult",
    "ImageDefinition",
    "ImageRecord",
    "ImageStore",
    "TreeDigest",
    "available",
    "build_image",
    "definitions_dir",
    "effective_mirror",
    "ensure_docker_image",
    "find_definition",
    "has_image",
    "images_dir",
    "installed_packages",
    "mirror_from_sources",
    "parse_definition",
    "record_for_rootfs",
    "tree_digest",
    "trim",
]
