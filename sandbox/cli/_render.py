"""Text and JSON rendering. Everything from a run (names, contents, reasons) is escaped before
it reaches a terminal: control characters, escape sequences and bidi controls never act."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sandbox.audit import AuditEvent
from sandbox.fs import ChangeKind, ChangeSet
from sandbox.policy import EffectivePolicy
from sandbox.review import esc as _review_esc


def esc(text: str) -> str:
    """Make untrusted text inert on a terminal (lossless for printable text): control
    characters, escape sequences, bidi and zero-width controls, undecodable bytes are shown
    as escapes. One implementation for every command: `sandbox.review.esc`."""
    return _review_esc(text)


_KIND = {ChangeKind.ADDED: "A", ChangeKind.MODIFIED: "M", ChangeKind.DELETED: "D",
         ChangeKind.MODE_CHANGED: "m", ChangeKind.TYPE_CHANGED: "T"}


def change_table(cs: ChangeSet, limit: int = 200, policy: Any = None) -> str:
    """The changes, risky first (see `governance.by_risk`); past `limit`, counts per kind."""
    from sandbox.governance import Concern, kind_counts, with_concerns

    ordered = with_concerns(cs, policy)
    lines = []
    for c, worry in ordered[:limit]:
        marks = []
        match worry:
            case Concern.FORBIDDEN:
                marks.append("FORBIDDEN")
            case Concern.PROTECTED:
                marks.append("protected")
            case Concern.CONFLICT:
                marks.append(f"CONFLICT: {c.conflict}")
            case Concern.DELETION | Concern.MODE | Concern.BINARY | Concern.EDIT:
                pass
        if c.kind is ChangeKind.MODE_CHANGED and c.old_mode is not None and c.new_mode:
            marks.append(f"mode {c.old_mode & 0o7777:o} -> {c.new_mode & 0o7777:o}")
        if c.binary:
            marks.append("binary")
        if c.executable_added:
            marks.append("new-exec")
        counts = "" if c.added_lines is None else f" +{c.added_lines} -{c.removed_lines or 0}"
        kind = (c.new_type or c.old_type)
        t = f" [{kind.value}]" if kind is not None and kind.value != "file" else ""
        mark = f"  ({', '.join(marks)})" if marks else ""
        lines.append(f"  {_KIND[c.kind]} {esc(c.path)}{t}{counts}{esc(mark)}\n")
    rest = [c for c, _ in ordered[limit:]]
    if rest:
        lines.append(f"  ... and {len(rest):,} more: {kind_counts(rest)}\n")
    return "".join(lines)


def changes_json(cs: ChangeSet, policy: Any = None) -> dict[str, Any]:
    """`ChangeSet.to_json`, the risky first (as every listing), each with its concern."""
    from sandbox.governance import with_concerns

    return cs.to_json() | {"changes": [c.to_json() | {"concern": worry.value}
                                       for c, worry in with_concerns(cs, policy)]}


def run_summary(outcome: Any, policy: Any = None) -> None:
    """The closing summary of `sandbox run`, on stderr (stdout belongs to the command)."""
    from sandbox.governance import AskPerson, AutoCommit, Hold, NothingToDo

    out = sys.stderr
    cs: ChangeSet = outcome.changeset
    launch = outcome.launch
    usage = ""
    if launch is not None:
        usage = (f" in {launch.duration_ms} ms, cpu {launch.cpu_ms} ms, "
                 f"peak {launch.peak_memory_kb // 1024} MiB")
    out.write(f"\nsandbox: run {outcome.run_id} (session {outcome.session_id}) exited "
              f"{outcome.exit_code}{usage}\n")
    for note in outcome.notes:
        out.write(f"sandbox: {esc(note)}\n")
    ignored = getattr(outcome, "ignored", None)
    if ignored is not None and ignored.changes:
        out.write(f"sandbox: {ignored.describe()}\n")
    if not cs:
        out.write("sandbox: no changes\n")
        return
    from sandbox.fs import is_git_internal

    internal = [c for c in cs.changes if is_git_internal(c.path)]
    listed = ChangeSet(tuple(c for c in cs.changes if not is_git_internal(c.path))) \
        if internal and len(internal) < len(cs.changes) else cs
    out.write(f"sandbox: {len(cs.changes)} change(s):\n{change_table(listed, 30, policy)}")
    if listed is not cs:  # object files and logs: `show` presents them as commits
        out.write(f"  ... and {len(internal)} git-internal file(s) (objects, logs, index): "
                  f"`sandbox show {outcome.session_id}` shows the commits\n")
    decision = outcome.decision
    refused: Sequence[Any] = ()
    match decision:
        case AutoCommit(refused=refused, held=held):
            out.write(f"sandbox: committed {len(outcome.committed)} change(s) "
                      "automatically\n")
            for v in held:
                out.write(f"sandbox: {esc(v.reason)}\n")
        case Hold(reasons=reasons, refused=refused):
            for r in reasons:
                out.write(f"sandbox: {esc(r)}\n")
        case AskPerson(refused=refused):
            word = "committed" if outcome.committed else "kept pending"
            out.write(f"sandbox: {word}\n")
        case NothingToDo():
            pass
    for v in refused:
        out.write(f"sandbox: refused {esc(v.path)}: {esc(v.reason)}\n")
    if outcome.state.value == "pending":
        ref = outcome.session_id
        out.write(f"sandbox: pending. Review: sandbox diff {ref} | approve: sandbox approve "
                  f"{ref} | discard: sandbox reject {ref}\n")


def ls(waiting: Sequence[Any], recent: Sequence[Any], *, json_out: bool) -> int:
    """`waiting`: the latest run of each pending session (listed first, whatever its age);
    then the `recent` runs not listed already."""
    shown = {r.id for r in waiting}
    rest = [r for r in recent if r.id not in shown]
    if json_out:
        print(json.dumps([_run_json(r) | {"pending": True} for r in waiting]
                         + [_run_json(r) | {"pending": False} for r in rest], indent=2))
        return 0
    if not waiting and not rest:
        print("no runs yet: try `sandbox run -- echo hello`")
        return 0
    print(f"{'RUN':<14} {'SESSION':<20} {'STATUS':<9} {'EXIT':>4} {'DECISION':<10} "
          f"{'STARTED':<20} COMMAND")
    if waiting:
        print(f"-- pending sessions ({len(waiting)}), waiting for a person:")
    for r in waiting:
        _ls_row(r)
    if waiting and rest:
        print("-- recent runs:")
    for r in rest:
        _ls_row(r)
    return 0


def _ls_row(r: Any) -> None:
    cmd = esc(" ".join(r.command))
    if len(cmd) > 40:
        cmd = cmd[:37] + "..."
    print(f"{r.id:<14} {esc(r.session_id):<20} {r.status.value:<9} "
          f"{'' if r.exit_code is None else r.exit_code:>4} {r.decision.value:<10} "
          f"{r.started.strftime('%Y-%m-%d %H:%M:%S'):<20} {cmd}")


def _run_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "session": r.session_id, "seq": r.seq, "command": list(r.command),
            "workspace": str(r.workspace), "level": r.level, "backend": r.backend,
            "profile": r.profile, "status": r.status.value, "exit_code": r.exit_code,
            "started": r.started.isoformat(), "duration_ms": r.duration_ms,
            "peak_mem_kb": r.peak_mem_kb, "cpu_ms": r.cpu_ms, "decision": r.decision.value,
            "summary": dict(r.summary)}


def _llm_usage(events: Sequence[Any]) -> dict[str, Any]:
    """The session's LLM calls through the gateway, summed (one implementation: gateway usage)."""
    from dataclasses import asdict

    from sandbox.gateway._report import total

    usage = asdict(total(events))
    del usage["group"]
    return usage


def show(resolved: Any, runs: Sequence[Any], cs: ChangeSet, events: Sequence[Any], *,
         json_out: bool, policy: Any = None, git: Any = None, ignored: Any = None) -> int:
    session = resolved.session
    holds = [e for e in events if e.event == "decision"]
    egress = [e for e in events if e.event == "egress"]
    llm = _llm_usage(events)
    steps = [e for e in events if e.event in (AuditEvent.TOOL_CALL, AuditEvent.LLM_CALL,
                                              AuditEvent.LLM_BLOCKED)]
    if json_out:
        print(json.dumps({"session": session.id, "workspace": str(session.workspace),
                          "state": session.state.value, "level": session.level,
                          "runs": [_run_json(r) for r in runs],
                          "pending": changes_json(cs, policy),
                          "git": git.to_json() if git else None,
                          "ignored": ignored.to_json() if ignored is not None else None,
                          "decisions": [dict(e.data) for e in holds],
                          "egress": [dict(e.data) | {"run": e.run} for e in egress],
                          "llm": llm,
                          "timeline": [{"seq": e.seq, "ts": e.ts, "event": str(e.event),
                                        "run": e.run, "session": e.session,
                                        "data": dict(e.data)} for e in steps]}, indent=2))
        return 0
    print(f"session {session.id}  state {session.state.value}  level {session.level}")
    print(f"workspace {esc(str(session.workspace))}")
    for r in sorted(runs, key=lambda r: r.seq):
        print(f"  run {r.id} #{r.seq}: {esc(' '.join(r.command))}")
        print(f"    {r.status.value}, exit {r.exit_code}, {r.duration_ms} ms, cpu {r.cpu_ms} ms,"
              f" peak {(r.peak_mem_kb or 0) // 1024} MiB, backend {r.backend}, "
              f"profile {r.profile}")
        summary = r.summary if isinstance(r.summary, Mapping) else {}
        for note in summary.get("notes", []):
            print(f"    {esc(str(note))}")
        if summary.get("backend_log"):
            print("    sandbox log:")
            for line in summary["backend_log"]:
                print(f"      {esc(str(line))}")
    if egress:
        from sandbox.egress import EgressEvent

        print(f"egress ({len(egress)} request(s)):")
        for e in egress:
            print(f"  {e.run}: {esc(EgressEvent.from_audit(e.data).describe())}")
    if llm["calls"]:
        print(f"llm: {llm['calls']} call(s), {llm['input_tokens']} in / {llm['output_tokens']} out "
              f"tokens (cache {llm['cache_read_tokens']} read, {llm['cache_write_tokens']} write), "
              f"${llm['cost_usd']:.4f}")
    if steps:  # an agent's session: which prompt produced which change, in order
        from sandbox.review import timeline

        print(f"timeline ({len(steps)} step(s)):")
        for line in timeline(steps).splitlines():
            print(f"  {line}")
    for e in holds:
        data = e.data
        for reason in data.get("reasons", []):
            print(f"  {esc(str(reason))}")
        for held in data.get("held", []):  # level 3: protected changes wait for a person
            print(f"  {esc(str(held.get('reason', held.get('path'))))}")
        for ref in data.get("refused", []):
            print(f"  refused {esc(str(ref['path']))}: {esc(str(ref['reason']))}")
    if git:  # commits, not object files: what the run did to the repository
        from sandbox.fs import is_git_internal

        print("git work inside (approving it needs --include-protected):")
        for line in git.lines():
            print(f"  {esc(line)}")
        cs_shown = ChangeSet(tuple(c for c in cs.changes if not is_git_internal(c.path)))
    else:
        cs_shown = cs
    if cs:
        print(f"pending changes ({len(cs.changes)}):")
        print(change_table(cs_shown, policy=policy), end="")
    else:
        print("nothing pending")
    if ignored is not None and ignored.changes:
        print(ignored.describe())
    return 0


def write_patch(patch: bytes | Iterable[bytes]) -> None:
    """Byte-exact to a file or pipe (for `git apply`); escaped on a terminal, binary content
    summarised, and paged when longer than the screen. Pieces are written as they come, so a
    huge patch starts showing at once."""
    chunks = [patch] if isinstance(patch, bytes) else patch
    if not sys.stdout.isatty():
        sys.stdout.flush()
        for chunk in chunks:
            _write_all(sys.stdout.fileno(), chunk)
        return
    import shutil

    from sandbox.review import patch_lines, terminal_lines

    lines = terminal_lines(patch_lines(chunks), color=os.environ.get("NO_COLOR") is None)
    rows = shutil.get_terminal_size().lines
    head: list[str] = []
    for line in lines:  # a screenful first: if that is all there is, no pager
        head.append(line)
        if len(head) >= rows - 1:
            break
    else:
        sys.stdout.write("".join(f"{ln}\n" for ln in head))
        sys.stdout.flush()
        return
    if not _page(itertools.chain(head, lines)):
        sys.stdout.write("".join(f"{ln}\n" for ln in head))
        for line in lines:
            sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _page(lines: Iterable[str]) -> bool:
    """Stream escaped lines through $PAGER (or `less -FRX`); False if there is no pager. The
    text is already escaped: the pager only passes our own colours."""
    import shlex
    import shutil
    import subprocess

    pager = os.environ.get("PAGER")
    argv = shlex.split(pager) if pager else ["less", "-FRX"]
    if not argv or shutil.which(argv[0]) is None:
        return False
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
    except OSError:
        return False
    assert proc.stdin is not None
    try:
        for line in lines:
            proc.stdin.write(f"{line}\n".encode("utf-8", "surrogateescape"))
        proc.stdin.close()
    except BrokenPipeError:  # the person quit the pager before the end: fine
        pass
    proc.wait()
    return True


def safe_patch_for_terminal(patch: bytes) -> str:
    from sandbox.review import terminal_patch

    return terminal_patch(patch, color=os.environ.get("NO_COLOR") is None).removesuffix("\n")


def committed(paths: Sequence[str], refused: Sequence[Any]) -> None:
    print(f"committed {len(paths)} change(s)")
    for p in paths:
        print(f"  {esc(p)}")
    for v in refused:
        print(f"refused {esc(v.path)}: {esc(v.reason)}")


def conflicted(found: Sequence[Any]) -> None:
    """Beside a patch (stderr: stdout stays what `git apply` takes): each path where the
    workspace moved since the session saw it, and that move, so neither side hides the other."""
    if not found:
        return
    sys.stdout.flush()
    err = sys.stderr
    err.write(f"sandbox: {len(found)} conflicting change(s): the patch shows what the session "
              "changed; the workspace moved since it saw these:\n")
    for c in found:
        err.write(f"sandbox: conflict {esc(c.path)}: {esc(c.reason)}\n")
        if not c.base_kept:
            err.write("  (what the session saw is not kept, the patch is against the "
                      "workspace as it is now)\n")
        elif c.theirs:
            err.write("  the workspace's change since the session saw it:\n")
            from sandbox.review import terminal_patch

            color = err.isatty() and os.environ.get("NO_COLOR") is None
            err.write(terminal_patch(c.theirs, color=color).removesuffix("\n") + "\n")
    err.flush()


def conflicts(kept: Sequence[tuple[str, str]]) -> None:
    if not kept:
        return
    print(f"kept pending {len(kept)} change(s): the workspace changed since the session saw "
          "them", file=sys.stderr)
    for path, why in kept:
        print(f"  conflict {esc(path)}: {esc(why)}", file=sys.stderr)
    print("  hint: look at the workspace, then `sandbox approve RUN PATH --force` (the "
          "session's version wins) or `sandbox reject RUN PATH`", file=sys.stderr)


def audit(records: Iterable[Any], *, json_out: bool) -> int:
    from sandbox.audit import render_text

    recs = list(records)
    if json_out:
        print(json.dumps([r.to_json() if hasattr(r, "to_json") else asdict(r) for r in recs],
                         indent=2, default=str))
    else:
        sessions = {r.session for r in recs}
        if recs and len(sessions) == 1 and None not in sessions:
            # One session (`sandbox audit RUN`): a timeline in words, start to commit.
            from sandbox.review import timeline

            print(f"session {esc(str(recs[0].session))}")
            text = timeline(recs)
        else:
            text = render_text(recs)
        print(text if text else "the audit log is empty")
    return 0


def audit_verify(report: Any, *, json_out: bool) -> int:
    ok = bool(report.ok)
    if json_out:
        print(json.dumps({"ok": ok, "records": report.records,
                          "problems": [str(p) for p in report.problems],
                          "signed_seq": report.signed_seq, "key": report.key,
                          "notes": list(report.notes)}, indent=2))
        return 0 if ok else 1
    if ok:
        signed = (f", signed up to seq {report.signed_seq} (key {report.key})"
                  if report.signed_seq is not None else "")
        print(f"audit log OK: {report.records} records, chain intact{signed}")
    else:
        print("audit log BROKEN:")
        for p in report.problems:
            print(f"  {esc(str(p))}")
    for note in report.notes:
        print(f"  note: {esc(note)}")
    return 0 if ok else 1


# What the level-1 confirmation shows (the rest is in `sandbox policy show`).
_SHORT = ("level", "run.", "limits.", "egress.allow", "llm.enabled")


def policy_lines(eff: EffectivePolicy, *, short: bool = False) -> list[str]:
    from sandbox.policy import field_rows

    rows = [r for r in field_rows(eff.policy)
            if not short or (r[0].startswith(_SHORT) and r[0] != "egress.ceiling")]
    return [f"{name} = {json.dumps(value)}    # {eff.source_of(attr)}{_trust_tag(eff, attr)}"
            for name, value, attr in rows]


def _trust_tag(eff: EffectivePolicy, attr: str) -> str:
    match eff.trust_of(attr):
        case "trusted":
            return " (repository file, trusted)"
        case "untrusted":
            return " (repository file, untrusted: tightens only)"
        case _:
            return ""


def forbidden_left_out(changes: Sequence[Any], *, included: bool) -> None:
    for c in changes:
        what = "included, marked # FORBIDDEN" if included else "left out of the patch"
        print(esc(f"sandbox: diff: {c.path}: forbidden, {what} ({'; '.join(c.forbidden)})"),
              file=sys.stderr)
    if changes and not included:
        print("sandbox: diff: --include-forbidden shows them (never apply them)", file=sys.stderr)


def repository_policy_note(eff: EffectivePolicy) -> None:
    """A run's first line says when its level or egress came from the repository's policy."""
    fields = {"level": "level", "egress_allow": "egress.allow",
              "egress_allow_addresses": "egress.allow_addresses"}
    got = eff.from_repository(*fields)
    if not got:
        return
    parts = [f"{fields[a]} from {eff.source_of(a)} ({eff.trust_of(a)})" for a in got]
    print(esc(f"sandbox: policy from the repository: {'; '.join(parts)}"), file=sys.stderr)


def trusted(result: Any) -> int:
    if result.digest is None:
        print(esc(f"{'revoked trust in' if result.was_trusted else 'was not trusted:'} "
                  f"{result.path}"))
        return 0
    print(esc(f"trusted {result.path} ({result.digest[:19]}...); if it changes, "
              "it needs `sandbox trust` again"))
    for lo in result.loosens:
        print(esc(f"  it loosens: {lo.where}: {lo.field} {lo.change}"))
    return 0


def policy(eff: EffectivePolicy, *, json_out: bool) -> int:
    not_applied = [asdict(lo) for lo in eff.not_applied]
    if json_out:
        print(json.dumps({"policy": eff.policy.to_json(), "sources": dict(eff.sources),
                          "trust": dict(eff.trust), "not_applied": not_applied,
                          "layers": list(eff.layers), "digest": eff.policy.digest()},
                         indent=2))
        return 0
    print("# effective policy; each field with the layer that set it")
    print(f"# layers: built-in{''.join(' > ' + esc(x) for x in eff.layers)}")
    for line in policy_lines(eff):
        print(esc(line))
    if eff.not_applied:
        files = sorted({lo.where.rsplit(":", 1)[0] for lo in eff.not_applied})
        print(esc(f"# NOT APPLIED: an untrusted repository file would loosen these; "
                  f"`sandbox run` stops until you `sandbox trust {' '.join(files)}`"))
        for lo in eff.not_applied:
            print(esc(f"#   {lo.field} {lo.change}    # {lo.where} (untrusted)"))
    return 0
