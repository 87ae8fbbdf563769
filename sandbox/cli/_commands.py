"""Command handlers: turn parsed arguments into library calls and render the results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._home import HomeLayout
from sandbox.audit import AuditLog
from sandbox.cli import _render as render
from sandbox.errors import EXIT_USAGE, ConflictError, UsageError
from sandbox.lifecycle import Lifecycle
from sandbox.policy import Layer, load_policy, parse_duration, parse_size
from sandbox.store import ResolvedRef, Store


@dataclass(frozen=True)
class Ctx:
    layout: HomeLayout
    store: Store
    audit: AuditLog
    lifecycle: Lifecycle


@contextmanager
def _context() -> Iterator[Ctx]:
    layout = HomeLayout.from_env().ensure()
    # Every invocation first finishes or rolls back a commit a crash interrupted (an empty
    # journal dir, the usual case, costs one listdir and no import).
    if os.listdir(layout.journal_dir):
        from sandbox.fs import recover_interrupted

        for note in recover_interrupted(layout.journal_dir):
            print(f"sandbox: recovered an interrupted commit: {note}", file=sys.stderr)
    with Store(layout) as store:
        audit = AuditLog(layout.audit)
        ctx = Ctx(layout, store, audit, Lifecycle(layout, store, audit))
        # Runs whose `sandbox run` died (SIGKILL, a crash) are marked lost: one indexed query
        # when there are none, so this costs nothing on the usual call.
        if store.running_runs():
            for run in ctx.lifecycle.reap_lost():
                print(f"sandbox: run {run.id} was lost (its `sandbox run` process died); "
                      "its changes so far stay pending", file=sys.stderr)
        yield ctx


def dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cmd: str = args.cmd
    if cmd == "doctor":
        from sandbox.cli._doctor import doctor

        return doctor(json_out=args.json)
    if cmd == "trust":
        return _trust(args)
    if cmd == "policy":
        if args.policy_cmd != "show":
            raise UsageError("usage: sandbox policy show [-C DIR] [--policy FILE] [--json]")
        return _policy_show(args)
    if cmd == "profile":
        from sandbox.cli._profile import run_profile

        return run_profile(args)
    if cmd == "gateway":
        from sandbox.cli._gateway import run_gateway

        return run_gateway(args)
    if cmd == "report":
        from sandbox.cli._report import run_report

        return run_report(args)
    if cmd == "serve":
        from sandbox.cli._serve import run_serve

        return run_serve(args)
    if cmd == "image":
        from sandbox.cli._image import run_image

        return run_image(args)
    if cmd == "mcp":
        from sandbox.cli._mcp import run_mcp

        return run_mcp(args)
    if cmd == "agent":
        from sandbox.cli._mcp import run_agent

        return run_agent(args)
    with _context() as ctx:
        match cmd:
            case "run":
                return _run(ctx, args)
            case "ls":
                return _ls(ctx, args)
            case "show":
                return _show(ctx, args)
            case "diff":
                return _diff(ctx, args)
            case "review":
                return _review(ctx, args)
            case "export":
                return _export(ctx, args)
            case "approve":
                return _approve(ctx, args)
            case "reject":
                return _reject(ctx, args)
            case "kill":
                return _kill(ctx, args)
            case "audit":
                return _audit(ctx, args)
    parser.print_help()
    return EXIT_USAGE


def _flags(args: argparse.Namespace) -> list[Layer]:
    """Each flag is its own (last) policy layer, so messages can name it."""
    out: list[Layer] = []

    def add(flag: str, data: dict[str, Any]) -> None:
        out.append(Layer(kind="flags", label=flag, data=data))

    if args.level is not None:
        add("--level", {"level": args.level})
    if args.profile:
        add("--profile", {"run": {"profile": args.profile}})
    if args.backend:
        add("--backend", {"run": {"backend": args.backend}})
    if args.image:
        add("--image", {"run": {"image": args.image}})
    limits: dict[str, tuple[str, Any]] = {}
    if args.timeout is not None:
        limits["timeout"] = ("--timeout", _checked(parse_duration, args.timeout, "--timeout"))
    if args.memory is not None:
        limits["memory"] = ("--memory", _checked(parse_size, args.memory, "--memory"))
    if args.cpus is not None:
        limits["cpus"] = ("--cpus", args.cpus)
    if args.pids_limit is not None:
        limits["pids"] = ("--pids-limit", args.pids_limit)
    for key, (flag, value) in limits.items():
        add(flag, {"limits": {key: value}})
    if args.allow:
        add("--allow", {"egress": {"allow": list(args.allow)}})
    if getattr(args, "llm", False):
        add("--llm", {"llm": {"enabled": True}})
    return out


def _checked(parse: Any, value: str, flag: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value!r}: {exc}") from exc


def _load(workspace: Path, policy_file: str | None, flags: list[Layer], *,
          for_run: bool = False) -> Any:
    """The effective policy. A run stops (exit 2) when an untrusted repository policy file
    would loosen it; review, approve and diff apply only what such a file tightens."""
    from sandbox.policy import Untrusted, merge, standard_layers

    layers = standard_layers(workspace, os.environ,
                             Path(policy_file) if policy_file else None) + flags
    return merge(layers, untrusted=Untrusted.REFUSE if for_run else Untrusted.IGNORE)


def _run(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox._runner import Runner, RunRequest, check_workspace
    from sandbox._workspace import locate_workspace
    from sandbox.backends import get_backend

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command given", hint="sandbox run [OPTIONS] -- COMMAND [ARG...]")
    located = locate_workspace(args.workspace)
    workspace = check_workspace(located.workspace)
    effective = _load(workspace, args.policy, _flags(args), for_run=True)
    render.repository_policy_note(effective)
    env: dict[str, str | None] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        env[key] = value if sep else None
    backend = get_backend(effective.policy.backend, capture=args.json)
    person = None  # no terminal: nothing is asked (and the prompt code is not even loaded)
    if not args.json and sys.stdin.isatty() and sys.stderr.isatty():
        from sandbox.cli._person import TerminalPerson

        person = TerminalPerson(True)
    if args.workspace is None and str(workspace) != os.path.realpath(os.getcwd()):
        print(f"sandbox: workspace {render.esc(str(workspace))} (the git work tree), "
              f"starting in {render.esc(located.subdir or '.')}", file=sys.stderr)
    runner = Runner(ctx.layout, ctx.store, ctx.audit, backend, person)
    outcome = runner.run(RunRequest(argv=tuple(command), workspace=workspace, policy=effective,
                                    session=args.session, env=env, capture=args.json,
                                    cwd=located.subdir, user=args.user))
    if args.json:
        data = outcome.to_json()
        data["changes"] = render.changes_json(outcome.changeset, effective.policy)
        data["git"] = None
        if any(c.path.startswith(".git/") for c in outcome.changeset.changes):
            from sandbox.fs import git_work  # commits made inside, not object files

            session = ctx.store.resolve(outcome.session_id).session
            work = git_work(ctx.layout.session_dirs(session.id).upper, session.workspace,
                            outcome.changeset.changes)
            data["git"] = work.to_json() if work else None
        captured = getattr(backend, "captured", None)
        if captured is not None:
            data["stdout"] = captured.stdout.decode("utf-8", "replace")
            data["stderr"] = captured.stderr.decode("utf-8", "replace")
            data["output_truncated"] = captured.truncated
        print(json.dumps(data, indent=2))
    else:
        render.run_summary(outcome, effective.policy)
    return outcome.exit_code


def _ls(ctx: Ctx, args: argparse.Namespace) -> int:
    """Every session waiting for a person first, however old (its latest run), then the
    recent runs (all of them with --all)."""
    if args.last < 0:
        raise UsageError("--last must be 0 or more")
    recent = ctx.store.list_runs(limit=1_000_000 if args.all else args.last)
    return render.ls(ctx.lifecycle.waiting(), recent, json_out=args.json)


def _ref(ctx: Ctx, args: argparse.Namespace) -> ResolvedRef:
    """RUN: `last` is the last run of the current workspace unless --all-workspaces."""
    everywhere = getattr(args, "all_workspaces", False)
    return ctx.lifecycle.resolve(args.ref, cwd=None if everywhere else Path(os.getcwd()))


def _show(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.fs import git_work

    resolved = _ref(ctx, args)
    pending = ctx.lifecycle.settled(resolved)
    cs = pending.changeset
    git = git_work(pending.upper, resolved.session.workspace, cs.changes) if cs else None
    runs = ctx.store.list_runs(limit=1000, session_id=resolved.session.id)
    return render.show(pending.ref, runs, cs, ctx.lifecycle.timeline(resolved.session),
                       json_out=args.json, policy=pending.policy, git=git,
                       ignored=pending.ignored)


def _diff(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.fs import diffstat
    from sandbox.fs._patch import Conflicted
    from sandbox.lifecycle import normalize_paths

    p = ctx.lifecycle.pending(_ref(ctx, args))
    chosen = normalize_paths(args.paths, p.changeset, workspace=p.session.workspace)
    paths = list(chosen) if chosen is not None else None
    if args.json:
        from sandbox.fs import git_work

        git = git_work(p.upper, p.session.workspace, p.changeset.changes)
        print(json.dumps(render.changes_json(p.changeset, p.policy)
                         | {"git": git.to_json() if git else None}, indent=2))
    elif args.stat:
        print(diffstat(p.changeset, paths=paths), end="")
    else:
        conflicted: list[Conflicted] = []
        render.write_patch(ctx.lifecycle.patch(p, paths, conflicted=conflicted,
                                               include_forbidden=args.include_forbidden))
        render.forbidden_left_out(p.forbidden(paths), included=args.include_forbidden)
        render.conflicted(conflicted)
    return 0


def _review(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.cli._review import review

    return review(ctx, _ref(ctx, args), args)


def _export(ctx: Ctx, args: argparse.Namespace) -> int:
    from sandbox.cli._review import export

    return export(ctx, _ref(ctx, args), args)


def _approve(ctx: Ctx, args: argparse.Namespace) -> int:
    done = ctx.lifecycle.approve(_ref(ctx, args), args.paths, force=args.force,
                                 include_protected=args.include_protected,
                                 include_ignored=args.include_ignored, message=args.message)
    if args.json:
        print(json.dumps({"session": done.session_id, "committed": list(done.committed),
                          "refused": [{"path": v.path, "reason": v.reason}
                                      for v in done.refused],
                          "conflicts": [{"path": p, "reason": why} for p, why in done.conflicts],
                          "state": done.state.value}))
    elif not done.committed and not done.refused and not done.conflicts:
        print(f"nothing pending; session {done.session_id} is {done.state.value}")
    else:
        render.committed(done.committed, done.refused)
        render.conflicts(done.conflicts)
    return ConflictError.exit_code if done.conflicts else 0


def _reject(ctx: Ctx, args: argparse.Namespace) -> int:
    done = ctx.lifecycle.reject(_ref(ctx, args), args.paths, message=args.message)
    if args.json:
        print(json.dumps({"session": done.session_id, "rejected": list(done.rejected),
                          "state": done.state.value}))
    elif not done.rejected:
        print(f"nothing pending; session {done.session_id} is {done.state.value}")
    else:
        print(f"rejected {len(done.rejected)} change(s); session {done.session_id} is "
              f"{done.state.value}")
    return 0


def _kill(ctx: Ctx, args: argparse.Namespace) -> int:
    run = ctx.lifecycle.cancel(_ref(ctx, args))
    if args.json:
        print(json.dumps({"run": run.id, "session": run.session_id,
                          "status": run.status.value, "exit_code": run.exit_code}))
    else:
        print(f"run {run.id} is {run.status.value}; its changes so far stay pending in "
              f"session {render.esc(run.session_id)}")
    return 0


def _audit(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.pubkey and not args.verify:
        raise UsageError("--pubkey goes with --verify")
    if args.verify:
        from sandbox.audit import verify_log

        report = verify_log(ctx.audit, Path(args.pubkey) if args.pubkey else None)
        return render.audit_verify(report, json_out=args.json)
    session = None
    if args.ref:
        session = _ref(ctx, args).session.id
    records = [r for r in ctx.audit.records() if session is None or r.session == session]
    return render.audit(records, json_out=args.json)


def _policy_show(args: argparse.Namespace) -> int:
    from sandbox._runner import check_workspace
    from sandbox._workspace import locate_workspace
    from sandbox.policy import Untrusted

    ws = check_workspace(locate_workspace(args.workspace).workspace)
    eff = load_policy(ws, policy_file=Path(args.policy) if args.policy else None,
                      untrusted=Untrusted.IGNORE)
    return render.policy(eff, json_out=args.json)


def _trust(args: argparse.Namespace) -> int:
    from sandbox._runner import check_workspace
    from sandbox._workspace import locate_workspace
    from sandbox.policy import trust_command

    path = Path(args.path) if args.path else None
    workspace = (check_workspace(locate_workspace(None).workspace) if path is None
                 else Path("."))
    result = trust_command(path, workspace, os.environ, revoke_it=args.revoke)
    return render.trusted(result)
