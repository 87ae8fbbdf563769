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

if TYPE_CHECKING:  # the SDK and anyio load only when a server is served
    import anyio.abc
    from mcp.server.mcpserver import MCPServer

INSIDE_DIR = "/run/sandbox-mcp"
SOCKET_NAME = "mcp.sock"
RELAY_NAME = "relay.py"
CONFIG_NAME = "mcp.json"
_MAX_LINE = 64 << 20  # one JSON-RPC message (a write_file of a large file)

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
    os.chmod(path, 0o666)  # connect needs write permission; the directory is ours alone
    sock.listen(8)
    return sock


async def serve_socket(server: MCPServer[Any], sock: socket.socket,
                       seen: Callable[[str], None]) -> None:
    """Serve every connection on `sock` until cancelled; `seen(method)` for each request."""
    import anyio.abc

    listener = await anyio.abc.SocketListener.from_socket(sock)
    async with listener:
        await listener.serve(lambda stream: _serve_one(server, stream, seen))


async def _serve_one(server: MCPServer[Any], stream: anyio.abc.SocketStream,
                     seen: Callable[[str], None]) -> None:
    import anyio
    import mcp_types as types
    from anyio.streams.buffered import BufferedByteReceiveStream
    from mcp.shared.message import SessionMessage

    read_w, read_r = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_w, write_r = anyio.create_memory_object_stream[SessionMessage](0)
    buffered = BufferedByteReceiveStream(stream)

    async def reader() -> None:
        async with read_w:
            while True:
                try:
                    line = await buffered.receive_until(b"\n", _MAX_LINE)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError,
                        anyio.BrokenResourceError, anyio.DelimiterNotFound):
                    return
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:  # a malformed line is the client's error, reported
                    await read_w.send(exc)
                    continue
                method = getattr(message, "method", None)
                if isinstance(method, str):
                    seen(method)
                await read_w.send(SessionMessage(message))

    async def writer() -> None:
        async with write_r:
            async for msg in write_r:
                data = msg.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                try:
                    await stream.send(data.encode())
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return

    low = server._lowlevel_server  # the SDK serves a transport's streams only through it
    async with stream, anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        await low.run(read_r, write_w, low.create_initialization_options())
        tg.cancel_scope.cancel()
