"""Where `sandbox serve` listens, and what each kind of address demands.

The default is a unix socket in the state dir (0700 dir, 0600 socket): only its owner can
connect, so connections on it act as that owner. TCP on loopback works but every request needs
a token (any local user can connect to a loopback port). Anything else needs TLS and an explicit
--allow-remote.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import UsageError

__all__ = ["Listen", "parse_listen"]


@dataclass(frozen=True)
class Listen:
    unix: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def loopback(self) -> bool:
        if self.unix is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"unix:{self.unix}" if self.unix is not None else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    if text.startswith("unix:"):
        path = Path(text[5:])
        if not text[5:]:
            raise UsageError("--listen unix:PATH: the path is empty")
        return Listen(unix=path.absolute())
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected unix:PATH or HOST:PORT")
    return Listen(host=host, port=int(port))
