"""The MCP server named `sandbox`: the session's tools over stdio (official `mcp` SDK, both the
2025-06-18 handshake revision and the stateless 2026-07-28 one).

Every tool call runs on one worker thread that owns the session (its sqlite connection is
bound to a thread, and one session's calls serialize anyway). A long `bash` reports progress
every second; a cancelled one stops its sandbox -- nothing it started survives -- and the
call's audit record says `cancelled`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from sandbox.errors import SandboxError
from sandbox.mcp._errors import ToolRefused
from sandbox.mcp._session import Confirm, Finished, McpConfig, McpSession

T = TypeVar("T")
PROGRESS_EVERY_S = 1.0
_STOP_GRACE_S = 0.5

INSTRUCTIONS = """\
These tools work on a sandboxed session of the workspace. Each `bash` call runs in a fresh,
locked-down sandbox (no network unless the policy allows hosts) that sees the files as this
session left them; the file tools read and write the same view. Nothing reaches the real
workspace until the session is approved: all changes are pending. Hidden files (secrets) do
not exist here. Paths are relative to the workspace root (or under /workspace)."""

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                        open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                         open_world_hint=False)
_EDIT = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                        open_world_hint=False)
_BASH = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                        open_world_hint=True)

TOOL_NAMES = ("bash", "read_file", "write_file", "edit_file", "list_files", "grep", "changes",
              "diff")


class Worker:
    """The one thread that owns the session, and one that makes its audit records durable."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-mcp")
        self.audit = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-audit")
        self.flush: Callable[[], None] | None = None
        # Set when the transport calls `sent` after writing each message: the flush then
        # starts once the answer is on its way, not while it is being serialized.
        self.flush_after_send = False

    def sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self.pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        fut = asyncio.wrap_future(self.pool.submit(fn, *args))
        try:
            return await asyncio.shield(fut)
        except SandboxError as exc:
            raise _tool_error(exc) from exc
        finally:
            self.after_call()

    def after_call(self) -> None:
        """Flush the call's audit record once it is answered, beside the next call (a failed
        flush keeps the records for the next one; `close` flushes what is left)."""
        if not self.flush_after_send:
            self.sent()

    def sent(self) -> None:
        if self.flush is not None:
            self.audit.submit(self.flush)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.audit.shutdown(wait=True)


def _tool_error(exc: SandboxError) -> ToolError:
    if isinstance(exc, ToolRefused):
        return ToolError(str(exc))
    return ToolError(f"sandbox error: {exc}")


def nsjail_children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children() if _is_nsjail(p)}


def stop_running_sandboxes(keep: Collection[int] = ()) -> int:
    """Stop the sandbox of the run going on in this process: its nsjail (which takes the jail
    with it), or its container; never those in `keep` (the agent's own). Returns how many."""
    import psutil

    stopped = 0
    procs = [p for p in psutil.Process().children() if _is_nsjail(p) and p.pid not in keep]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
            stopped += 1
    # Never wait() here: the backend's own wait4 reaps nsjail and reads its usage.
    deadline = time.monotonic() + _STOP_GRACE_S
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.02)
    for p in procs:
        if _alive(p):
            with contextlib.suppress(psutil.Error):
                p.kill()
    return stopped + _stop_containers()


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_nsjail(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.name() == "nsjail" or os.path.basename(proc.exe()) == "nsjail")
    except psutil.Error:
        return False


def _stop_containers() -> int:
    """Containers of the docker backend carry their owner's pid in a label."""
    try:
        import docker

        from sandbox.backends._docker_config import LABEL_OWNER
        from sandbox.backends._docker_stage import owner_token

        client = docker.from_env(timeout=5)
        found = client.api.containers(filters={"label": LABEL_OWNER})
    except Exception:  # no daemon, no docker runs: nothing to stop
        return 0
    me = owner_token(os.getpid())
    n = 0
    for c in found:
        if str((c.get("Labels") or {}).get(LABEL_OWNER, "")) == me:
            with contextlib.suppress(Exception):
                client.api.kill(c["Id"])
                n += 1
    return n


def build_server(worker: Worker, session: McpSession,
                 keep: Collection[int] = ()) -> MCPServer[Any]:
    """The `sandbox` server over `session`; a cancelled `bash` stops its sandbox, never the
    processes in `keep` (the agent's own sandbox, when the agent runs in this process)."""
    worker.flush = session.flush_audit
    server: MCPServer[Any] = MCPServer("sandbox", instructions=INSTRUCTIONS,
                                       version="1", log_level="WARNING")

    @server.tool(annotations=_BASH, structured_output=False, description=(
        "Run a shell command (bash -c) in a fresh sandbox over the session's files, in "
        "/workspace. It sees every earlier change of this session; what it changes stays "
        "pending. Returns the exit status, stdout and stderr (long output is cut: redirect to a "
        "file and read it), the run id and the paths it changed. No network unless the policy "
        "allows hosts. Nothing survives the command (no background processes)."))
    async def bash(
        command: Annotated[str, Field(description="the command line, run by bash -c")],
        ctx: Context,
        timeout: Annotated[float | None, Field(
            description="seconds before the command is stopped (default 120, max 600; the "
                        "policy's limit wins)")] = None,
    ) -> str:
        start = time.monotonic()
        fut = asyncio.wrap_future(worker.pool.submit(session.bash, command, timeout))
        fut.add_done_callback(lambda _: worker.after_call())
        try:
            while True:
                with anyio.move_on_after(PROGRESS_EVERY_S):
                    return await asyncio.shield(fut)
                elapsed = time.monotonic() - start
                await ctx.report_progress(elapsed, None, f"running for {elapsed:.0f}s")
        except SandboxError as exc:
            raise _tool_error(exc) from exc
        except anyio.get_cancelled_exc_class():
            session.cancelled = True
            stop_running_sandboxes(keep)
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await fut  # its audit record says cancelled; its changes so far stay pending
            raise

    @server.tool(annotations=_READ, structured_output=False, description=(
        "Read a text file of the session's view (the workspace plus pending changes), with line "
        "numbers. Long files come in pieces: pass offset (1-based line) and limit (lines, "
        "default 2000). Binary files are not shown."))
    async def read_file(
        path: Annotated[str, Field(description="workspace-relative path (or under /workspace)")],
        offset: Annotated[int | None, Field(description="first line to show (1-based)")] = None,
        limit: Annotated[int | None, Field(description="how many lines to show")] = None,
    ) -> str:
        return await worker.run(session.read_file, path, offset, limit)

    @server.tool(annotations=_WRITE, structured_output=False, description=(
        "Create or overwrite a file with the given content (UTF-8). Missing parent directories "
        "are created. The write is a pending change of the session, not of the workspace."))
    async def write_file(
        path: Annotated[str, Field(description="workspace-relative path (or under /workspace)")],
        content: Annotated[str, Field(description="the whole new content of the file")],
    ) -> str:
        return await worker.run(session.write_file, path, content)

    @server.tool(annotations=_EDIT, structured_output=False, description=(
        "Replace text in a file: old_string must occur exactly once (include enough context), "
        "or set replace_all to replace every occurrence. Whitespace must match exactly. The "
        "result is a pending change of the session."))
    async def edit_file(
        path: Annotated[str, Field(description="workspace-relative path (or under /workspace)")],
        old_string: Annotated[str, Field(description="the exact text to replace")],
        new_string: Annotated[str, Field(description="the text to put in its place")],
        replace_all: Annotated[bool, Field(description="replace every occurrence")] = False,
    ) -> str:
        return await worker.run(session.edit_file, path, old_string, new_string, replace_all)

    @server.tool(annotations=_READ, structured_output=False, description=(
        "List a directory of the session's view (directories end in /), or, with pattern, every "
        "path below it matching a glob such as '**/*.py' or 'src/*.c' (.git is skipped)."))
    async def list_files(
        path: Annotated[str | None, Field(description="directory (default: the root)")] = None,
        pattern: Annotated[str | None, Field(description="glob to match, recursive")] = None,
    ) -> str:
        return await worker.run(session.list_files, path, pattern)

    @server.tool(annotations=_READ, structured_output=False, description=(
        "Search file contents with a regular expression (RE2 syntax, as ripgrep: no lookaround "
        "or backreferences) in the session's view; "
        "prints path:line:text. Binary files and .git are skipped; at most 200 matches."))
    async def grep(
        pattern: Annotated[str, Field(description="regular expression")],
        path: Annotated[str | None, Field(description="file or directory (default: all)")] = None,
        glob: Annotated[str | None, Field(description="only files matching, e.g. '*.py'")] = None,
    ) -> str:
        return await worker.run(session.grep, pattern, path, glob)

    @server.tool(annotations=_READ, structured_output=False, description=(
        "The session's pending changes: each path with its kind (added, modified, deleted...) "
        "and lines added/removed. These wait for approval before reaching the workspace."))
    async def changes() -> str:
        return await worker.run(session.changes)

    @server.tool(annotations=_READ, structured_output=False, description=(
        "The pending changes as a unified diff (git format), all or under one path."))
    async def diff(
        path: Annotated[str | None, Field(description="only this file or directory")] = None,
    ) -> str:
        return await worker.run(session.diff, path)

    return server


def serve_stdio(cfg: McpConfig, *, confirm: Confirm | None = None,
                on_ready: Callable[[str], None] | None = None) -> Finished:
    """Serve the session's tools on stdin/stdout until the client leaves; then the level
    decides on what the agent changed (see `McpSession.finish`)."""
    worker = Worker()
    try:
        session = worker.sync(lambda: McpSession(cfg, confirm=confirm))
        try:
            if on_ready is not None:
                on_ready(session.id)
            from sandbox.mcp._transport import run_stdio

            run_stdio(build_server(worker, session), worker)
            return worker.sync(session.finish)
        finally:
            worker.sync(session.close)
    finally:
        worker.close()
