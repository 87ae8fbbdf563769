"""Live view of a pending session (watchdog/inotify): files the agent writes into the session's
upper dir as they are written, and the person's own edits in the real workspace to paths the
session changes — conflicts in the making, shown before anyone tries to commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

__all__ = ["watch_session"]

_IGNORED = {"opened", "closed_no_write"}


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, kind: str, relevant: set[str],
                 loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[str, str]]) -> None:
        self.root, self.kind, self.relevant = str(root), kind, relevant
        self.loop, self.queue = loop, queue

    def _put(self, item: tuple[str, str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(item)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED or event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            rel = os.path.relpath(os.fsdecode(raw), self.root)
            if rel.startswith(".."):
                continue
            if self.kind == "written":
                self.relevant.add(rel)  # once the agent wrote it, a person's edit conflicts
            elif rel not in self.relevant:
                continue
            self.loop.call_soon_threadsafe(self._put, (self.kind, rel))


async def watch_session(upper: Path, workspace: Path,
                        pending: Collection[str]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
    relevant = set(pending)
    observer = Observer()
    if upper.is_dir():
        observer.schedule(_Handler(upper, "written", relevant, loop, queue), str(upper),
                          recursive=True)
    observer.schedule(_Handler(workspace, "conflict", relevant, loop, queue), str(workspace),
                      recursive=True)
    observer.start()
    try:
        yield b": watching\n\n"
        last: tuple[str, str] | None = None
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 15.0)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if item == last and queue.empty():
                continue  # one write is several inotify events: say it once
            last = item
            kind, rel = item
            yield f"event: {kind}\ndata: {json.dumps({'path': rel})}\n\n".encode()
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join, 5)
