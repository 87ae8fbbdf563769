"""What a profile is resolved for (arch, capabilities, kernel): light, on the run path."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["Target", "kernel_version"]


@dataclass(frozen=True)
class Target:
    """What the profile is resolved for: the sandbox, not the host user."""

    arch: str = "amd64"
    caps: frozenset[str] = frozenset()
    kernel: tuple[int, int] = (6, 18)

    @classmethod
    def host(cls, caps: frozenset[str] = frozenset()) -> Target:
        return cls(arch="amd64", caps=caps, kernel=kernel_version(os.uname().release))

    def key(self) -> str:
        caps = ",".join(sorted(self.caps))
        return f"{self.arch}/{self.kernel[0]}.{self.kernel[1]}/{caps}"


def kernel_version(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m[1]), int(m[2])) if m else (0, 0)
