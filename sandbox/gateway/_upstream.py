"""Requests to providers: URL and credential per provider type, and fallback before the first byte.

A route lists providers in fallback order. A connect error, 5xx or 429 from one moves to the
next, with exponential backoff and jitter, as long as nothing has been sent to the client yet,
which holds here by construction: the client gets the status line only after `dispatch`
returns. The last provider's error is passed through unchanged (agents match on its wording).
The loop is plain code: a retry library's machinery cost ~30 us on every call, also on the
first attempt that nearly every call ends with.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import yarl

from sandbox.gateway._config import Provider, ProviderType
from sandbox.gateway._usage import Api

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

__all__ = ["Endpoint", "Unreachable", "dispatch", "forward_headers", "reply_headers"]

# Never forwarded upstream: hop-by-hop, framing we redo, and every credential the client sent
# (the virtual key): the provider gets only its own credential, set by us.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade", "content-length"})
_DROP_UP = _HOP_BY_HOP | {"host", "accept-encoding", "authorization", "x-api-key", "api-key", "cookie"}
_DROP_DOWN = _HOP_BY_HOP | {"content-encoding", "set-cookie"}


class Endpoint:
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    CHAT = "chat"
    RESPONSES = "responses"

    @staticmethod
    def of(api: Api) -> str:
        match api:
            case Api.MESSAGES:
                return Endpoint.MESSAGES
            case Api.CHAT:
                return Endpoint.CHAT
            case Api.RESPONSES:
                return Endpoint.RESPONSES


def forward_headers(client: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in client.items() if k.lower() not in _DROP_UP}


def reply_headers(upstream: CIMultiDictProxy[str]) -> list[tuple[bytes, bytes]]:
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream.items()
        if k.lower() not in _DROP_DOWN
    ]


async def _prepare(provider: Provider, endpoint: str, model: str, body: bytes,
                   query: str) -> tuple[str, dict[str, str], bytes]:
    """(URL, credential and protocol headers, body) of one attempt at `provider`."""
    from sandbox.gateway._cloud import BEDROCK_VERSION, VERTEX_VERSION, BedrockAuth, VertexAuth, cloud_body

    match provider.auth:
        case BedrockAuth() as auth:
            data, name, stream = cloud_body(body, BEDROCK_VERSION, keep_stream=False)
            url = auth.url(provider.base_url, provider.model_ids.get(name, name), stream)
            return url, auth.sign(url, data, stream), data
        case VertexAuth() as auth:
            data, name, stream = cloud_body(body, VERTEX_VERSION, keep_stream=True)
            url = auth.url(provider.base_url, provider.model_ids.get(name, name), stream)
            return url, {"authorization": f"Bearer {await auth.token()}",
                         "content-type": "application/json"}, data
        case _:
            url, creds = target(provider, endpoint, model)
            if query and provider.type is ProviderType.ANTHROPIC:
                url = f"{url}?{query}"
            return url, creds, body


def target(provider: Provider, endpoint: str, model: str) -> tuple[str, dict[str, str]]:
    """(URL, credential and protocol headers) for `endpoint` at `provider`."""
    base, secret = provider.base_url, provider.secret
    match provider.type:
        case ProviderType.ANTHROPIC:
            path = "/v1/messages/count_tokens" if endpoint == Endpoint.COUNT_TOKENS else "/v1/messages"
            return base + path, ({"x-api-key": secret} if secret else {})
        case ProviderType.OPENAI | ProviderType.OPENAI_COMPATIBLE:
            path = "/responses" if endpoint == Endpoint.RESPONSES else "/chat/completions"
            return base + path, ({"authorization": f"Bearer {secret}"} if secret else {})
        case ProviderType.AZURE_OPENAI:
            version = f"?api-version={provider.api_version}"
            if endpoint == Endpoint.RESPONSES:
                return f"{base}/responses{version}", {"api-key": secret or ""}
            return f"{base}/deployments/{model}/chat/completions{version}", {"api-key": secret or ""}
        case ProviderType.BEDROCK | ProviderType.VERTEX:
            raise AssertionError("cloud providers are prepared by _prepare")


def backoff(failed: int) -> float:
    """Seconds to wait before the next provider after `failed` failed attempts (1, 2, ...)."""
    return min(0.05 * 2.0 ** (failed - 1) + random.uniform(0, 0.05), 1.0)


class Unreachable(Exception):
    """Every provider of the route failed to connect (message names providers, not secrets)."""


@dataclass(frozen=True)
class Attempted:
    provider: Provider
    response: aiohttp.ClientResponse
    attempts: int


async def dispatch(
    session: aiohttp.ClientSession,
    providers: Sequence[Provider],
    endpoint: str,
    model: str,
    headers: Mapping[str, str],
    body: bytes,
    query: str = "",
) -> Attempted:
    """POST `body` to the first provider that answers (see the module doc); `query` is the
    client's query string, kept for Anthropic (Claude Code sends ?beta=true)."""
    failures: list[str] = []
    last = len(providers)
    for n, provider in enumerate(providers, 1):
        if n > 1:
            await asyncio.sleep(backoff(n - 1))
        try:
            url, creds, data = await _prepare(provider, endpoint, model, body, query)
        except Exception as exc:  # a token or signature we could not get: next provider
            failures.append(f"{provider.name}: credentials: {type(exc).__name__}")
            continue
        try:
            # encoded=True: send the path exactly as signed (SigV4 covers it; yarl
            # would otherwise unquote Bedrock's "%3A" in model ids).
            resp = await session.post(yarl.URL(url, encoded=True), data=data,
                                      headers={**headers, **creds})
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            failures.append(f"{provider.name}: {type(exc).__name__}")
            continue
        if (resp.status >= 500 or resp.status == 429) and n < last:
            failures.append(f"{provider.name}: HTTP {resp.status}")
            resp.release()
            continue
        return Attempted(provider, resp, n)
    raise Unreachable("no provider reachable (" + "; ".join(failures) + ")")
