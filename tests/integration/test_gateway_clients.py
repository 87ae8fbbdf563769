"""The gateway with the official anthropic and openai SDKs, against a provider stand-in."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from sandbox.audit import AuditEvent, AuditLog
from sandbox.gateway import KeyStore
from sandbox.gateway._serve import EmbeddedGateway
from sandbox.gateway._tools import ToolGate, ToolRestriction, ToolsRefused, Why
from tests.support.gateway import UPSTREAM_KEY, config_text, running_gateway, url_of
from tests.support.provider_standin import ProviderStandIn


@pytest.fixture
def upstream() -> Iterator[ProviderStandIn]:
    with ProviderStandIn(
        api_key=UPSTREAM_KEY, input_tokens=120, output_tokens=40, cache_read=30, cache_write=10
    ) as up:
        yield up


@pytest.fixture
def gw(tmp_path: Path, upstream: ProviderStandIn) -> Iterator[EmbeddedGateway]:
    with running_gateway(tmp_path, config_text(upstream.url)) as g:
        yield g


def _key(home: Path, **kw: object) -> str:
    secret, _ = KeyStore.at_home(home).create(**kw)  # type: ignore[arg-type]
    return secret


def _calls(home: Path) -> list[dict[str, object]]:
    return [dict(r.data) for r in AuditLog(home / "audit.log").records() if r.event is AuditEvent.LLM_CALL]


def _everything_written(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def test_anthropic_sdk_stream_and_not(tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway) -> None:
    key = _key(tmp_path)
    client = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=key, max_retries=0)
    msg = client.messages.create(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text" and "stand-in" in msg.content[0].text
    with client.messages.stream(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "stand-in" in text and final.usage.output_tokens == 40
    # The provider saw its own credential, never the virtual key; the client's headers passed.
    assert [r.headers["x-api-key"] for r in upstream.received] == [UPSTREAM_KEY] * 2
    assert all("anthropic-version" in r.headers for r in upstream.received)
    gw.gateway.recorder.flush()
    calls = _calls(tmp_path)
    assert [c["stream"] for c in calls] == [False, True]
    for c in calls:
        assert (c["input_tokens"], c["output_tokens"], c["cache_read_tokens"], c["cache_write_tokens"]) == (
            120,
            40,
            30,
            10,
        )
        assert c["cost_usd"] == pytest.approx((120 * 3 + 40 * 15 + 30 * 0.3 + 10 * 3.75) / 1e6)
        assert c["status"] == 200 and c["provider"] == "a0"
    # Credentials appear nowhere the gateway writes: audit, bodies, keys db.
    written = _everything_written(tmp_path)
    assert UPSTREAM_KEY.encode() not in written and key.encode() not in written
    with urllib.request.urlopen(url_of(gw) + "/metrics") as resp:
        metrics = resp.read()
    assert b'sandbox_gateway_calls_total{api="anthropic.messages"' in metrics
    assert UPSTREAM_KEY.encode() not in metrics and key.encode() not in metrics


def test_openai_sdk_chat_hides_the_usage_chunk_it_added(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    key = _key(tmp_path)
    client = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert upstream.received[-1].body["stream_options"] == {"include_usage": True}
    asked = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens == 40
    plain = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content == upstream.text
    gw.gateway.recorder.flush()
    calls = _calls(tmp_path)
    assert len(calls) == 3
    for c in calls:  # cached prompt tokens are billed at the cache-read price, not twice
        assert (c["input_tokens"], c["output_tokens"], c["cache_read_tokens"]) == (120, 40, 30)
        assert c["cost_usd"] == pytest.approx((120 * 2 + 40 * 8 + 30 * 0.5) / 1e6)
    assert upstream.received[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_openai_sdk_responses(tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway) -> None:
    client = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=_key(tmp_path), max_retries=0)
    resp = client.responses.create(model="gpt-test", input="hi")
    assert resp.output_text == upstream.text
    events = list(client.responses.create(model="gpt-test", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    gw.gateway.recorder.flush()
    calls = _calls(tmp_path)
    assert [(c["api"], c["stream"], c["output_tokens"]) for c in calls] == [
        ("openai.responses", False, 40),
        ("openai.responses", True, 40),
    ]


def test_unknown_or_revoked_key_gets_401_in_each_providers_shape(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    store = KeyStore.at_home(tmp_path)
    key, vk = store.create()
    store.revoke(vk.id)
    for bad in ("sk-sbx-nope", key):
        a = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=bad, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as ae:
            a.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        body = ae.value.body
        assert isinstance(body, dict) and body["type"] == "error"  # the Anthropic error shape
        assert body["error"]["type"] == "authentication_error"
        o = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=bad, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as oe:
            o.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
        assert oe.value.code == "invalid_api_key"
    assert upstream.received == []  # nothing left the gateway
    gw.gateway.recorder.flush()
    assert _calls(tmp_path) == []


def test_key_header_variants(tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway) -> None:
    key = _key(tmp_path)
    body = json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).encode()
    for header in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}, {"api-key": key}):
        req = urllib.request.Request(
            url_of(gw) + "/openai/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json", **header},
        )
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
    assert len(upstream.received) == 3


def test_count_tokens_and_model_lists(tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway) -> None:
    key = _key(tmp_path, models=["claude-test", "gpt-*"])
    a = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=key, max_retries=0)
    counted = a.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == upstream.input_tokens
    assert upstream.received[-1].path == "/v1/messages/count_tokens"
    assert upstream.received[-1].headers["x-api-key"] == UPSTREAM_KEY
    assert [m.id for m in a.models.list()] == ["claude-test"]  # routed, priced, allowed for this key
    o = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=key, max_retries=0)
    assert [m.id for m in o.models.list()] == ["gpt-test"]
    gw.gateway.recorder.flush()
    assert _calls(tmp_path) == []  # counting tokens is not a billed call


def test_stored_bodies_are_redacted_even_when_content_policy_is_off(
    tmp_path: Path, upstream: ProviderStandIn
) -> None:
    secret = "AKIAIOSFODNN7EXAMPLE"
    upstream.text = f"your key {secret} is noted"  # the model echoes it back
    text = config_text(upstream.url).replace("[routes]", '[gateway]\ncontent = "off"\n[routes]')
    with running_gateway(tmp_path, text) as g:
        client = anthropic.Anthropic(base_url=url_of(g) + "/anthropic", api_key=_key(tmp_path), max_retries=0)
        msg = client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": f"remember {secret}"}]
        )
        g.gateway.recorder.flush()
    assert secret in str(msg.content[0])  # content = "off": the call itself is untouched
    assert upstream.received[0].body["messages"][0]["content"] == f"remember {secret}"
    bodies = b"".join(p.read_bytes() for p in (tmp_path / "gateway" / "bodies").rglob("*") if p.is_file())
    assert secret.encode() not in bodies and b"[REDACTED:aws_access_key_id]" in bodies
    (call,) = _calls(tmp_path)
    assert isinstance(call["request"], str) and isinstance(call["response"], str)


OUR_TOOLS = ToolRestriction(frozenset({"mcp__sandbox__bash", "mcp__sandbox__read_file"}))
_SCHEMA: dict[str, object] = {"type": "object", "properties": {}}


def test_a_restricted_key_offering_a_foreign_tool_never_reaches_the_model(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    """`sandbox agent`'s key: a request offering any tool but ours is refused with 403 in the
    provider's shape, before dispatch (the provider saw nothing, nothing was reserved or
    spent), audited, and the run told at once; each SDK really sent its request."""
    heard: list[ToolsRefused] = []
    gw.gateway.gate = ToolGate(OUR_TOOLS, heard.append)
    secret, vk = KeyStore.at_home(tmp_path).create(tools=OUR_TOOLS, budget_usd=1.0, session="s-agent")
    a = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=secret, max_retries=0)
    o = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=secret, max_retries=0)
    ours = {"name": "mcp__sandbox__bash", "description": "ours", "input_schema": _SCHEMA}
    bash = {"name": "Bash", "description": "a built-in", "input_schema": _SCHEMA}
    msgs: list[anthropic.types.MessageParam] = [{"role": "user", "content": "x"}]
    with pytest.raises(anthropic.PermissionDeniedError) as ae:
        a.messages.create(model="claude-test", max_tokens=10, messages=msgs, tools=[ours, bash])  # type: ignore[list-item]
    body = ae.value.body
    assert isinstance(body, dict) and body["type"] == "error"  # the Anthropic error shape
    assert body["error"]["type"] == "permission_error"
    assert "tools that are not ours: Bash" in body["error"]["message"]
    stream = a.messages.stream(model="claude-test", max_tokens=10, messages=msgs, tools=[bash])  # type: ignore[list-item]
    with pytest.raises(anthropic.PermissionDeniedError), stream as s:  # refused before any byte
        list(s.text_stream)
    with pytest.raises(openai.PermissionDeniedError) as ce:
        o.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "shell", "parameters": _SCHEMA}}],
        )
    assert ce.value.code == "tool_not_allowed" and "shell" in ce.value.message
    with pytest.raises(openai.PermissionDeniedError) as re_:
        o.responses.create(model="gpt-test", input="x", tools=[{"type": "web_search"}], stream=True)
    assert re_.value.code == "tool_not_allowed" and "web_search" in re_.value.message
    with pytest.raises(anthropic.PermissionDeniedError):  # count_tokens is admitted the same way
        a.messages.count_tokens(model="claude-test", messages=msgs, tools=[bash])  # type: ignore[list-item]
    assert upstream.received == []  # the model never saw a foreign tool
    assert [h.tools for h in heard] == [("Bash",), ("Bash",), ("shell",), ("web_search",), ("Bash",)]
    assert {(h.key, h.session) for h in heard} == {(vk.id, "s-agent")}
    gw.gateway.recorder.flush()
    assert _calls(tmp_path) == []
    blocked = [dict(r.data) for r in AuditLog(tmp_path / "audit.log").records()
               if r.event is AuditEvent.LLM_BLOCKED]
    assert [(b["reason"], b["tools"]) for b in blocked] == [
        ("tools", ["Bash"]), ("tools", ["Bash"]), ("tools", ["shell"]), ("tools", ["web_search"]),
        ("tools", ["Bash"])]
    assert AuditLog(tmp_path / "audit.log").verify().problems == ()
    assert KeyStore.at_home(tmp_path).spent(f"key:{vk.id}") == 0.0
    assert f"key:{vk.id}" not in gw.gateway.ledger.peak  # never even reserved
    # Our tools alone pass, through the same key.
    ok = a.messages.create(model="claude-test", max_tokens=10, messages=msgs, tools=[ours])  # type: ignore[list-item]
    assert ok.content and len(upstream.received) == 1


def test_a_restricted_key_cannot_switch_on_chat_web_search(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    """Chat Completions turns the provider's hosted web search on with `web_search_options`,
    no `tools` entry at all: a restricted key's request with it offered the model a tool that
    is not ours, and went through. Refused now, naming it; the provider saw nothing."""
    secret, _ = KeyStore.at_home(tmp_path).create(tools=OUR_TOOLS)
    o = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as ce:
        o.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}],
                                  web_search_options={"search_context_size": "high"})
    assert ce.value.code == "tool_not_allowed" and "web_search_options" in ce.value.message
    assert upstream.received == []
    ok = o.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    assert ok.choices and len(upstream.received) == 1  # the same key without it passes


def test_a_restricted_key_cannot_reach_a_search_model(tmp_path: Path, upstream: ProviderStandIn) -> None:
    """OpenAI's search models (gpt-4o-search-preview...) search the web with no tool field at
    all, so the tool gate saw nothing: a restricted key's request reached one. Refused now on
    both OpenAI dialects (403, the provider's shape), audited as llm.blocked, never dispatched;
    an unrestricted key still reaches it."""
    model = "gpt-4o-search-preview"
    price = f'[prices."{model}"]\ninput = 2.5\noutput = 10.0\n'
    with running_gateway(tmp_path, config_text(upstream.url, extra=price)) as gw:
        secret, vk = KeyStore.at_home(tmp_path).create(tools=OUR_TOOLS, budget_usd=1.0)
        o = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as ce:
            o.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert ce.value.code == "tool_not_allowed" and model in ce.value.message
        with pytest.raises(openai.PermissionDeniedError) as re_:
            o.responses.create(model=model, input="x")
        assert re_.value.code == "tool_not_allowed"
        assert upstream.received == []  # never dispatched
        gw.gateway.recorder.flush()  # the audit writer is a thread of its own
        blocked = [dict(r.data) for r in AuditLog(tmp_path / "audit.log").records()
                   if r.event is AuditEvent.LLM_BLOCKED]
        assert [(b["reason"], b["model"], b["key"]) for b in blocked] == [
            ("tools", model, vk.id), ("tools", model, vk.id)]
        assert KeyStore.at_home(tmp_path).spent(f"key:{vk.id}") == 0.0
        free = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=_key(tmp_path), max_retries=0)
        ok = free.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert ok.choices and len(upstream.received) == 1  # the call itself works


def test_an_unrestricted_key_offers_any_tool(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    """Plain `run --llm` and `gateway key create` keys carry no restriction."""
    a = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=_key(tmp_path), max_retries=0)
    bash = {"name": "Bash", "description": "a built-in", "input_schema": _SCHEMA}
    a.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                      tools=[bash])  # type: ignore[list-item]
    assert [r.body["tools"][0]["name"] for r in upstream.received] == ["Bash"]


def test_a_restricted_keys_request_leaves_as_the_gateway_read_it(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    """JSON with a key twice: the gateway (like Python) reads the last `tools`, a provider might
    read the first. What was checked is what is sent: the re-encoded body, never the raw one."""
    secret, _ = KeyStore.at_home(tmp_path).create(tools=OUR_TOOLS)
    ours = json.dumps([{"name": "mcp__sandbox__bash", "input_schema": _SCHEMA}])
    foreign = json.dumps([{"name": "Bash", "input_schema": _SCHEMA}])
    raw = (f'{{"model": "claude-test", "max_tokens": 10, "messages": [{{"role": "user", '
           f'"content": "x"}}], "tools": {foreign}, "tools": {ours}}}').encode()
    req = urllib.request.Request(url_of(gw) + "/anthropic/v1/messages", raw,
                                 {"x-api-key": secret, "content-type": "application/json",
                                  "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    (sent,) = upstream.received
    assert b'"mcp__sandbox__bash"' in sent.raw and b'"Bash"' not in sent.raw


def test_before_the_agent_reaches_our_server_no_tool_is_ours(
    tmp_path: Path, upstream: ProviderStandIn, gw: EmbeddedGateway
) -> None:
    """Another MCP server configured under our name offers tools named exactly like ours: until
    the agent has connected to our server (`ready`), any offered tool is refused; a request
    offering none passes (titles, summaries)."""
    connected = False
    heard: list[ToolsRefused] = []
    gw.gateway.gate = ToolGate(OUR_TOOLS, heard.append, ready=lambda: connected)
    secret, _ = KeyStore.at_home(tmp_path).create(tools=OUR_TOOLS)
    a = anthropic.Anthropic(base_url=url_of(gw) + "/anthropic", api_key=secret, max_retries=0)
    msgs: list[anthropic.types.MessageParam] = [{"role": "user", "content": "x"}]
    ours = {"name": "mcp__sandbox__bash", "description": "not ours at all", "input_schema": _SCHEMA}
    with pytest.raises(anthropic.PermissionDeniedError) as ae:
        a.messages.create(model="claude-test", max_tokens=10, messages=msgs, tools=[ours])  # type: ignore[list-item]
    assert "before the agent connected to our MCP server" in str(ae.value.body)
    assert [(h.tools, h.why) for h in heard] == [(("mcp__sandbox__bash",), Why.BEFORE_SERVER)]
    assert upstream.received == []
    a.messages.create(model="claude-test", max_tokens=10, messages=msgs)  # no tools: passes
    connected = True
    a.messages.create(model="claude-test", max_tokens=10, messages=msgs, tools=[ours])  # type: ignore[list-item]
    assert len(upstream.received) == 2 and len(heard) == 1
