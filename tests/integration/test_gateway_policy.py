"""Gateway behaviour at the edges: fallback, content policy, disconnects, bad input, storage."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sandbox.audit import AuditEvent, AuditLog
from sandbox.gateway import KeyStore
from sandbox.gateway._config import parse_config
from tests.support.gateway import UPSTREAM_KEY, config_text, running_gateway, url_of
from tests.support.provider_standin import ProviderStandIn

MSG = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> Iterator[ProviderStandIn]:
    with ProviderStandIn(api_key=UPSTREAM_KEY) as up:
        yield up


def _records(home: Path, event: AuditEvent) -> list[dict[str, object]]:
    return [dict(r.data) for r in AuditLog(home / "audit.log").records() if r.event is event]


async def _post(
    url: str, key: str, body: object, path: str = "/anthropic/v1/messages", raw: bytes | None = None
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + path,
            data=raw if raw is not None else json.dumps(body).encode(),
            headers={"x-api-key": key, "content-type": "application/json"},
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.asyncio
async def test_fallback_before_the_first_byte(tmp_path: Path, upstream: ProviderStandIn) -> None:
    with (
        ProviderStandIn(api_key=UPSTREAM_KEY) as second,
        running_gateway(tmp_path, config_text(_closed_port(), upstream.url, second.url)) as gw,
    ):
        key, _ = KeyStore.at_home(tmp_path).create()
        # provider 0 refuses connections, provider 1 answers 529 overloaded: provider 2 serves.
        upstream.fail_next.append((529, '{"type":"error","error":{"type":"overloaded_error","message":"x"}}'))
        status, body = await _post(url_of(gw), key, MSG)
        assert status == 200 and body["type"] == "message"
        assert len(second.billed) == 1 and upstream.billed == []
        # When every provider fails, the last one's error reaches the client unchanged.
        upstream.fail_next.append((500, '{"type":"error","error":{"type":"api_error","message":"boom"}}'))
        second.fail_next.append(
            (429, '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
        )
        status, body = await _post(url_of(gw), key, MSG)
        assert status == 429 and body["error"] == {"type": "rate_limit_error", "message": "slow down"}
        # A 4xx from the provider is the client's problem: passed through, no fallback.
        upstream.fail_next.append(
            (400, '{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}')
        )
        status, body = await _post(url_of(gw), key, MSG)
        assert status == 400 and len(second.billed) == 1
        gw.gateway.recorder.flush()
    calls = _records(tmp_path, AuditEvent.LLM_CALL)
    assert [(c["status"], c["provider"], c["attempts"]) for c in calls] == [
        (200, "a2", 3),
        (429, "a2", 3),
        (400, "a1", 2),
    ]
    assert all(c["cost_usd"] == 0 for c in calls[1:])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "secret,rule",
    [
        ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----",
            "private_key",
        ),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "github_token"),
        ("xoxb-1234567890-abcdefghij", "slack_token"),
        ("glpat-abcdefghij0123456789", "gitlab_token"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        ("STRIPE_API_KEY=q8Zr2LmX0vT7yB4nW9sK3pD6", "high_entropy_assignment"),
        (UPSTREAM_KEY, "upstream_credential"),
    ],
)
async def test_content_policy_blocks_secrets_naming_the_rule(
    tmp_path: Path, upstream: ProviderStandIn, secret: str, rule: str
) -> None:
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        body = {**MSG, "messages": [{"role": "user", "content": f"deploy with {secret} please"}]}
        status, err = await _post(url_of(gw), key, body)
        gw.gateway.recorder.flush()
    assert status == 400 and err["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert f"rule {rule}" in err["error"]["message"]  # type: ignore[index]
    assert secret not in json.dumps(err)
    assert upstream.received == []  # nothing left
    blocks = _records(tmp_path, AuditEvent.LLM_BLOCKED)
    assert [(b["reason"], b["rule"]) for b in blocks] == [("content", rule)]
    assert _records(tmp_path, AuditEvent.LLM_CALL) == []


@pytest.mark.asyncio
async def test_content_policy_redact_mode(tmp_path: Path, upstream: ProviderStandIn) -> None:
    text = config_text(upstream.url).replace("[routes]", '[gateway]\ncontent = "redact"\n[routes]')
    with running_gateway(tmp_path, text) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        body = {**MSG, "messages": [{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE ok"}]}
        status, _ = await _post(url_of(gw), key, body)
    assert status == 200
    sent = upstream.received[0].body["messages"][0]["content"]
    assert sent == "my key is [REDACTED:aws_access_key_id] ok"


@pytest.mark.asyncio
async def test_bad_input_is_refused_in_shape_with_nothing_recorded(
    tmp_path: Path, upstream: ProviderStandIn
) -> None:
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        store = KeyStore.at_home(tmp_path)
        key, vk = store.create(budget_usd=1.0, models=["claude-*"])
        status, err = await _post(url_of(gw), key, None, raw=b"{not json")
        assert status == 400 and err["type"] == "error"
        status, err = await _post(url_of(gw), key, None, path="/openai/v1/chat/completions", raw=b"[]")
        assert status == 400 and err["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        status, err = await _post(url_of(gw), key, {**MSG, "model": "claude-unpriced"})
        assert status == 400 and "no price" in err["error"]["message"]  # type: ignore[index]
        open_key, _ = store.create()
        status, err = await _post(url_of(gw), open_key, {**MSG, "model": "mistral-large"})
        assert status == 404 and err["error"]["type"] == "not_found_error"  # type: ignore[index]
        status, err = await _post(
            url_of(gw), key, {"model": "gpt-test", "messages": []}, path="/openai/v1/chat/completions"
        )
        assert status == 403 and err["error"]["code"] == "model_not_allowed"  # type: ignore[index]
        gw.gateway.recorder.flush()
        assert store.spent(f"key:{vk.id}") == 0
    assert upstream.received == []
    assert _records(tmp_path, AuditEvent.LLM_CALL) == []
    # the allowlist refusal is a policy block: audited
    assert [b["reason"] for b in _records(tmp_path, AuditEvent.LLM_BLOCKED)] == ["model"]


@pytest.mark.asyncio
async def test_client_disconnect_mid_stream_still_bills(tmp_path: Path) -> None:
    with (
        ProviderStandIn(api_key=UPSTREAM_KEY, output_tokens=77, gap=0.05, text=" ".join(["word"] * 30)) as up,
        running_gateway(tmp_path, config_text(up.url)) as gw,
    ):
        key, vk = KeyStore.at_home(tmp_path).create()
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url_of(gw).rsplit(":", 1)[1]))
        payload = json.dumps({**MSG, "stream": True, "max_tokens": 100}).encode()
        writer.write(
            b"POST /anthropic/v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {key}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        first = await reader.readuntil(b"message_start")
        assert first.startswith(b"HTTP/1.1 200")
        writer.close()  # the client goes away after the first event
        for _ in range(200):
            await asyncio.sleep(0.05)
            if gw.gateway.ledger.reserved(f"key:{vk.id}") == 0:
                break
        gw.gateway.recorder.flush()
    calls = _records(tmp_path, AuditEvent.LLM_CALL)
    assert len(calls) == 1 and calls[0]["client_disconnected"] is True
    assert calls[0]["output_tokens"] == 77 and calls[0]["usage_complete"] is True
    assert calls[0]["cost_usd"] == pytest.approx((100 * 3 + 77 * 15) / 1e6)


@pytest.mark.asyncio
async def test_transcripts_are_stored_once_per_message(tmp_path: Path, upstream: ProviderStandIn) -> None:
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        messages: list[dict[str, str]] = []
        for turn in range(30):
            messages.append({"role": "user", "content": f"turn {turn}: " + "x" * 2000})
            status, _ = await _post(url_of(gw), key, {**MSG, "messages": messages})
            assert status == 200
            messages.append({"role": "assistant", "content": upstream.text})
        gw.gateway.recorder.flush()
    bodies = [p for p in (tmp_path / "gateway" / "bodies").rglob("*") if p.is_file()]
    stored = sum(p.stat().st_size for p in bodies)
    # 30 turns of a growing transcript would be ~30*31/2 * 2 KB = 930 KB stored whole each time.
    assert stored < 200_000, stored  # messages once (60 KB) + manifests of references
    calls = _records(tmp_path, AuditEvent.LLM_CALL)
    assert len({c["request"] for c in calls}) == 30


@pytest.mark.asyncio
async def test_upstream_dying_mid_stream_ends_the_stream_and_charges_the_reservation(tmp_path: Path) -> None:
    with (
        ProviderStandIn(api_key=UPSTREAM_KEY, abort_after=3) as up,
        running_gateway(tmp_path, config_text(up.url)) as gw,
    ):
        key, vk = KeyStore.at_home(tmp_path).create()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                url_of(gw) + "/anthropic/v1/messages",
                json={**MSG, "stream": True},
                headers={"x-api-key": key},
            ) as r,
        ):
            assert r.status == 200  # the status line had gone out: no fallback after a byte
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        gw.gateway.recorder.flush()
        assert gw.gateway.ledger.reserved(f"key:{vk.id}") == 0
    (call,) = _records(tmp_path, AuditEvent.LLM_CALL)
    assert call["status"] == 200 and call["upstream_broken"] is True and call["usage_complete"] is False
    assert call["cost_usd"] == call["reserved_usd"]  # never zero: the worst case is charged


@pytest.mark.asyncio
async def test_model_endpoints_outside_starlette_keep_http_behaviour(
    tmp_path: Path, upstream: ProviderStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model endpoints are served in raw ASGI (sandbox/gateway/_asgi.py): an oversized body
    is refused in the provider's shape and leaves the connection usable, the query string still
    reaches Anthropic, a GET is still 405, and a repeated key header means its first value."""
    monkeypatch.setattr("sandbox.gateway._app.MAX_BODY", 4096)
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        url = url_of(gw)
        big = {**MSG, "messages": [{"role": "user", "content": "x" * 8192}]}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
            headers = {"x-api-key": key, "content-type": "application/json"}
            async with http.post(url + "/anthropic/v1/messages", json=big, headers=headers) as r:
                assert r.status == 413
                body = await r.json()
                assert body["error"]["type"] == "request_too_large" and "4096" in body["error"]["message"]
            # The same (only) connection serves the next call.
            async with http.post(url + "/anthropic/v1/messages?beta=true", json=MSG, headers=headers) as r:
                assert r.status == 200 and (await r.json())["type"] == "message"
            async with http.get(url + "/anthropic/v1/messages", headers=headers) as r:
                assert r.status == 405
            async with http.post(
                url + "/openai/v1/chat/completions",
                data=json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}),
                headers=[("authorization", f"Bearer {key}"), ("authorization", "Bearer sk-sbx-wrong")],
            ) as r:
                assert r.status == 200
        assert len(upstream.billed) == 2
        first = upstream.received[0]
        assert (first.path, first.query) == ("/v1/messages", "beta=true")


def test_the_gateway_takes_the_gil_back_quickly(tmp_path: Path, upstream: ProviderStandIn) -> None:
    """With Python's default 5 ms switch interval, the audit writer's CPU work held the event
    loop up for milliseconds (a streamed call's headers reached the client ~5 ms late at 50
    calls/s, bench_gateway). Every gateway lowers it (embedded, and the one `sandbox serve`
    hosts, built directly), and never raises a lower one."""
    from sandbox.gateway._app import Gateway

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        with running_gateway(tmp_path, config_text(upstream.url)):
            assert sys.getswitchinterval() <= 0.0005
        sys.setswitchinterval(0.005)
        cfg = parse_config(tomllib.loads(config_text(upstream.url)), None, {"UP_KEY": UPSTREAM_KEY})
        gw = Gateway(cfg, tmp_path)
        gw.recorder.close()
        gw.keys.close()
        assert sys.getswitchinterval() <= 0.0005
        sys.setswitchinterval(0.0001)
        with running_gateway(tmp_path, config_text(upstream.url)):
            assert sys.getswitchinterval() == pytest.approx(0.0001, abs=2e-6)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.asyncio
async def test_a_repeated_key_cannot_carry_content_past_the_scan(
    tmp_path: Path, upstream: ProviderStandIn
) -> None:
    """JSON with `messages` twice: the scan reads the parsed body (the last one wins), a provider
    may keep the first. With a content policy on, what leaves is what was scanned."""
    secret = "AKIAIOSFODNN7EXAMPLE"
    raw = (b'{"model": "claude-test", "max_tokens": 50, '
           b'"messages": [{"role": "user", "content": "deploy with ' + secret.encode() + b'"}], '
           b'"messages": [{"role": "user", "content": "hi"}]}')
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        status, _ = await _post(url_of(gw), key, None, raw=raw)
    assert status == 200  # the call went through (what the scan saw was clean)
    assert len(upstream.received) == 1
    assert secret.encode() not in upstream.received[0].raw  # the first `messages` never left
    assert upstream.received[0].body["messages"] == [{"role": "user", "content": "hi"}]
