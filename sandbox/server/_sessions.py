"""Sessions over HTTP: listing, one session, its diff, and decisions — all through the library's
lifecycle (the session lock, the recorded policy, review's partial commit). Nothing here decides
what may be committed; it validates the request, checks that what the person saw is still what
is pending, and hands the choices to the lifecycle.

Staleness: every file in a diff carries an `etag` (a digest of the change and both sides'
contents). A decision may send the etags it was made on (`expect`); if any differs — the agent
wrote the file again, or the person edited it in the workspace — the answer is 409 and nothing
changes. The check runs under the session lock, so nothing can slip in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from sandbox.fs import Change
    from sandbox.lifecycle import Lifecycle, Pending
    from sandbox.review import Detail, ReviewState
    from sandbox.server._app import Server

__all__ = ["DecisionRequest", "decide", "diff_json", "list_sessions", "parse_decision",
           "session_json", "watch_target"]

_HASH_LIMIT = 64 << 20  # beyond this a side is identified by its stat, not its content


@contextmanager
def lifecycle(server: Server) -> Iterator[Lifecycle]:
    """A lifecycle with a store of this thread's own (sqlite connections stay in one thread)."""
    from sandbox.lifecycle import Lifecycle
    from sandbox.store import Store

    store = Store(server.layout)
    try:
        yield Lifecycle(server.layout, store, server.audit)
    finally:
        store.close()


def _side_digest(root: Path, rel: str) -> str:
    """One side of a change as it is now, read without following a symlink anywhere on the
    way (a workspace's symlinked directory must not lead the hash, and so the etag a viewer
    sees, out of the tree): the commit's own no-follow walk."""
    from sandbox.fs._safeio import O_DIR, UnsafePathError, lstat_at, open_dir_at, split

    parent, name = split(rel)
    try:
        root_fd = os.open(root, O_DIR)
    except OSError:
        return "-"
    try:
        dfd = open_dir_at(root_fd, parent)
    except (UnsafePathError, OSError):
        os.close(root_fd)
        return "-"  # a parent that is missing or not a real directory: nothing there
    os.close(root_fd)
    try:
        st = lstat_at(dfd, name)
        if st is None:
            return "-"
        head = f"{stat.S_IFMT(st.st_mode)}:{stat.S_IMODE(st.st_mode):o}:{st.st_size}"
        if stat.S_ISLNK(st.st_mode):
            return head + ":" + os.readlink(name, dir_fd=dfd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _HASH_LIMIT:
            return f"{head}:{st.st_mtime_ns}:{st.st_ino}"
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        h = hashlib.sha256()
        with open(fd, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return head + ":" + h.hexdigest()
    except OSError:
        return "-"
    finally:
        os.close(dfd)


def etag(p: Pending, change: Change) -> str:
    """What the person saw of one change: the change and both sides as they are now."""
    h = hashlib.sha256(json.dumps(change.to_json(), sort_keys=True, default=str).encode())
    h.update(_side_digest(p.upper, change.path).encode())
    h.update(_side_digest(p.session.workspace, change.path).encode())
    return h.hexdigest()[:32]


def _summary(p: Pending) -> dict[str, object]:
    from sandbox.governance import Risk, decide

    verdicts = p.verdicts()
    decision = decide(p.changeset, p.policy, interactive=False)
    reasons = getattr(decision, "reasons", ())
    return {
        "changes": len(p.changeset.changes),
        "risk": {"protected": sum(v.risk is Risk.PROTECTED for v in verdicts),
                 "forbidden": sum(v.risk is Risk.FORBIDDEN for v in verdicts),
                 "conflicts": sum(1 for c in p.changeset.changes if c.conflict)},
        "verdict": str(reasons[0]) if reasons else type(decision).__name__,
        "lines": {"added": sum(c.added_lines or 0 for c in p.changeset.changes),
                  "removed": sum(c.removed_lines or 0 for c in p.changeset.changes)},
    }


def _session_head(p: Pending) -> dict[str, object]:
    s = p.session
    return {"id": s.id, "workspace": str(s.workspace), "state": str(s.state), "level": s.level,
            "created": s.created.isoformat(), "updated": s.updated.isoformat()}


def list_sessions(server: Server, state: str | None, limit: int) -> list[dict[str, object]]:
    from sandbox.store import SessionState

    try:
        wanted = SessionState(state) if state else None
    except ValueError as exc:
        raise UsageError(f"unknown state {state!r}; one of: "
                         + ", ".join(s.value for s in SessionState)) from exc
    out: list[dict[str, object]] = []
    with lifecycle(server) as lc:
        for s in lc.store.list_sessions(state=wanted, limit=limit):
            p = lc.pending(lc.resolve(s.id))
            out.append(_session_head(p) | _summary(p))
    return out


def _pending(lc: Lifecycle, session_id: str) -> Pending:
    from sandbox._home import check_id

    try:
        check_id("session", session_id)
    except UsageError as exc:
        raise NotFoundError(f"no session {session_id!r}") from exc
    lc.store.get_session(session_id)  # NotFoundError (404) for an unknown id
    return lc.pending(lc.resolve(session_id))


def watch_target(server: Server, session_id: str) -> tuple[Path, Path, list[str]]:
    """(upper dir, workspace, pending paths) to watch live."""
    with lifecycle(server) as lc:
        p = _pending(lc, session_id)
        return p.upper, p.session.workspace, [c.path for c in p.changeset.changes]


def session_json(server: Server, session_id: str) -> dict[str, object]:
    with lifecycle(server) as lc:
        p = _pending(lc, session_id)
        runs = lc.store.list_runs(50, session_id=session_id)
        from sandbox.gateway._report import total

        records = lc.timeline(p.session)
        timeline = [r.to_json() for r in records[-500:]]
        llm = total(records)
        usage = {"llm_calls": llm.calls, "input_tokens": llm.input_tokens,
                 "output_tokens": llm.output_tokens, "cost_usd": llm.cost_usd}
        return _session_head(p) | _summary(p) | {
            "runs": [{"id": r.id, "seq": r.seq, "status": str(r.status),
                      "argv": list(r.command), "exit_code": r.exit_code} for r in runs],
            "usage": usage, "timeline": timeline,
            # The gateway's per-session budget, when serve hosts the gateway.
            "budget_usd": server.gateway.config.budget_session if server.gateway else None}


def _details(p: Pending, state: ReviewState) -> list[Detail]:
    from sandbox.review import Loader

    loader = Loader(p.upper, p.session.workspace)
    return [loader.detail(item) for item in state.items]


def diff_json(server: Server, session_id: str) -> dict[str, object]:
    from sandbox.review import build_state

    with lifecycle(server) as lc:
        p = _pending(lc, session_id)
        state = build_state(p.changeset, p.verdicts())
        files = []
        for item, detail in zip(state.items, _details(p, state), strict=True):
            c = item.change
            files.append({
                "path": c.path, "kind": str(c.kind), "etag": etag(p, c),
                "risk": str(item.verdict.risk), "reason": item.verdict.reason,
                "marks": [str(m) for m in item.marks], "conflict": c.conflict,
                "added": c.added_lines, "removed": c.removed_lines,
                "parts": detail.parts, "hunks": len(detail.diff.hunks) if detail.diff else 0,
                # (kind, text, part): text is already escaped for display (control, bidi and
                # zero-width characters as visible escapes); HTML-escape it, nothing more.
                "rows": [[str(r.kind), r.text, r.part] for r in detail.rows],
            })
        return _session_head(p) | {"files": files}


@dataclass(frozen=True)
class DecisionRequest:
    paths: tuple[str, ...]  # whole files
    hunks: Mapping[str, tuple[int, ...]]  # path -> hunk numbers, 1-based as shown
    message: str | None
    expect: Mapping[str, str]  # path -> etag the person saw


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings")
    return tuple(value)


def parse_decision(body: Mapping[str, object]) -> DecisionRequest:
    unknown = set(body) - {"paths", "hunks", "message", "expect"}
    if unknown:
        raise UsageError(f"unknown field(s): {', '.join(sorted(unknown))}")
    paths = _strings(body.get("paths", []), "paths")
    raw_hunks = body.get("hunks", {})
    if not isinstance(raw_hunks, dict):
        raise UsageError("hunks must be an object: path -> [hunk numbers]")
    hunks: dict[str, tuple[int, ...]] = {}
    for path, numbers in raw_hunks.items():
        if (not isinstance(numbers, list) or not numbers
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                           for n in numbers)):
            raise UsageError(f"hunks of {path!r} must be a list of hunk numbers (1, 2, ...)")
        hunks[path] = tuple(numbers)
    if not paths and not hunks:
        raise UsageError("name what you decide: paths and/or hunks")
    if set(paths) & set(hunks):
        raise UsageError("a path is either decided whole (paths) or by hunks, not both")
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 10_000):
        raise UsageError("message must be a string of at most 10000 characters")
    expect = body.get("expect", {})
    if not isinstance(expect, dict) or not all(isinstance(v, str) for v in expect.values()):
        raise UsageError("expect must be an object: path -> etag")
    return DecisionRequest(paths, hunks, message or None, expect)


def decide(server: Server, session_id: str, req: DecisionRequest, *, accept: bool,
           actor: str) -> dict[str, object]:
    """Approve (accept) or reject the named files and hunks, as one review under the lock."""
    from sandbox.review import Choice, HunkedFile, build_state, make_plan

    choice = Choice.ACCEPT if accept else Choice.REJECT
    with lifecycle(server) as lc:
        p = _pending(lc, session_id)
        with lc.reviewing(p.ref) as p:
            state = build_state(p.changeset, p.verdicts())
            index = {item.path: i for i, item in enumerate(state.items)}
            named: Sequence[str] = [*req.paths, *req.hunks, *req.expect]
            missing = sorted({x for x in named if x not in index})
            if missing:
                raise ConflictError(f"no pending change at {', '.join(missing)} (decided or "
                                    "discarded since the page was loaded); nothing was changed")
            stale = sorted(path for path, tag in req.expect.items()
                           if etag(p, state.items[index[path]].change) != tag)
            if stale:
                raise ConflictError(f"changed since the page was loaded: {', '.join(stale)}; "
                                    "nothing was changed (reload and decide again)")
            for path in req.paths:
                i = index[path]
                if accept and (why := state.cannot_accept(i)) is not None:
                    raise ConflictError(f"{path} cannot be approved: {why}")
                state = state.set_item(i, choice)
            hunked: dict[int, HunkedFile] = {}
            if req.hunks:
                from sandbox.review import Loader

                loader = Loader(p.upper, p.session.workspace)
                for path, numbers in req.hunks.items():
                    i = index[path]
                    detail = loader.detail(state.items[i])
                    if detail.diff is None:
                        raise UsageError(f"{path} is not split into hunks; decide it whole")
                    count = len(detail.diff.hunks)
                    bad = [n for n in numbers if n > count]
                    if bad:
                        raise UsageError(f"{path} has {count} hunk(s), not {bad[0]}")
                    hunked[i] = HunkedFile(detail.diff, detail.mode_part)
                    state = state.with_parts(i, detail.parts)
                    for n in numbers:
                        state = state.set_part(i, n - 1, choice)
            plan = make_plan(state, hunked, discard_pending=False)
            reviewed = lc.apply_review(p, plan, message=req.message, actor=actor)
    r = reviewed.result
    return {"committed": list(r.committed), "discarded": list(r.discarded),
            "partial": [{"path": x.path, "hunks": list(x.hunks)} for x in r.partial],
            "deferred": list(r.deferred), "state": str(reviewed.state), "left": reviewed.left}
