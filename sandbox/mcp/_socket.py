"""The MCP server on a unix socket, for an agent that runs in a sandbox of its own.

The agent starts its stdio MCP server as usual; that "server" is a tiny relay inside its sandbox
(RELAY, run by the system python3) which connects to this socket, bind-mounted read-only into
the sandbox, and copies bytes both ways. Each connection is one MCP client (newline-delimited
JSON-RPC, as on stdio), served by the same `MCPServer` and session.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.egress._handoff import sandbox_only

if TYPE_CHECKING:  # the SDK and anyio load only when a server is served
    from mcp.server.mcpserver import MCPServer

INSIDE_DIR = "/run/sandbox-mcp"
SOCKET_NAME = "mcp.sock"
RELAY_NAME = "relay.py"
CONFIG_NAME = "mcp.json"

RELAY = f"""\
# stdio <-> the sandbox's MCP server (a unix socket bind-mounted from the host)
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect({INSIDE_DIR + "/" + SOCKET_NAME!r})
except OSError as e:
    sys.stderr.write("sandbox MCP relay: cannot reach the server: %s\\n" % e)
    sys.exit(1)
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
"""

CONNECT_METHODS = frozenset({"initialize", "server/discover", "tools/list"})


def write_relay(directory: Path, python: str) -> Path:
    """The relay script and a Claude-style MCP config naming it, in `directory` (mounted at
    INSIDE_DIR). Returns the config file."""
    (directory / RELAY_NAME).write_text(RELAY)
    config = {"mcpServers": {"sandbox": {"type": "stdio", "command": python,
                                         "args": ["-I", f"{INSIDE_DIR}/{RELAY_NAME}"]}}}
    path = directory / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2))
    for p in (directory / RELAY_NAME, path):
        os.chmod(p, 0o644)
    return path


def listen(directory: Path) -> socket.socket:
    path = directory / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.fspath(path))
    sandbox_only(path)  # the agent's sandbox may connect, no other local account
    sock.listen(8)
    return sock


async def serve_socket(server: MCPServer[Any], sock: socket.socket,
                       seen: Callable[[str], None]) -> None:
    """Serve every connection on `sock` until cancelled; `seen(method)` for each request."""
    import anyio.abc

    from sandbox.mcp._transport import serve_stream

    listener = await anyio.abc.SocketListener.from_socket(sock)
    async with listener:
        await listener.serve(lambda stream: serve_stream(server, stream, seen))
