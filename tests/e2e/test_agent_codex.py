"""`sandbox agent codex`: real Codex CLI, its loop outside the workspace, our MCP tools its only
tools. The model is the scripted Responses-API stand-in behind the real gateway (in-process,
virtual key of the session); the agent itself runs sandboxed over an empty scratch directory.

The script makes it write a file and run a command through our tools, then call its built-ins
(`exec_command`, `shell`, `apply_patch`: each must be refused by Codex and create nothing on
the host) and the MCP resource readers we allow (they reach our server only). The workspace
stays untouched until the session is approved."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from sandbox.audit import AuditEvent, AuditLog
from sandbox.mcp._agent import EXTRA_ALLOWED, OUR_PREFIX, AgentKind
from tests.conftest import Cli, give
from tests.e2e.test_agent_mcp import _gateway, check_session
from tests.e2e.test_agents_gateway import codex_binary
from tests.support.gateway import UPSTREAM_KEY
from tests.support.llm_standin import LlmStandIn, Text, ToolUse, Turn

MODEL = "gpt-test"  # routed to the stand-in by the test gateway's config
BUILTINS = ("exec_command", "shell", "apply_patch")


def _script(pwned: Path) -> list[Turn]:
    patch = f"*** Begin Patch\n*** Add File: {pwned}\n+pwned\n*** End Patch\n"
    return [
        Turn(Text("Writing the note."), ToolUse("mcp__sandbox__write_file", {
            "path": "notes/agent.txt", "content": "written-by-codex\n"})),
        Turn(ToolUse("mcp__sandbox__bash", {
            "command": "cat notes/agent.txt README.md && echo more >> notes/agent.txt"})),
        Turn(ToolUse("exec_command", {"cmd": f"touch {pwned}"})),
        Turn(ToolUse("shell", {"command": ["touch", str(pwned)]})),
        Turn(ToolUse("apply_patch", {"input": patch})),
        Turn(ToolUse("list_mcp_resources", {})),
        Turn(ToolUse("read_mcp_resource", {"server": "sandbox", "uri": "file:///etc/passwd"})),
        Turn(ToolUse("read_mcp_resource", {"server": "host", "uri": "file:///etc/passwd"})),
        Turn(Text("Done.")),
    ]


def _agent(cli: Cli, ws: Path, session: str, *extra: str, env: dict[str, str],
           flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    """`sandbox agent codex [flags] -- exec ... [extra] PROMPT`"""
    return cli("agent", "codex", "-C", str(ws), "--session", session, "--bin",
               str(codex_binary()), *flags, "--", "exec", "-m", MODEL,
               *extra, "Add a note", env=env, timeout=240)


def test_codex_changes_files_only_through_our_tools(sbx: tuple[Cli, Path],
                                                    base_dir: Path) -> None:
    cli, ws = sbx  # as root and as an unprivileged user
    give(cli, ws)
    pwned = base_dir / "PWNED"
    # The person's own Codex config (its instructions would reach the model, its server would
    # be one more): the agent, in a sandbox of its own with a fresh home, must not read it.
    mine = cli.home.parent / ".codex"
    mine.mkdir()
    (mine / "config.toml").write_text('developer_instructions = "MARKER-OF-HOST-CONFIG"\n'
                                      '[mcp_servers.mine]\ncommand = "/bin/sh"\n')
    give(cli, mine)
    with LlmStandIn(_script(pwned), api_key=UPSTREAM_KEY) as llm:
        r = _agent(cli, ws, "cx", env=_gateway(cli, llm.url) | {"CODEX_HOME": str(mine)})
        out = (r.stdout + r.stderr).decode(errors="replace")
        assert r.returncode == 0, out[-3000:]
        main = llm.main_loop()
    assert len(main) == 9, out[-2000:]
    # the model was offered our tools and the allowlisted resource readers, on every turn
    allowed = EXTRA_ALLOWED[AgentKind.CODEX]
    for req in main:
        tools = req.offered_tools()
        assert "mcp__sandbox__bash" in tools and "mcp__sandbox__write_file" in tools
        assert all(t.startswith(OUR_PREFIX) or t in allowed for t in tools), tools
    assert not any("MARKER-OF-HOST-CONFIG" in json.dumps(req.body) for req in llm.received)
    # the gateway, not the agent, held the real key
    assert {req.headers.get("authorization") for req in llm.received} == {
        f"Bearer {UPSTREAM_KEY}"}
    wrote, ran, exec_cmd, shell, patch, listed, ours, other = main[-1].tool_results()
    assert "pending" in wrote
    assert "written-by-codex" in ran and "hello" in ran and "exit status: 0" in ran
    for name, result in zip(BUILTINS, (exec_cmd, shell, patch), strict=True):
        assert f"unsupported call: {name}" in result, result  # Codex refused its own built-in
    # The resource readers reach our server only, which has no resources: nothing is listed,
    # our server refuses the read, and there is no other server to ask.
    assert json.loads(listed) == {"resources": []}, listed
    assert "resources/read failed for `sandbox`" in ours and "root:" not in ours, ours
    assert "unknown MCP server 'host'" in other, other
    # nothing on the host, nothing in the workspace until approval
    assert not pwned.exists() and not (ws / "notes").exists()
    assert "2 tool call(s)" in out and "9 LLM call(s)" in out and "sandbox approve cx" in out
    check_session(cli, ws, "cx", llm_calls=9, note="written-by-codex\nmore\n")


def _wrapped_codex(base: Path, *added: str) -> Path:
    """A `--bin` that runs the real Codex with arguments of its own just before the prompt (the
    last argument), after ours: AGENT ARGS that override ours are refused up front (exit 2), but
    the argument check cannot see what the agent binary does, so the gateway's tool gate must
    still stop the offer."""
    real = codex_binary()
    bin_dir = base / "wrapped-codex"
    bin_dir.mkdir()
    for name in ("codex", "codex-code-mode-host"):  # its directory is the agent's /run/agent
        target = bin_dir / (name + "-real" if name == "codex" else name)
        try:
            os.link(real.parent / name, target)  # ~300 MB: not copied when possible
        except OSError:
            shutil.copy2(real.parent / name, target)
    wrapper = bin_dir / "codex"
    wrapper.write_text(
        "#!/bin/sh\n"
        "n=$#; i=0\n"
        'for a in "$@"; do i=$((i + 1))\n'
        f'  if [ "$i" -eq "$n" ]; then set -- "$@" {shlex.join(added)} "$a"; '
        'else set -- "$@" "$a"; fi\n'
        "done\n"
        'shift "$n"\n'
        'exec /run/agent/codex-real "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_agent_args_switching_a_builtin_back_on_end_with_125(cli: Cli, workspace: Path,
                                                             base_dir: Path) -> None:
    """`-c features.shell_tool=true` after ours would turn Codex's shell back on. As AGENT ARGS
    it is refused before anything starts (exit 2); given by the agent binary itself (a wrapper
    the argument check cannot see), the gateway refuses the first request offering the shell,
    so the model never answers, the agent is stopped, 125, and nothing is done (the script's
    shell call and write never happen)."""
    r = _agent(cli, workspace, "bad", "-c", "features.shell_tool=true", env={})
    assert r.returncode == 2 and b"turns a built-in tool back on" in r.stderr, r.stderr
    pwned = base_dir / "PWNED"
    script = [Turn(ToolUse("exec_command", {"cmd": f"touch {pwned}"})),
              Turn(ToolUse("mcp__sandbox__write_file", {"path": "x.txt", "content": "x\n"})),
              Turn(Text("Done."))]
    wrapped = _wrapped_codex(base_dir, "-c", "features.shell_tool=true")
    with LlmStandIn(script, api_key=UPSTREAM_KEY) as llm:
        r = cli("agent", "codex", "-C", str(workspace), "--session", "bad", "--bin",
                str(wrapped), "--", "exec", "-m", MODEL, "Add a note",
                env=_gateway(cli, llm.url), timeout=240)
        assert llm.received == []  # nothing reached the model
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 125, err[-2000:]
    # the agent did run and offer it (only Codex names its shell so), and was refused
    assert "tools that are not ours: exec_command" in err, err[-2000:]
    blocked = [rec.data for rec in AuditLog(cli.home / "audit.log").records(session="bad-agent")
               if rec.event is AuditEvent.LLM_BLOCKED]
    assert blocked and "exec_command" in blocked[0]["tools"], blocked  # type: ignore[operator]
    assert not pwned.exists()
    assert sorted(p.name for p in workspace.iterdir()) == ["README.md", "old.txt", "src"]
    shown = json.loads(cli("show", "bad", "--json", check=True).stdout)
    assert not [s for s in shown["timeline"] if s["event"] == "tool.call"], shown["timeline"]
    assert not json.loads(cli("diff", "bad", "--json").stdout or b"{}").get("changes")


def test_agent_args_may_not_configure_mcp_servers(cli: Cli, workspace: Path) -> None:
    """Another MCP server (or one replacing ours under its name) would bring tools that are
    not ours: refused before anything starts."""
    for arg in ('mcp_servers.evil.command="sh"', '"mcp_servers".sandbox.command="sh"'):
        r = cli("agent", "codex", "-C", str(workspace), "--bin", str(codex_binary()), "--",
                "exec", "-c", arg, "hi")
        assert r.returncode == 2 and b"configures an MCP server" in r.stderr, r.stderr
    sessions = cli.home / "sessions"
    assert not sessions.exists() or not any(sessions.iterdir())  # nothing started


def test_codex_on_the_docker_backend(cli: Cli, workspace: Path, base_dir: Path) -> None:
    """`--backend docker`: the agent's own sandbox and every `bash` call are containers."""
    from tests.integration.test_docker_backend import require_docker

    require_docker()
    pwned = base_dir / "PWNED"
    script = [Turn(ToolUse("mcp__sandbox__write_file", {"path": "n.txt", "content": "n\n"})),
              Turn(ToolUse("mcp__sandbox__bash", {"command": "cat n.txt README.md"})),
              Turn(ToolUse("exec_command", {"cmd": f"touch {pwned}"})),
              Turn(Text("Done."))]
    with LlmStandIn(script, api_key=UPSTREAM_KEY) as llm:
        r = _agent(cli, workspace, "dk", env=_gateway(cli, llm.url), flags=("--backend", "docker"))
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[-3000:]
        wrote, ran, refused = llm.main_loop()[-1].tool_results()
    assert "pending" in wrote and "hello" in ran and "unsupported call: exec_command" in refused
    assert not pwned.exists() and not (workspace / "n.txt").exists()
    for session in ("dk", "dk-agent"):
        runs = json.loads(cli("show", session, "--json", check=True).stdout)["runs"]
        assert runs and {run["backend"] for run in runs} == {"docker"}, runs
