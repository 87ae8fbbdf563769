"""Start a real gateway (uvicorn on a loopback socket, in a thread) for a test."""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sandbox.gateway._config import parse_config
from sandbox.gateway._serve import EmbeddedGateway

UPSTREAM_KEY = "sk-upstream-REAL-7f3c9a1b2d4e6f80"

PRICES = """
[prices."claude-test"]
input = 3.0
output = 15.0
cache_read = 0.3
cache_write = 3.75
[prices."gpt-test"]
input = 2.0
output = 8.0
cache_read = 0.5
"""


def config_text(*urls: str, extra: str = "") -> str:
    """Anthropic + OpenAI providers at each stand-in URL (fallback in the order given)."""
    parts = []
    for i, url in enumerate(urls):
        parts.append(
            f'[providers.a{i}]\ntype = "anthropic"\nbase_url = "{url}"\napi_key_env = "UP_KEY"\n'
            f'[providers.o{i}]\ntype = "openai"\nbase_url = "{url}/v1"\napi_key_env = "UP_KEY"\n'
        )
    anth = ", ".join(f'"a{i}"' for i in range(len(urls)))
    oai = ", ".join(f'"o{i}"' for i in range(len(urls)))
    return "\n".join(parts) + f'[routes]\n"claude-*" = [{anth}]\n"gpt-*" = [{oai}]\n' + PRICES + extra


@contextmanager
def running_gateway(home: Path, text: str, env: Mapping[str, str] | None = None) -> Iterator[EmbeddedGateway]:
    cfg = parse_config(tomllib.loads(text), None, {"UP_KEY": UPSTREAM_KEY, **(env or {})})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    gw = EmbeddedGateway.start(cfg, home, sock)
    try:
        yield gw
    finally:
        gw.close()
        sock.close()


def url_of(gw: EmbeddedGateway) -> str:
    servers = gw.server.servers
    port = servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"
