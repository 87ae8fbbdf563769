"""Newline-delimited JSON-RPC over a byte stream, served by the SDK's server: the transport of
`sandbox mcp` on stdio and of the unix socket an agent's relay connects to.

Why not the SDK's own stdio transport: it reads and writes stdin/stdout through anyio's thread
pool (a thread hop for each line read, each write and each flush), which cost more than a
`read_file` itself. Here a pipe is read and written non-blocking from the event loop. Anything
else on fd 0/1 (a terminal, a regular file) is left to the SDK's transport.

While serving, fd 0 reads /dev/null and fd 1 writes to stderr (as the SDK's transport does), so
nothing we start can read the protocol or write into it; both are restored afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from sandbox.mcp._server import Worker

MAX_LINE = 64 << 20  # one JSON-RPC message (a write_file of a large file)
_CHUNK = 1 << 16


class PipeStream(anyio.abc.ByteStream):
    """A byte stream over a non-blocking read fd and write fd (pipes or sockets)."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    async def receive(self, max_bytes: int = _CHUNK) -> bytes:
        while True:
            try:
                data = os.read(self.rfd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.rfd)
                continue
            except OSError as exc:
                raise anyio.BrokenResourceError from exc
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            try:
                view = view[os.write(self.wfd, view):]
            except BlockingIOError:
                await anyio.wait_writable(self.wfd)
            except OSError as exc:  # EPIPE: the client went away
                raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        pass  # the fds belong to `claimed_stdio`, which restores and closes them

    async def aclose(self) -> None:
        pass


def _pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def claimed_stdio() -> Iterator[PipeStream | None]:
    """The protocol's fds (0 and 1) as a PipeStream while fd 0 reads /dev/null and fd 1 writes
    to stderr; None (nothing touched) when they are not both pipes or sockets."""
    if not (_pipe_or_socket(0) and _pipe_or_socket(1)):
        yield None
        return
    rfd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        wfd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        os.close(rfd)
        raise
    blocking = (os.get_blocking(rfd), os.get_blocking(wfd))
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.dup2(null, 0)
            try:
                os.dup2(2, 1)
            except OSError:
                os.dup2(null, 1)  # no stderr: stray output goes nowhere, never on the wire
        finally:
            os.close(null)
        # The pipes are ours (the client made them for this server); their blocking mode is
        # put back when we are done.
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        yield PipeStream(rfd, wfd)
    finally:
        for fd, was in zip((rfd, wfd), blocking, strict=True):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, was)
        with contextlib.suppress(OSError):
            os.dup2(rfd, 0)
        with contextlib.suppress(OSError):
            os.dup2(wfd, 1)
        os.close(rfd)
        os.close(wfd)


def run_stdio(server: MCPServer[Any], worker: Worker) -> None:
    """Serve `server` on stdin/stdout until the client closes stdin; the worker's audit flush
    follows each message written."""
    with claimed_stdio() as pipe:
        if pipe is None:
            server.run("stdio")
        else:
            worker.flush_after_send = True
            anyio.run(serve_stream, server, pipe, None, worker.sent)


async def serve_stream(server: MCPServer[Any], stream: anyio.abc.ByteStream,
                       seen: Callable[[str], None] | None = None,
                       sent: Callable[[], None] | None = None) -> None:
    """Serve one client on `stream` until it closes; `seen(method)` for each request,
    `sent()` after each message written."""
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
                    line = await buffered.receive_until(b"\n", MAX_LINE)
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
                if seen is not None and isinstance(method, str):
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
                if sent is not None:
                    sent()

    low = server._lowlevel_server  # the SDK serves a transport's streams only through it
    async with stream, anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        await low.run(read_r, write_w, low.create_initialization_options())
        tg.cancel_scope.cancel()
