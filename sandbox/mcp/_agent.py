"""`sandbox agent claude|codex`: the agent's loop outside the workspace, its tools ours.

The agent process runs sandboxed like any run, but over an empty scratch directory (no
workspace is mounted), with its built-in shell and file tools switched off and this session's
MCP server as its only tools (reached through a relay on a bind-mounted unix socket, see
`_socket.py`). Its only network is the LLM gateway, with a virtual key of the session
(`[llm]`, the gateway's run attachment). Every tool call is a run or a file operation of the
session, audited; when the agent exits, the level decides, as after `sandbox run`.

Fail closed: if the agent has not connected to the MCP server within CONNECT_TIMEOUT_S of its
start, it is stopped and the run ends with 125. Its virtual key may offer the model only our
tools (and the agent's few explicit extras): the gateway refuses any request offering another
before the model sees it, and tells us at once, so the agent is stopped and the run ends with
125 naming the tools.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from sandbox.backends import BindMount
from sandbox.errors import EXIT_SANDBOX_FAILED, SandboxError, UsageError
from sandbox.gateway._attach import INSIDE_PORT as LLM_PORT
from sandbox.gateway._tools import Why
from sandbox.mcp import _socket
from sandbox.mcp._session import Confirm, Finished, McpConfig, McpSession

if TYPE_CHECKING:
    from sandbox._runner import RunOutcome
    from sandbox.gateway._tools import ToolRestriction, ToolsRefused
    from sandbox.mcp._server import Worker
    from sandbox.policy import EffectivePolicy

CONNECT_TIMEOUT_S = 60.0
OUR_PREFIX = "mcp__sandbox__"  # how both agents name the tools of our server "sandbox"
INSIDE_AGENT_DIR = "/run/agent"
_PYTHON = "/usr/bin/python3"  # the relay runs on the system python of the host view
# Claude Code: no update checks or telemetry (they would be refused and only add noise).
_CLAUDE_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "ENABLE_TOOL_SEARCH": "false",  # else a DeferredToolPlaceholder tool is offered too
}


class AgentKind(StrEnum):
    CLAUDE = "claude"
    CODEX = "codex"


# Tools an agent offers its model besides ours that have no switch and were judged harmless,
# each with its reason. Codex 0.171 offers its MCP resource readers whenever any MCP server is
# configured (codex-rs: registered on `mcp_tools.is_some()`, no feature or config key): they
# reach configured MCP servers only, and ours is the only one (its CODEX_HOME is the sandbox's
# fresh /root, the sandbox's /etc holds no /etc/codex (ETC_ENTRIES) and its cwd is empty, so no
# user, system or project config is read; AGENT ARGS may not configure MCP servers: see
# check_agent_args); our server offers no resources. Everything else of Codex's is switched off.
# The gateway lets exactly these (and our own) through on the agent's key.
EXTRA_ALLOWED: dict[AgentKind, frozenset[str]] = {
    AgentKind.CLAUDE: frozenset(),
    AgentKind.CODEX: frozenset({"list_mcp_resources", "list_mcp_resource_templates",
                                "read_mcp_resource"}),
}
# Codex: a model catalog whose only model has no apply_patch, shell or search tool. A model
# it does not name gets Codex's fallback metadata, which offers none of them either; without
# it a known slug (gpt-5.5) brings apply_patch back, which no feature switches off.
CODEX_CATALOG_NAME = "codex-models.json"
CODEX_CATALOG: dict[str, Any] = {"models": [{
    "slug": "sandbox-mcp-only", "display_name": "sandbox (MCP tools only)",
    "base_instructions": "You are a coding agent. Your only tools are those of the MCP "
                         "server `sandbox`; use them to read, change and run things.",
    "supported_reasoning_levels": [], "shell_type": "disabled", "apply_patch_tool_type": None,
    "supports_search_tool": False, "experimental_supported_tools": [], "visibility": "hide",
    "supported_in_api": True, "priority": 0, "support_verbosity": False,
    "truncation_policy": {"mode": "tokens", "limit": 10000}}]}


def allowed_tools(kind: AgentKind) -> ToolRestriction:
    """Our server's tools by their exact names (not a prefix: an MCP server named `sandbox__x`
    would pass one), plus the agent's explicit extras."""
    from sandbox.gateway._tools import ToolRestriction
    from sandbox.mcp._server import TOOL_NAMES

    return ToolRestriction(frozenset(OUR_PREFIX + n for n in TOOL_NAMES) | EXTRA_ALLOWED[kind])


def _foreign_message(tools: Sequence[str], why: Why = Why.FOREIGN) -> str:
    match why:
        case Why.FOREIGN:
            what = "tools that are not ours"
        case Why.BEFORE_SERVER:
            what = ("tools before it connected to the sandbox MCP server, so they cannot be ours "
                    "(another server under our name?)")
        case _:
            assert_never(why)
    return (f"the agent offered its model {what}: {', '.join(tools[:10])}; the gateway refused "
            "the request before the model saw it, and the agent was stopped")


class AgentNotFound(UsageError):
    exit_code = 127


@dataclass(frozen=True)
class AgentRequest:
    kind: AgentKind
    binary: Path | None  # --bin; None: found on PATH
    args: tuple[str, ...]  # after `--`
    mcp: McpConfig


@dataclass(frozen=True)
class AgentOutcome:
    exit_code: int
    agent_run: RunOutcome | None
    finished: Finished
    tool_calls: int
    failure: str | None  # why it failed closed (exit 125)
    llm: dict[str, Any]  # calls, tokens, cost of the session's LLM traffic


def find_binary(kind: AgentKind, explicit: Path | None) -> Path:
    if explicit is not None:
        path = explicit
    else:
        found = shutil.which(kind.value)
        if found is None:
            raise AgentNotFound(f"{kind.value} is not on PATH",
                                hint="install it, or give its path with --bin")
        path = Path(found)
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise AgentNotFound(f"agent binary {path} does not exist") from exc
    if not real.is_file() or not os.access(real, os.X_OK):
        raise AgentNotFound(f"agent binary {real} is not an executable file")
    return real


def check_binary_dir(binary: Path, workspace: Path, state: Path) -> None:
    """The binary's directory is bind-mounted into the agent's sandbox (INSIDE_AGENT_DIR), so
    it must hold nothing the agent may not see: not the workspace (no hide mask applies there:
    .env and keys would be readable), not the sandbox's state (gateway keys, pending changes),
    not the person's home (~/.ssh, provider keys). Exit 2 naming it, before anything starts."""
    where = binary.parent
    home = Path(os.path.expanduser("~")).resolve()
    # (what, its path, whether a directory inside it is refused too): inside the home is
    # where installers put agents (~/.local/share/claude); the home itself or above is not.
    for what, other, inside in (("the workspace", workspace.resolve(), True),
                                ("the sandbox's state directory", state.resolve(), True),
                                ("your home directory", home, False)):
        if where == other or where in other.parents or (inside and other in where.parents):
            raise UsageError(
                f"agent binary {binary}: its directory {where} is mounted into the agent's "
                f"sandbox and would show it {what} ({other})",
                hint="install the agent (or a wrapper) in a directory of its own, e.g. "
                     "/usr/local/bin or an npm prefix, and pass it with --bin")


def agent_argv(kind: AgentKind, binary: Path, config_inside: str,
               args: Sequence[str]) -> tuple[str, ...]:
    """The agent's command line: built-in tools off, our MCP server its only tools."""
    exe = f"{INSIDE_AGENT_DIR}/{binary.name}"
    match kind:
        case AgentKind.CLAUDE:
            # --tools "" is an allowlist of built-ins naming none (a denylist goes stale as
            # versions add tools); --strict-mcp-config ignores any other MCP configuration.
            return (exe, "--mcp-config", config_inside, "--strict-mcp-config", "--tools", "",
                    "--allowedTools", "mcp__sandbox", *args)
        case AgentKind.CODEX:
            server = "mcp_servers.sandbox"
            # The gateway (`[llm]` puts it on the sandbox's loopback) as the model provider.
            provider = ('model_providers.sandbox-gateway={name="sandbox gateway",'
                        f'base_url="http://127.0.0.1:{LLM_PORT}/openai/v1",'
                        'env_key="OPENAI_API_KEY",wire_api="responses"}')
            # Each built-in by its switch in 0.171 (`codex features list`); apply_patch comes
            # from the model catalog (CODEX_CATALOG); the MCP resource readers have none
            # (EXTRA_ALLOWED). The gateway refuses a request offering anything else.
            off = ("shell_tool", "unified_exec", "shell_snapshot", "goals", "multi_agent",
                   "image_generation", "sleep_tool", "apps", "plugins", "view_image")
            return (exe, *[a for f in off for a in ("-c", f"features.{f}=false")],
                    "-c", 'web_search="disabled"',
                    "-c", "tools.experimental_request_user_input={enabled=false}",
                    "-c", f'model_catalog_json="{_socket.INSIDE_DIR}/{CODEX_CATALOG_NAME}"',
                    "-c", f'{server}.command="{_PYTHON}"',
                    "-c", f'{server}.args=["-I", "{_socket.INSIDE_DIR}/{_socket.RELAY_NAME}"]',
                    "-c", f"{server}.required=true",
                    # exec mode cannot ask a person: our tools are governed by the level
                    "-c", f'{server}.default_tools_approval_mode="approve"',
                    "-c", provider, "-c", 'model_provider="sandbox-gateway"',
                    *_codex_exec_args(args))


def _codex_exec_args(args: Sequence[str]) -> tuple[str, ...]:
    """`exec` refuses to start outside a git repository unless told not to check; the agent's
    working directory is an empty scratch directory, never one, so the check means nothing."""
    if args and args[0] in ("exec", "e") and "--skip-git-repo-check" not in args:
        return (args[0], "--skip-git-repo-check", *args[1:])
    return tuple(args)


def check_agent_args(kind: AgentKind, args: Sequence[str]) -> None:
    """AGENT ARGS may not override the confinement (add tools, MCP servers, plugins, settings,
    directories): exit 2 naming the flag, before anything starts (see `_agentargs`)."""
    from sandbox.mcp import _agentargs

    match kind:
        case AgentKind.CLAUDE:
            _agentargs.check(_agentargs.CLAUDE_REFUSED, args)
        case AgentKind.CODEX:
            _agentargs.check(_agentargs.CODEX_REFUSED, args)
        case _:
            assert_never(kind)


def _agent_policy(effective: EffectivePolicy) -> EffectivePolicy:
    """The agent process's own policy: the session's limits and profile, no network but the
    LLM gateway, its scratch changes held (they are thrown away)."""
    from sandbox.lifecycle import held_policy

    return held_policy(effective, replace(effective.policy, egress_allow=(), llm_enabled=True))


class _Watch:
    """What the event loop learns about the agent's MCP connection."""

    def __init__(self, on_connect: Callable[[], None] = lambda: None) -> None:
        self.connected = threading.Event()
        self.on_connect = on_connect
        self.methods: list[str] = []
        self.agent_pids: set[int] = set()  # never stopped by a tool call's cancellation

    def seen(self, method: str) -> None:
        from sandbox.mcp._server import nsjail_children

        self.methods.append(method)
        if method in _socket.CONNECT_METHODS and not self.connected.is_set():
            # Only the agent's sandbox exists before its first tool call: remember it.
            self.agent_pids |= nsjail_children()
            self.connected.set()
            self.on_connect()


def run_agent(req: AgentRequest, *, confirm: Confirm | None = None,
              connect_timeout_s: float = CONNECT_TIMEOUT_S) -> AgentOutcome:
    check_agent_args(req.kind, req.args)  # before anything else: nothing starts if refused
    binary = find_binary(req.kind, req.binary)
    from sandbox._home import HomeLayout

    check_binary_dir(binary, req.mcp.workspace,
                     (HomeLayout(req.mcp.home) if req.mcp.home else HomeLayout.from_env()).root)
    from sandbox.mcp._server import Worker  # the MCP SDK: only once there is an agent to run

    worker = Worker()
    try:
        session = worker.sync(lambda: McpSession(req.mcp, confirm=confirm))
        try:
            return _run(req, binary, worker, session, connect_timeout_s)
        finally:
            worker.sync(session.close)
    finally:
        worker.close()


def _run(req: AgentRequest, binary: Path, worker: Worker, session: McpSession,
         connect_timeout_s: float) -> AgentOutcome:
    import anyio

    from sandbox.egress._plumbing import _egress_dir
    from sandbox.gateway._tools import ToolGate
    from sandbox.lifecycle import agent_session_id
    from sandbox.mcp._agentwait import Stopped, Wake, supervise
    from sandbox.mcp._server import build_server, stop_running_sandboxes

    agent_session = agent_session_id(session.id)
    if agent_session is None:
        raise UsageError(f"session id {session.id!r} is too long for `sandbox agent`",
                         hint="use a session id of at most 58 characters")
    agent_dir = session.layout.session_dir(session.id) / "agent"
    cwd = agent_dir / "cwd"  # the agent's empty working directory (its "workspace")
    cwd.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.rmtree(agent_dir / "egress", ignore_errors=True)
    # nsjail bind-mounts from inside the sandbox's user namespace: the relay's directory must
    # be reachable by the sandbox's uid (as root, not under the 0700 state dir).
    relay_dir = _egress_dir(agent_dir, f"{session.id}-mcp")
    _socket.write_relay(relay_dir, _PYTHON)
    if req.kind is AgentKind.CODEX:
        catalog = relay_dir / CODEX_CATALOG_NAME
        catalog.write_text(json.dumps(CODEX_CATALOG))
        catalog.chmod(0o644)
    sock = _socket.listen(relay_dir)
    wake = Wake()  # the waiting loop's: set on connection, refusal and the agent's end
    watch = _Watch(on_connect=wake.set)
    server = build_server(worker, session, keep=watch.agent_pids)
    argv = agent_argv(req.kind, binary, f"{_socket.INSIDE_DIR}/{_socket.CONFIG_NAME}", req.args)
    env: dict[str, str | None] = dict(_CLAUDE_ENV) if req.kind is AgentKind.CLAUDE else {}
    mounts = (BindMount(relay_dir, _socket.INSIDE_DIR), BindMount(binary.parent,
                                                                 INSIDE_AGENT_DIR))
    result: dict[str, Any] = {}
    failure: list[str] = []
    refusals: list[ToolsRefused] = []  # appended by the gateway's thread the moment it refuses
    launched = threading.Event()  # the launch thread's work is done (it is still alive then)

    def on_refused(what: ToolsRefused) -> None:  # on the gateway's thread
        refusals.append(what)
        wake.set()

    gate = ToolGate(allowed_tools(req.kind), on_refused, ready=watch.connected.is_set)

    def launch() -> None:
        from sandbox._runner import NoPerson, Runner, RunRequest
        from sandbox.backends import get_backend
        from sandbox.store import Store

        effective = _agent_policy(req.mcp.policy)
        with Store(session.layout) as store:
            runner = Runner(session.layout, store, session.audit,
                            get_backend(effective.policy.backend), NoPerson())
            try:
                result["outcome"] = runner.run(RunRequest(
                    argv=argv, workspace=cwd, policy=effective, session=agent_session,
                    env=env, mounts=mounts, llm_tools=gate))
            except SandboxError as exc:
                result["error"] = exc
            finally:
                launched.set()
                wake.set()

    async def main() -> None:
        wake.bind()
        thread = threading.Thread(target=launch, name="sandbox-agent", daemon=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_socket.serve_socket, server, sock, watch.seen)
            thread.start()
            stopped = await supervise(wake, connected=watch.connected, finished=launched,
                                      thread=thread, refusals=refusals,
                                      connect_timeout_s=connect_timeout_s,
                                      stop=stop_running_sandboxes)
            match stopped:
                case Stopped.NOT_CONNECTED:
                    failure.append(f"the agent did not connect to the sandbox MCP server "
                                   f"within {connect_timeout_s:g}s; stopped it")
                case Stopped.REFUSED:  # the gateway refused a request: the agent was stopped
                    failure.append(_foreign_message(refusals[0].tools, refusals[0].why))
                case None:
                    pass
                case _:
                    assert_never(stopped)
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        sock.close()
        shutil.rmtree(relay_dir, ignore_errors=True)
    finished = worker.sync(session.finish)
    outcome: RunOutcome | None = result.get("outcome")
    error: SandboxError | None = result.get("error")
    # Belt and braces: a refusal by a gateway that could not tell us (one reached by URL
    # through a relay) is in the audit log, read once here with the usage.
    llm, refused = _llm_usage(session, agent_session)
    if error is not None:
        failure.append(f"the agent could not run: {error}")
    elif outcome is not None and outcome.launch is not None and outcome.launch.backend_error:
        failure.append(f"the agent's sandbox failed: {outcome.launch.backend_error}")
    elif not failure and (refusals or refused):
        failure.append(_foreign_message(refusals[0].tools, refusals[0].why) if refusals
                       else _foreign_message(refused))
    elif not failure and not watch.connected.is_set():
        failure.append("the agent never connected to the sandbox MCP server (its tools were "
                       "not offered to the model)")
    code = EXIT_SANDBOX_FAILED if failure else (outcome.exit_code if outcome else
                                                EXIT_SANDBOX_FAILED)
    return AgentOutcome(exit_code=code, agent_run=outcome, finished=finished,
                        tool_calls=session.tool_calls, failure="; ".join(failure) or None,
                        llm=llm)


def _llm_usage(session: McpSession, agent_session: str) -> tuple[dict[str, Any], list[str]]:
    """Calls, tokens and cost of the agent's LLM traffic (the gateway's audit records), and
    the foreign tools of any request the gateway refused for them."""
    from sandbox.audit import AuditEvent
    from sandbox.gateway._report import total

    records = list(session.audit.records(session=agent_session))
    refused: list[str] = []
    for rec in records:
        if rec.event is AuditEvent.LLM_BLOCKED and rec.data.get("reason") == "tools":
            tools = rec.data.get("tools")
            refused += [str(t) for t in tools] if isinstance(tools, list) else ["?"]
    usage = total(records)
    return {"calls": usage.calls, "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": usage.cost_usd}, sorted(set(refused))
