"""One run, start to finish: policy -> snapshot -> launch -> collect -> diff -> decide -> commit
-> audit. The CLI is a thin shell over `run()`; tests call it directly with a fake backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from sandbox._home import HomeLayout
from sandbox._launch import (
    attach_egress,
    git_history_note,
    image,
    launch_spec,
    prepare_snapshot,
    sandbox_env,
)
from sandbox.audit import AuditEvent, AuditLog, Entry
from sandbox.backends import Backend, BindMount, LaunchResult, LaunchSpec
from sandbox.errors import EXIT_SANDBOX_FAILED, SandboxError, UsageError, WorkspaceError
from sandbox.fs import (
    ChangeSet,
    Ignored,
    compute_changeset,
    rebase,
    record_bases,
    run_start_ns,
    split_ignored,
    withdraw_from_git,
)
from sandbox.governance import AskPerson, AutoCommit, Decision, Hold, NothingToDo, Verdict
from sandbox.lifecycle import Lifecycle, Pending, policy_record
from sandbox.lifecycle._after_run import apply_decision
from sandbox.lifecycle._signals import Cancelled, armed
from sandbox.policy import EffectivePolicy, Level, Policy
from sandbox.store import RefKind, ResolvedRef, RunStatus, SessionRecord, SessionState, Store

if TYPE_CHECKING:
    from sandbox.gateway._tools import ToolGate


class Interaction(Protocol):
    """How the library talks to a person (levels 1-2). The CLI implements it on a terminal."""

    def interactive(self) -> bool: ...

    def confirm_run(self, argv: Sequence[str], policy: EffectivePolicy) -> bool: ...

    def review(self, cs: ChangeSet, decision: AskPerson, session: SessionRecord,
               upper: Path) -> bool: ...

    def ask_egress(self, host: str, port: int) -> Any:
        """Level 1: a request to a host outside the allowlist (allow once / session / deny)."""
        ...


class NoPerson:
    """No terminal: nothing is ever asked; changes stay pending at levels 1-2."""

    def interactive(self) -> bool:
        return False

    def confirm_run(self, argv: Sequence[str], policy: EffectivePolicy) -> bool:
        return False

    def review(self, cs: ChangeSet, decision: AskPerson, session: SessionRecord,
               upper: Path) -> bool:
        return False

    def ask_egress(self, host: str, port: int) -> Any:
        from sandbox.egress import Deny, DenyReason

        return Deny(DenyReason.NOT_IN_ALLOWLIST)


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    workspace: Path
    policy: EffectivePolicy
    session: str | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)  # -e KEY[=VAL]; None: inherit
    capture: bool = False
    # Host paths shown inside besides the workspace (read-only unless said): the MCP relay of
    # `sandbox agent`, the agent's own binary.
    mounts: tuple[BindMount, ...] = ()
    cwd: str = ""  # where the command starts, relative to the workspace (a subdirectory)
    user: str = "root"  # who the command runs as inside (see LaunchSpec.user)
    # With [llm]: the only tools the run's key may offer a model (`sandbox agent`); None: any.
    llm_tools: ToolGate | None = None


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    session_id: str
    exit_code: int
    launch: LaunchResult | None
    changeset: ChangeSet
    decision: Decision
    committed: tuple[str, ...]
    state: SessionState
    notes: tuple[str, ...] = ()
    ignored: Ignored = field(default_factory=Ignored)  # ignored output, not proposed
    status: RunStatus = RunStatus.FINISHED
    commit_error: str | None = None  # a commit that could not happen; the changes stay pending

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "session": self.session_id,
            "exit_code": self.exit_code,
            "timed_out": bool(self.launch and self.launch.timed_out),
            "duration_ms": self.launch.duration_ms if self.launch else None,
            "cpu_ms": self.launch.cpu_ms if self.launch else None,
            "peak_memory_kb": self.launch.peak_memory_kb if self.launch else None,
            "changes": self.changeset.to_json(),
            "decision": describe_decision(self.decision),
            "committed": list(self.committed),
            "state": self.state.value,
            "status": self.status.value,
            "commit_error": self.commit_error,
            "notes": list(self.notes),
            "ignored": self.ignored.to_json(),
        }


def describe_decision(decision: Decision) -> dict[str, Any]:
    def refused(vs: tuple[Verdict, ...]) -> list[dict[str, str]]:
        return [{"path": v.path, "reason": v.reason} for v in vs]

    match decision:
        case NothingToDo():
            return {"kind": "none"}
        case AutoCommit(paths=paths, refused=r, held=held):
            return {"kind": "auto-commit", "paths": list(paths), "refused": refused(r),
                    "held": refused(held)}
        case AskPerson(paths=paths, refused=r):
            return {"kind": "ask", "paths": list(paths), "refused": refused(r)}
        case Hold(reasons=reasons, refused=r):
            return {"kind": "hold", "reasons": list(reasons), "refused": refused(r)}
        case _:
            assert_never(decision)


def check_workspace(path: Path) -> Path:
    try:
        ws = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise WorkspaceError(f"workspace {path} does not exist") from exc
    if not ws.is_dir():
        raise WorkspaceError(f"workspace {ws} is not a directory")
    if not os.access(ws, os.R_OK | os.X_OK):
        raise WorkspaceError(f"workspace {ws} is not readable by you")
    if ws == Path("/"):
        raise WorkspaceError("refusing to use / as a workspace")
    return ws


def check_user(name: str) -> None:
    """`--user`: root, or a plain login name (it becomes /etc/passwd and /home/NAME inside)."""
    import re

    if name != "root" and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name):
        raise UsageError(f"--user {name!r}: expected root or a login name like dev",
                         hint="lower-case letters, digits, _ and -, starting with a letter")


def check_home_outside(layout: HomeLayout, workspace: Path) -> None:
    """The state dir holds pending changes, the journal and the audit log: a sandbox must never
    see it, and a commit must never write into it, so it may not live in the workspace."""
    home = os.path.realpath(layout.root)
    ws = str(workspace)
    if home == ws or home.startswith(ws.rstrip("/") + "/"):
        raise UsageError(f"the state directory {layout.root} is inside the workspace {ws}",
                         hint="the state directory may not live in the workspace: set "
                         "SANDBOX_HOME to a directory outside it")


class Runner:
    def __init__(self, layout: HomeLayout, store: Store, audit: AuditLog, backend: Backend,
                 person: Interaction | None = None) -> None:
        self.layout, self.store, self.audit, self.backend = layout, store, audit, backend
        self.person: Interaction = person or NoPerson()
        self.lifecycle = Lifecycle(layout, store, audit)

    def run(self, req: RunRequest) -> RunOutcome:
        policy = req.policy.policy
        workspace = check_workspace(req.workspace)
        check_home_outside(self.layout, workspace)
        if not req.argv:
            raise UsageError("no command given", hint="sandbox run -- COMMAND [ARG...]")
        if policy.level is Level.HUMAN_IN_THE_LOOP:
            if not self.person.interactive():
                raise UsageError(
                    "level 1 needs a person at a terminal to confirm the command first",
                    hint="run it from a terminal, or use --level 2 to hold changes instead")
            if not self.person.confirm_run(req.argv, req.policy):
                raise UsageError("not run: the command was not confirmed")
        env = sandbox_env(policy, req.env, os.environ)
        check_user(req.user)
        if req.user != "root":
            env.update({"HOME": f"/home/{req.user}", "USER": req.user, "LOGNAME": req.user})
        if req.cwd:
            env["PWD"] = f"/workspace/{req.cwd}"
        from sandbox.seccomp import load_for_run

        seccomp = load_for_run(policy.profile, cache_dir=self.layout.cache_dir)
        session = self._session(req, workspace, policy)
        with self.store.session_lock(session.id):
            session = self.store.get_session(session.id)  # another run may have closed it
            _refuse_closed(session, req.session)
            return self._run_locked(req, session, workspace, policy, env, seccomp)

    def _session(self, req: RunRequest, workspace: Path, policy: Policy) -> SessionRecord:
        # Conflict baseline: files changed in the workspace after this instant are conflicts.
        started_ns = run_start_ns(self.layout.root)
        if req.session is None:
            return self.store.new_session(workspace, level=int(policy.level),
                                          policy_digest=policy.digest(), started_ns=started_ns)
        session = self.store.open_named_session(req.session, workspace,
                                                level=int(policy.level),
                                                policy_digest=policy.digest(),
                                                started_ns=started_ns)
        if session.workspace != workspace:
            raise UsageError(f"session {req.session} belongs to workspace {session.workspace}",
                             hint="use another --session name, or -C that workspace")
        _refuse_closed(session, req.session)
        return session

    def _run_locked(self, req: RunRequest, session: SessionRecord, workspace: Path,
                    policy: Policy, env: dict[str, str], seccomp: Any) -> RunOutcome:
        snapshot, hidden = prepare_snapshot(self.layout, self.layout.session_dirs(session.id),
                                            workspace, policy)
        run_started_ns = run_start_ns(self.layout.root)  # a base changed after this is unsure
        image_root, image_digest = image(policy.image)
        from sandbox.lifecycle import launcher_identity

        pid, start = launcher_identity()
        # with the policy this run is decided under (the session keeps its latest run's)
        run = self.store.new_run(session.id, req.argv, backend=self.backend.name,
                                 profile=seccomp.name, launcher=(pid, start),
                                 session_policy=policy_record(policy))
        self.audit.append(AuditEvent.RUN_STARTED, run=run.id, session=session.id, data={
            "command": list(req.argv), "workspace": str(workspace), "level": int(policy.level),
            "policy_digest": policy.digest(), "backend": self.backend.name,
            "profile": seccomp.name, "profile_digest": seccomp.digest,
            "image": policy.image, "image_digest": image_digest,
            "env_names": sorted(env), "policy_sources": sorted(set(req.policy.layers)),
            "cwd": req.cwd, "launcher_pid": pid,
        })
        spec = launch_spec(req.argv, snapshot, env, seccomp,
                           self.layout.session_dir(session.id) / "runs" / run.id, policy,
                           image_root)
        if req.mounts:
            spec = replace(spec, extra_mounts=(*spec.extra_mounts, *req.mounts))
        if req.cwd:
            spec = replace(spec, cwd=f"{snapshot.mount_point}/{req.cwd}")
        if req.user != "root":
            spec = replace(spec, user=req.user)
        started = time.monotonic()
        egress_notes: list[str] = []
        history = git_history_note(self.layout, workspace, policy)
        if history:
            egress_notes.append(history)
        cancelled: int | None = None
        try:
            with contextlib.ExitStack() as stack:
                # level 1 with a person: unknown hosts are offered, even with no allowlist
                asks = policy.level is Level.HUMAN_IN_THE_LOOP and self.person.interactive()
                if policy.egress_allow or asks:
                    spec = self._with_egress(stack, spec, policy, run.id, session.id,
                                             egress_notes)
                if policy.llm_enabled:
                    from sandbox.gateway._attach import attach_llm

                    spec = attach_llm(stack, spec, home=self.layout.root, policy=policy,
                                      run_id=run.id, session_id=session.id, tools=req.llm_tools)
                with armed():
                    result = self.backend.launch(spec)
        except SandboxError as exc:
            self.store.finish_run(run.id, status=RunStatus.FAILED, exit_code=exc.exit_code,
                                  duration_ms=int((time.monotonic() - started) * 1000))
            self.audit.append(AuditEvent.RUN_FINISHED, run=run.id, session=session.id,
                              data={"status": "failed", "error": str(exc)})
            raise
        except KeyboardInterrupt as exc:  # a signal to us: the backend stopped the sandbox
            cancelled = exc.signum if isinstance(exc, Cancelled) else 2
            result = LaunchResult(exit_code=128 + cancelled, timed_out=False, signal=cancelled,
                                  duration_ms=int((time.monotonic() - started) * 1000),
                                  cpu_ms=0, peak_memory_kb=0)
        status = (RunStatus.CANCELLED if cancelled is not None else
                  RunStatus.FAILED if result.backend_error else
                  RunStatus.TIMEOUT if result.timed_out else RunStatus.FINISHED)
        notes = self._notes(result, spec, run.id, seccomp.name, egress_notes, cancelled)
        withdraw_from_git(workspace, snapshot.upper, hidden)
        cs = compute_changeset(snapshot.upper, workspace, hidden=hidden,
                               unhidden=policy.hide_except)
        # What the session saw at each newly changed path; then each change as it made it.
        session_dir = self.layout.session_dir(session.id)
        record_bases(session_dir, cs, workspace, run_started_ns)
        cs = rebase(cs, session_dir, workspace, snapshot.upper)
        cs, ignored = split_ignored(cs, workspace, policy.changes_ignore)
        # decided under the policy it ran under
        p = Pending(ResolvedRef(run.id, RefKind.RUN, session, None), cs, snapshot.upper, policy)
        # The records that close a run are written together: one disk flush, not four.
        records = [
            Entry(AuditEvent.RUN_FINISHED, run=run.id, session=session.id, data={
                "status": status.value, "exit_code": result.exit_code,
                "duration_ms": result.duration_ms, "peak_memory_kb": result.peak_memory_kb,
                "cpu_ms": result.cpu_ms, "timed_out": result.timed_out, "notes": notes}),
            Entry(AuditEvent.CHANGESET, run=run.id, session=session.id,
                  data=cs.summary() | {"paths": [c.path for c in cs.changes][:200],
                                       # per path, for the report's accepted/rejected lines
                                       "lines": [(c.added_lines or 0) + (c.removed_lines or 0)
                                                 for c in cs.changes][:200],
                                       "ignored": ignored.to_json()}),
        ]
        decision = _decide(cs, policy, self.person.interactive())
        if result.backend_error is not None or cancelled is not None:
            # a sandbox that failed or was stopped decides nothing: its changes stay pending
            decision = (Hold(reasons=(f"the run was {status.value}: changes wait for a "
                                      "person",)) if cs else NothingToDo())
        applied = apply_decision(self.lifecycle, p, decision, run_id=run.id, records=records,
                                 ask=lambda: self._ask(cs, decision, session, p))
        if applied.commit_error:
            notes.append(f"not committed (the changes stay pending): {applied.commit_error}")
        self.store.finish_run(run.id, status=status, exit_code=result.exit_code,
                              duration_ms=result.duration_ms, peak_mem_kb=result.peak_memory_kb,
                              cpu_ms=result.cpu_ms, summary=cs.summary() | {"notes": notes}
                              | ({"backend_log": list(result.backend_log)}
                                 if result.backend_log else {}))
        exit_code = EXIT_SANDBOX_FAILED if result.backend_error else result.exit_code
        if applied.interrupted and cancelled is None:
            exit_code = 130  # Ctrl-C at the prompt: the person stopped `sandbox run`
        return RunOutcome(run_id=run.id, session_id=session.id, exit_code=exit_code,
                          launch=result, changeset=cs, decision=decision,
                          committed=applied.committed, state=applied.state,
                          notes=tuple(notes), ignored=ignored, status=status,
                          commit_error=applied.commit_error)

    def _ask(self, cs: ChangeSet, decision: Decision, session: SessionRecord,
             p: Pending) -> bool:
        assert isinstance(decision, AskPerson)
        with armed():
            return self.person.review(cs, decision, session, p.upper)

    def _notes(self, result: LaunchResult, spec: LaunchSpec, run_id: str, profile: str,
               egress_notes: list[str], cancelled: int | None) -> list[str]:
        lim = spec.limits
        notes: list[str] = [*egress_notes, *result.notes]
        if cancelled is not None:
            import signal

            notes.append(f"cancelled: {signal.Signals(cancelled).name} reached `sandbox run`; "
                         "the sandbox was stopped and its changes so far are kept pending")
            return notes
        if result.write_limit_hit:
            notes.append(f"stopped: the run wrote more than the write limit ({lim.write_bytes} bytes)")
        if result.backend_error:
            # One line each: the cause, then where to look; the backend's log goes to the run's
            # record (`sandbox show`), never to the terminal as an escaped blob.
            notes.append(f"sandbox failed: {result.backend_error}")
            notes.append(f"hint: `sandbox show {run_id}` has the sandbox's log; `sandbox doctor` "
                         "checks this host's prerequisites, each with its fix")
        if result.timed_out:
            notes.append(f"timed out after {lim.timeout_s:g}s" if lim.timeout_s else "timed out")
        if _out_of_memory(result, lim.memory_bytes, notes):
            notes.append(f"killed: out of memory (limit {_size_text(lim.memory_bytes or 0)})")
            return notes
        if result.signal is not None or result.exit_code > 128:
            from sandbox.seccomp import denial_note

            note = denial_note(result.exit_code, profile=profile, signal_no=result.signal,
                               backend_log=_backend_log(spec.scratch))
            if note:
                notes.append(note)
        return notes

    def _with_egress(self, stack: contextlib.ExitStack, spec: LaunchSpec, policy: Policy,
                     run_id: str, session_id: str, notes: list[str]) -> LaunchSpec:
        """Start the run's egress proxy (stopped by `stack`) and bridge it into the spec: the
        sandbox keeps its loopback-only network; only the proxy's socket is handed in."""
        from sandbox import egress

        session_file = self.layout.session_dir(session_id) / "egress-allowed.json"
        remembered = _read_json_list(session_file)  # "allow for this session" answers
        rules = egress.EgressPolicy.from_strings((*policy.egress_allow, *remembered),
                                                 ceiling=policy.egress_ceiling,
                                                 allow_addresses=policy.egress_allow_addresses)

        def record(event: Any) -> None:  # one audit record per decision, from proxy threads
            self.audit.append(AuditEvent.EGRESS, run=run_id, session=session_id,
                              data=event.to_audit())

        def ask(host: str, port: int) -> Any:
            answer = self.person.ask_egress(host, port)
            if isinstance(answer, egress.Allow) and answer.remember:
                _write_json_list(session_file, [*_read_json_list(session_file), f"{host}:{port}"])
            return answer

        return attach_egress(stack, spec, rules, run_id=run_id, notes=notes, on_event=record,
                             ask=ask if policy.level is Level.HUMAN_IN_THE_LOOP else None)


def _read_json_list(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(x) for x in data] if isinstance(data, list) else []


def _write_json_list(path: Path, items: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(set(items))))
    os.replace(tmp, path)


def _backend_log(scratch: Path) -> str:
    try:
        return (scratch / "nsjail.log").read_text(errors="replace")[-8192:]
    except OSError:
        return ""


def _decide(cs: ChangeSet, policy: Policy, interactive: bool) -> Decision:
    from sandbox.governance import decide

    return decide(cs, policy, interactive=interactive)


def _out_of_memory(result: LaunchResult, limit: int | None, notes: list[str]) -> bool:
    """A SIGKILL with the peak at the memory limit is the kernel's OOM kill (cgroup), named
    like a timeout is; a backend that said so itself (the polling fallback) is not repeated."""
    if limit is None or result.exit_code != 128 + 9 or result.timed_out:
        return False
    if any("memory limit" in n for n in notes):
        return False
    return result.oom_killed or result.peak_memory_kb * 1024 >= 0.9 * limit


def _size_text(n: int) -> str:
    """4294967296 -> "4g", as a person writes --memory."""
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n} bytes"


def _refuse_closed(session: SessionRecord, name: str | None) -> None:
    """Runs are added to a session until a person closed it (committed or rejected)."""
    if session.state in (SessionState.COMMITTED, SessionState.REJECTED):
        raise UsageError(f"session {name or session.id} is already {session.state.value}",
                         hint="start a new session with another --session name")
