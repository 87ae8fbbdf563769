"""Budgets are never overspent, even by hundreds of concurrent streams; rate limits answer 429."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sandbox.audit import AuditEvent, AuditLog
from sandbox.gateway import KeyStore
from tests.support.gateway import UPSTREAM_KEY, config_text, running_gateway, url_of
from tests.support.provider_standin import ProviderStandIn

PRICE = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}


@pytest.fixture
def upstream() -> Iterator[ProviderStandIn]:
    # A slow stream, so the requests really are in flight together.
    with ProviderStandIn(
        api_key=UPSTREAM_KEY, input_tokens=200, output_tokens=100, think=0.05, gap=0.01
    ) as up:
        yield up


async def _stream(http: aiohttp.ClientSession, url: str, key: str) -> tuple[int, dict[str, object] | None]:
    body = {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "count to ten"}],
    }
    async with http.post(url + "/anthropic/v1/messages", json=body, headers={"x-api-key": key}) as r:
        data = await r.read()
        return r.status, (json.loads(data) if r.status != 200 else None)


@pytest.mark.asyncio
async def test_200_concurrent_streams_never_overspend(tmp_path: Path, upstream: ProviderStandIn) -> None:
    # Worst case per request: (payload bytes + 2048) * 3.75 + 100 * 15 per million, ~0.01 USD;
    # the budget fits a few dozen of them.
    budget = 0.40
    with running_gateway(tmp_path, config_text(upstream.url)) as gw:
        key, vk = KeyStore.at_home(tmp_path).create(budget_usd=budget)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            results = await asyncio.gather(*(_stream(http, url_of(gw), key) for _ in range(240)))
        ok = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] != 200]
        gw.gateway.recorder.flush()
        ledger = gw.gateway.ledger
        scope = f"key:{vk.id}"
        peak, committed, reserved = ledger.peak[scope], ledger.committed(scope), ledger.reserved(scope)
    spent = sum(b.cost(PRICE) for b in upstream.billed)
    assert 10 <= len(ok) < 240, len(ok)  # some admitted, the rest refused: the test bit
    assert len(upstream.billed) == len(ok)
    assert spent <= budget  # the provider's own count
    assert peak <= budget + 1e-12  # committed + reserved at every instant
    assert reserved == pytest.approx(0.0) and committed == pytest.approx(spent)
    for status, err in refused:
        assert status == 402  # non-retryable (agents retry 429)
        assert err is not None and err["error"]["type"] == "billing_error"  # type: ignore[index]
        message = err["error"]["message"]  # type: ignore[index]
        assert "budget exceeded" in message and "left of its $0.400000 limit" in message
    # The audit records add up to what the provider billed.
    audited = [r.data for r in AuditLog(tmp_path / "audit.log").records() if r.event is AuditEvent.LLM_CALL]
    assert len(audited) == len(ok)
    assert sum(float(str(d["cost_usd"])) for d in audited) == pytest.approx(spent)
    # The spend survives a restart: a new gateway refuses what the old one would have refused.
    assert KeyStore.at_home(tmp_path).spent(scope) == pytest.approx(spent)


@pytest.mark.asyncio
async def test_rate_limits_answer_429_with_retry_after(tmp_path: Path, upstream: ProviderStandIn) -> None:
    text = config_text(upstream.url, extra="[limits]\nrequests_per_minute = 3\nconcurrent_streams = 2\n")
    with running_gateway(tmp_path, text) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        async with aiohttp.ClientSession() as http:
            first = await asyncio.gather(*(_stream(http, url_of(gw), key) for _ in range(3)))
            statuses = sorted(s for s, _ in first)
            assert statuses == [200, 200, 429]  # two streams at once, the third waits
            status, _ = await _stream(http, url_of(gw), key)
            assert status == 200  # a refused request does not count against the minute
            body = {"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
            async with http.post(
                url_of(gw) + "/anthropic/v1/messages", json=body, headers={"x-api-key": key}
            ) as r:
                assert r.status == 429 and int(r.headers["retry-after"]) >= 1  # 3 per minute used
                assert (await r.json())["error"]["type"] == "rate_limit_error"
