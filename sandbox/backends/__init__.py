"""Backends: one protocol; nsjail (default), docker, a fake for unit tests. Backends never import
each other; heavy ones are imported lazily so the `run` path stays fast."""

from sandbox.backends._base import (
    Backend,
    BindMount,
    LaunchResult,
    LaunchSpec,
    Limits,
    Network,
    Seccomp,
    Snapshot,
)

__all__ = [
    "Backend",
    "BindMount",
    "LaunchResult",
    "LaunchSpec",
    "Limits",
    "Network",
    "Seccomp",
    "Snapshot",
    "get_backend",
]


def get_backend(name: str, *, capture: bool = False) -> Backend:
    from sandbox.errors import UsageError

    if name == "nsjail":
        from sandbox.backends._nsjail import NsjailBackend

        return NsjailBackend(capture=capture)
    if name == "docker":
        # Lazy: the Docker SDK costs ~100 ms to import; the nsjail path never pays it.
        from sandbox.backends._docker import DockerBackend

        return DockerBackend(capture=capture)
    raise UsageError(f"unknown backend {name!r}", hint="available: nsjail, docker")
