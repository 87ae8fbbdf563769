"""Put a built rootfs into a Docker daemon as `sandbox/NAME:<content digest>` (docker import).

There is no registry: the daemon gets the very tree the nsjail backend uses, streamed as a tar.
Importing is idempotent (a tag that exists is reused) and cheap next to debootstrap (~5 s for
a 200 MB rootfs), so a fresh daemon catches up without rebuilding.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import BackendError
from sandbox.images._store import DOCKER_REPO_PREFIX, ImageRecord

if TYPE_CHECKING:
    from docker import DockerClient


def has_image(client: DockerClient, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.api.inspect_image(ref)  # type: ignore[no-untyped-call]
    except ImageNotFound:
        return False
    return True


def ensure_docker_image(client: DockerClient, rec: ImageRecord, rootfs: Path) -> str:
    """The docker reference of the image; imported from `rootfs` when the daemon lacks it."""
    ref = rec.docker_tag
    if has_image(client, ref):
        return ref
    from docker.errors import DockerException

    # --numeric-owner: ids as on disk (the daemon shifts them into its userns range itself);
    # --sort=name: the same tree gives the same layer.
    tar = subprocess.Popen(["tar", "--numeric-owner", "--sort=name", "-C", str(rootfs),
                            "-cf", "-", "."], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert tar.stdout is not None
    try:
        client.api.import_image_from_stream(tar.stdout, repository=DOCKER_REPO_PREFIX + rec.name,
                                            tag=rec.digest.split(":", 1)[1])
    except DockerException as exc:
        tar.kill()
        raise BackendError(f"docker import of image {rec.name} failed: {exc}") from exc
    finally:
        tar.stdout.close()
        _, err = tar.communicate()
    if tar.returncode != 0:
        raise BackendError(f"could not read the rootfs of image {rec.name}: "
                           f"{err.decode(errors='replace').strip()}")
    if not has_image(client, ref):
        raise BackendError(f"docker import of image {rec.name} did not produce {ref}")
    return ref
