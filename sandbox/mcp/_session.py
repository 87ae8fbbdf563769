"""One session of one workspace, as the MCP tools see it: every call is audited, `bash` is one
sandboxed run of the session, the file tools read and write the session's view.

Not thread-safe (one Store, one sqlite connection): the server calls it from one worker thread;
only `flush_audit` may run on another.
During the agent's work every run's changes are held, whatever the level; the level decides
once, when the agent finishes (`finish`), as `sandbox run` decides after its command.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sandbox._home import HomeLayout, check_id
from sandbox.audit import AuditEvent, AuditLog, Entry
from sandbox.errors import SandboxError, UsageError
from sandbox.mcp import _files
from sandbox.mcp._errors import ToolRefused
from sandbox.mcp._view import View, normalize
from sandbox.mcp._write import changed_between, upper_snapshot, write_file
from sandbox.policy import Level, secret_env_name
from sandbox.store import SessionRecord, SessionState, Store

if TYPE_CHECKING:
    from sandbox._runner import RunOutcome
    from sandbox.fs import ChangeSet
    from sandbox.governance import Decision
    from sandbox.lifecycle import Lifecycle
    from sandbox.policy import EffectivePolicy

MAX_OUTPUT_CHARS = 30_000  # of each stream in one bash answer; the rest is cut with a note
DEFAULT_TIMEOUT_S = 120.0
MAX_TIMEOUT_S = 600.0


class Confirm(Protocol):
    """Level 1: the person at the terminal that started the server says yes or no."""

    def confirm(self, what: str) -> bool: ...


@dataclass(frozen=True)
class McpConfig:
    workspace: Path
    policy: EffectivePolicy  # the session's policy (flags included), level as asked
    session: str | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)  # -e KEY[=VAL]
    home: Path | None = None

    @property
    def asks_person(self) -> bool:
        """Level 1: every command and write is confirmed by a person (the `confirm` given to
        the session); the front end attaches one only then."""
        return self.policy.policy.level is Level.HUMAN_IN_THE_LOOP


@dataclass(frozen=True)
class Finished:
    """What the level decided when the agent finished."""

    session: SessionRecord
    changeset: ChangeSet
    decision: Decision
    committed: tuple[str, ...]
    error: str | None = None


def scrub_environment(environ: dict[str, str] | None = None) -> list[str]:
    """Drop secret-looking variables from this process's environment (an agent hands its whole
    environment, API key included, to a stdio MCP server): nothing secret reaches a sandbox."""
    env = os.environ if environ is None else environ
    gone = sorted(k for k in env if secret_env_name(k))
    for k in gone:
        del env[k]
    return gone


def _digest(args: Mapping[str, Any]) -> str:
    body = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _cut(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return (text[:limit] + f"\n[{what} cut: {len(text) - limit} more characters not shown; "
            "redirect to a file and read it with read_file (offset/limit) or grep]")


class McpSession:
    def __init__(self, cfg: McpConfig, *, confirm: Confirm | None = None) -> None:
        from sandbox.fs import recover_interrupted, run_start_ns

        self.cfg = cfg
        self.policy = cfg.policy.policy
        self.layout = (HomeLayout(cfg.home) if cfg.home else HomeLayout.from_env()).ensure()
        recover_interrupted(self.layout.journal_dir)
        self.store = Store(self.layout)
        self.audit = AuditLog(self.layout.audit)
        self.confirm = confirm
        started = run_start_ns(self.layout.root)
        if cfg.session is None:
            self.record = self.store.new_session(
                cfg.workspace, level=int(self.policy.level), policy_digest=self.policy.digest(),
                started_ns=started)
        else:
            check_id("session", cfg.session)
            self.record = self.store.open_named_session(
                cfg.session, cfg.workspace, level=int(self.policy.level),
                policy_digest=self.policy.digest(), started_ns=started)
            if self.record.workspace != cfg.workspace:
                raise UsageError(f"session {cfg.session} belongs to workspace "
                                 f"{self.record.workspace}",
                                 hint="use another --session name, or -C that workspace")
            if self.record.state in (SessionState.COMMITTED, SessionState.REJECTED):
                raise UsageError(f"session {cfg.session} is already {self.record.state.value}",
                                 hint="start a new session with another --session name")
        self.id = self.record.id
        self.dirs = self.layout.session_dirs(self.id).create()
        self.view = View(cfg.workspace, self.dirs.upper, tuple(self.policy.hide))
        self.tool_calls = 0
        # Set from the event loop when the client cancels the `bash` going on.
        self.cancelled = False
        # Tool-call records wait here for `flush_audit`, which the server runs on a thread of
        # its own (the next call need not wait for the disk): `_pending` guards the list,
        # `_flushing` keeps the flushes in order.
        self._unflushed: list[Entry] = []
        self._pending = threading.Lock()
        self._flushing = threading.Lock()

    def close(self) -> None:
        try:
            self.flush_audit()
        finally:
            self.store.close()

    # -- the audit wrapper ----------------------------------------------------------------

    def call(self, tool: str, args: Mapping[str, Any], fn: Callable[[dict[str, Any]], str],
             *, subject: str | None = None) -> str:
        """Run one tool call; exactly one audit record whatever happens (ok, refused, error,
        cancelled). `fn` fills `facts` (run id, exit status, changed paths) for the record."""
        facts: dict[str, Any] = {}
        status = "error"
        detail: str | None = None
        try:
            result = fn(facts)
            status = "ok"
            return result
        except ToolRefused as exc:
            status, detail = "refused", str(exc)
            raise
        except SandboxError as exc:
            detail = str(exc)
            raise
        except BaseException as exc:
            status = "cancelled" if facts.get("cancelled") else "error"
            detail = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if facts.get("cancelled"):
                status = "cancelled"
            self.tool_calls += 1
            data: dict[str, Any] = {"tool": tool, "args_digest": _digest(args), "status": status}
            if subject is not None:
                data["subject"] = subject[:500]
            data.update({k: v for k, v in facts.items() if k != "cancelled"})
            if detail:
                data["error"] = detail[:500]
            entry = Entry(AuditEvent.TOOL_CALL, run=facts.get("run"), session=self.id,
                          actor="agent", data=data)
            with self._pending:
                self._unflushed.append(entry)

    def flush_audit(self) -> None:
        """Make the tool-call records durable: one write and flush for all of them. The server
        calls it right after each answer, on its audit thread (so neither the answer nor the
        next read waits for the disk); a `bash` call, `finish` and `close` call it first, so
        every call's record precedes what a later call writes to the log."""
        with self._flushing:
            with self._pending:
                batch, self._unflushed = self._unflushed, []
            if not batch:
                return
            try:
                self.audit.append_many(batch)
            except BaseException:
                with self._pending:
                    self._unflushed[:0] = batch  # kept for the next flush
                raise

    def _confirm(self, what: str) -> None:
        if not self.cfg.asks_person:
            return
        if self.confirm is None:
            raise ToolRefused("level 1: every command and write needs a person at the terminal "
                              "that started the session to confirm it, and none is attached")
        if not self.confirm.confirm(what):
            raise ToolRefused(f"the person declined: {what}")

    # -- tools ----------------------------------------------------------------------------

    def bash(self, command: str, timeout: float | None) -> str:
        return self.call("bash", {"command": command, "timeout": timeout},
                         lambda facts: self._bash(command, timeout, facts), subject=command)

    def _bash(self, command: str, timeout: float | None, facts: dict[str, Any]) -> str:
        from sandbox._runner import NoPerson, Runner, RunRequest
        from sandbox.backends import get_backend

        if not command.strip():
            raise ToolRefused("command is empty")
        if timeout is not None and timeout <= 0:
            raise ToolRefused("timeout must be a positive number of seconds")
        self._confirm(f"run: {command}")
        self.flush_audit()  # the earlier calls' records come before this run's
        effective = self._run_policy(timeout)
        backend = get_backend(effective.policy.backend, capture=True)
        before = upper_snapshot(self.dirs.upper)
        runner = Runner(self.layout, self.store, self.audit, backend, NoPerson())
        req = RunRequest(argv=("bash", "-c", command), workspace=self.cfg.workspace,
                         policy=effective, session=self.id, env=dict(self.cfg.env), capture=True)
        self.cancelled = False
        outcome = runner.run(req)
        if self.cancelled:
            facts["cancelled"] = True
        changed = sorted(changed_between(before, upper_snapshot(self.dirs.upper))
                         & {c.path for c in outcome.changeset})
        facts.update(run=outcome.run_id, exit=outcome.exit_code, changed=changed[:100])
        captured = getattr(backend, "captured", None)
        out = captured.stdout.decode("utf-8", "replace") if captured else ""
        err = captured.stderr.decode("utf-8", "replace") if captured else ""
        return self._bash_text(outcome, changed, out, err)

    def _bash_text(self, outcome: RunOutcome, changed: list[str], out: str, err: str) -> str:
        lines = [f"exit status: {outcome.exit_code}", f"run: {outcome.run_id}"]
        lines += [f"note: {n}" for n in outcome.notes]
        lines.append("changed: " + (", ".join(changed[:50]) if changed else "nothing")
                     + (f" (+{len(changed) - 50} more)" if len(changed) > 50 else ""))
        lines += ["--- stdout ---", _cut(out, MAX_OUTPUT_CHARS, "stdout")]
        if err:
            lines += ["--- stderr ---", _cut(err, MAX_OUTPUT_CHARS, "stderr")]
        return "\n".join(lines)

    def _run_policy(self, timeout: float | None) -> EffectivePolicy:
        """The session's policy for one call: changes held (the level decides at the end), the
        timeout only ever tightened."""
        pol = self.policy
        limit = min(timeout or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
        if pol.limits.timeout_s is not None:
            limit = min(limit, pol.limits.timeout_s)
        from sandbox.lifecycle import held_policy

        return held_policy(self.cfg.policy, replace(pol, limits=replace(pol.limits,
                                                                        timeout_s=limit)))

    def read_file(self, path: str, offset: int | None, limit: int | None) -> str:
        return self.call("read_file", {"path": path, "offset": offset, "limit": limit},
                         lambda _: _files.read_file(self.view, path, offset, limit), subject=path)

    def list_files(self, path: str | None, pattern: str | None) -> str:
        return self.call("list_files", {"path": path, "pattern": pattern},
                         lambda _: _files.list_files(self.view, path, pattern),
                         subject=path or ".")

    def grep(self, pattern: str, path: str | None, glob: str | None) -> str:
        return self.call("grep", {"pattern": pattern, "path": path, "glob": glob},
                         lambda _: _files.grep(self.view, pattern, path, glob),
                         subject=f"{pattern} {path or '.'}")

    def write_file(self, path: str, content: str) -> str:
        def go(facts: dict[str, Any]) -> str:
            rel = normalize(path, self.cfg.workspace)
            data = content.encode("utf-8")
            self._check_size(data)
            self._confirm(f"write {rel} ({len(data)} bytes)")
            with self.store.session_lock(self.id):
                new = write_file(self.view, rel, data)
            facts["changed"] = [rel]
            return (f"{'created' if new else 'wrote'} {rel} ({len(data)} bytes); pending in "
                    f"session {self.id}, not in the workspace until approved")

        return self.call("write_file", {"path": path, "content": content}, go, subject=path)

    def edit_file(self, path: str, old: str, new: str, replace_all: bool) -> str:
        def go(facts: dict[str, Any]) -> str:
            with self.store.session_lock(self.id):
                text = _files.read_text(self.view, path)
                edited = _files.edit(text.text, text.rel, old, new, replace_all)
                data = edited.encode("utf-8")
                self._check_size(data)
                self._confirm(f"edit {text.rel}")
                write_file(self.view, text.rel, data)
            facts["changed"] = [text.rel]
            n = text.text.count(old) if replace_all else 1
            return f"edited {text.rel}: {n} replacement{'s' if n != 1 else ''}; pending"

        return self.call("edit_file", {"path": path, "old_string": old, "new_string": new,
                                       "replace_all": replace_all}, go, subject=path)

    def _check_size(self, data: bytes) -> None:
        cap = self.policy.limits.write_bytes
        if cap is not None and len(data) > cap:
            raise ToolRefused(f"content of {len(data)} bytes is over the write limit ({cap})")

    def changes(self) -> str:
        def go(_: dict[str, Any]) -> str:
            cs = self.changeset()
            if not cs:
                return f"session {self.id}: no pending changes"
            rows = [f"session {self.id}: {len(cs)} pending change(s)"]
            for c in cs.changes:
                counts = ("binary" if c.binary else
                          f"+{c.added_lines or 0} -{c.removed_lines or 0}")
                flag = f"  FORBIDDEN: {'; '.join(c.forbidden)}" if c.forbidden else ""
                rows.append(f"{c.kind.value:13} {counts:>12}  {c.path}{flag}")
            return "\n".join(rows)

        return self.call("changes", {}, go)

    def diff(self, path: str | None) -> str:
        def go(_: dict[str, Any]) -> str:
            lc = self._lifecycle()
            p = lc.pending(lc.resolve(self.id))
            paths = [normalize(path, self.cfg.workspace)] if path else None
            # Forbidden changes stay out of the patch (as in `sandbox diff`): only named.
            text = b"".join(lc.patch(p, paths)).decode("utf-8", "replace")
            notes = [f"[forbidden, never committed, not shown: {c.path}: {'; '.join(c.forbidden)}]"
                     for c in p.forbidden(paths)]
            if not text and not notes:
                return "no pending changes" + (f" under {path}" if path else "")
            return "\n".join([_cut(text, MAX_OUTPUT_CHARS * 2, "diff"), *notes]).strip()

        return self.call("diff", {"path": path}, go, subject=path)

    def _lifecycle(self) -> Lifecycle:
        from sandbox.lifecycle import Lifecycle

        return Lifecycle(self.layout, self.store, self.audit)

    def changeset(self) -> ChangeSet:
        """What approve would be offered: the session's changes against what it saw, the
        ignored output left out (the lifecycle's view, not a raw diff of the upper dir)."""
        lc = self._lifecycle()
        return lc.pending(lc.resolve(self.id)).changeset

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> Finished:
        """The level decides on everything the agent changed (levels 3-4 may commit; 1-2 keep
        it pending for `sandbox approve`/`review`), under the session lock, by the library's
        own decision code (what follows a run in `sandbox run`)."""
        from sandbox.governance import decide
        from sandbox.lifecycle import policy_record
        from sandbox.lifecycle._after_run import apply_decision

        self.flush_audit()
        lc = self._lifecycle()
        # The runs were held at level 2; the session is judged by its own policy.
        with lc.locked(self.id):
            self.store.set_session_policy(self.id, policy_record(self.policy))
            p = lc.pending(lc.resolve(self.id))
            decision = decide(p.changeset, self.policy, interactive=False)
            applied = apply_decision(lc, p, decision, run_id=p.run_id, records=[],
                                     ask=lambda: False)
        self.record = self.store.get_session(self.id)
        left = self.changeset() if applied.committed else p.changeset
        return Finished(self.record, left, decision, applied.committed, applied.commit_error)
