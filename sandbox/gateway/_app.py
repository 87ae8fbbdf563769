"""The gateway's HTTP surface (an ASGI app served by uvicorn: the model endpoints in raw ASGI,
the rest in Starlette) and call admission.

Admission, in order, for every model call: the virtual key (401), the body (400), the key's
model allowlist (403), the key's tool restriction (403 naming the foreign tools), the content
policy (400 naming the rule), the route (404), the price (400 when unpriced), rate limits (429 +
retry-after), then the budget reservation (402, never 429: agents retry 429). Nothing before the
reservation spends or writes an audit record, except the policy blocks, which are audited.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox._home import HomeLayout
from sandbox.audit import AuditEvent, AuditLog
from sandbox.gateway._asgi import GatewayApp, Incoming
from sandbox.gateway._budget import Ledger, Refusal, Scope
from sandbox.gateway._config import ApiFamily, Config, ContentMode, Price
from sandbox.gateway._content import Scanner, redact_json, strings
from sandbox.gateway._errors import Kind, error_body
from sandbox.gateway._keys import KeyStore, VirtualKey
from sandbox.gateway._limits import RateLimiter
from sandbox.gateway._metrics import Metrics
from sandbox.gateway._recorder import BodyStore, CallRecord, Recorder
from sandbox.gateway._relay import Call, Outcome, RawResponse, StreamRelay, read_whole
from sandbox.gateway._tools import ToolGate, ToolsRefused, Why, offered_tools
from sandbox.gateway._upstream import (
    Endpoint,
    Unreachable,
    dispatch,
    forward_headers,
    reply_headers,
)
from sandbox.gateway._usage import Api, StreamTracker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["Gateway"]

MAX_BODY = 32 * 1024 * 1024
_KEY_CACHE_S = 1.0
# Tokens are at least a byte of the request each; this covers what providers add on top
# (the tool-use system prompt, message framing).
_INPUT_OVERHEAD_TOKENS = 2048


# How long a thread holding the GIL keeps it while another waits. Python's default (5 ms) let
# the audit writer's CPU work (redaction, hashing, JSON) hold up the event loop for whole
# milliseconds: a streamed call's headers reached the client ~5 ms late at 50 calls/s.
_SWITCH_INTERVAL = 0.0005


def _family(api: Api) -> ApiFamily:
    return ApiFamily.ANTHROPIC if api is Api.MESSAGES else ApiFamily.OPENAI


def _error(
    family: ApiFamily, kind: Kind, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> RawResponse:
    status, body = error_body(family, kind, message)
    return RawResponse(status, [(b"content-type", b"application/json"), *(headers or [])], body)


def _presented_key(request: Incoming) -> str | None:
    h = request.headers
    if h.get("x-api-key"):
        return h["x-api-key"]
    auth = h.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return h.get("api-key") or None


async def _served_by_gateway_app(_request: Request) -> Response:
    raise AssertionError("the model endpoints are served by GatewayApp")


def _output_cap(api: Api, body: dict[str, object], default: int) -> tuple[int, bool]:
    """The request's output cap; one is added (the gateway's default) when it has none."""
    names = {
        Api.MESSAGES: ("max_tokens",),
        Api.CHAT: ("max_completion_tokens", "max_tokens"),
        Api.RESPONSES: ("max_output_tokens",),
    }[api]
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, False
    body[names[0]] = default
    return default, True


class Gateway:
    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        self.home = home
        self.keys = KeyStore.at_home(home)
        self.ledger = Ledger(load=self.keys.spent)
        self._key_cache: dict[str, tuple[float, VirtualKey | None]] = {}
        self.limits = RateLimiter()
        self.scanner = Scanner(config.secrets())
        self.metrics = Metrics()
        # Every gateway (serve, embedded, `sandbox serve`'s /llm) has the writer thread: lower
        # the interpreter's switch interval for the event loop's sake, never raising it.
        sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_INTERVAL))
        self.recorder = Recorder(
            AuditLog(HomeLayout(home).audit),
            BodyStore(home / "gateway" / "bodies"),
            self.scanner,
            KeyStore(self.keys.path).add_spend,  # its own connection, on the writer thread
        )
        self.http: aiohttp.ClientSession | None = None
        # A run's in-process gateway: told at once of a request refused for its tools (`sandbox
        # agent` stops its agent), and whether the agent has reached our MCP server yet.
        self.gate: ToolGate | None = None

    def reload(self, config: Config) -> None:
        """Swap in a new config; calls in flight keep the one they were admitted under."""
        self.config = config
        self.scanner = Scanner(config.secrets())
        self.recorder.scanner = self.scanner

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
        self.http = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, connector=aiohttp.TCPConnector(limit=0)
        )
        try:
            yield
        finally:
            await self.http.close()
            self.recorder.flush()

    def app(self) -> Starlette:
        models = {
            "/anthropic/v1/messages": Api.MESSAGES,
            "/openai/v1/chat/completions": Api.CHAT,
            "/openai/v1/responses": Api.RESPONSES,
        }

        def starlette(
            handler: Callable[[Incoming], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                return await handler(await Incoming.of(request, MAX_BODY))

            return endpoint

        routes = [
            Route("/healthz", self._healthz),
            Route("/metrics", self._metrics),
            # The model endpoints' POSTs never get here (GatewayApp): these answer 405 otherwise.
            *(Route(path, _served_by_gateway_app, methods=["POST"]) for path in models),
            Route("/anthropic/v1/messages/count_tokens", starlette(self._count_tokens), methods=["POST"]),
            Route("/anthropic/v1/models", starlette(self._models_anthropic)),
            Route("/openai/v1/models", starlette(self._models_openai)),
        ]
        return GatewayApp(models, self.call, MAX_BODY, routes, self._lifespan)

    async def _healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _metrics(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    def _lookup(self, presented: str) -> VirtualKey | None:
        """The key's record, read at most once a second per key (a revocation takes effect
        within a second; the database is not read on every request)."""
        now = time.monotonic()
        hit = self._key_cache.get(presented)
        if hit is not None and now - hit[0] < _KEY_CACHE_S:
            return hit[1]
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        key = self.keys.lookup(presented)
        self._key_cache[presented] = (now, key)
        return key

    def _auth(self, request: Incoming, family: ApiFamily) -> VirtualKey | RawResponse:
        presented = _presented_key(request)
        key = self._lookup(presented) if presented else None
        if key is None or not key.usable(time.time()):
            self.metrics.child(self.metrics.refused, "auth").inc()
            why = "missing" if presented is None else ("invalid" if key is None else key.status(time.time()))
            return _error(family, Kind.AUTH, f"gateway key {why}")
        return key

    def _body(self, request: Incoming, family: ApiFamily) -> dict[str, object] | RawResponse:
        if request.over:
            return _error(family, Kind.TOO_LARGE, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _error(family, Kind.INVALID, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(family, Kind.INVALID, "request body must be a JSON object with a model")
        return body

    def _audit_block(
        self, key: VirtualKey, api: Api, model: str, reason: str, rule: str, **extra: object
    ) -> None:
        self.metrics.child(self.metrics.refused, reason).inc()
        self.recorder.submit(
            CallRecord(
                AuditEvent.LLM_BLOCKED,
                key.run,
                key.session,
                {"key": key.id, "api": str(api), "model": model, "reason": reason, "rule": rule, **extra},
            )
        )

    def _refuse_tools(self, key: VirtualKey, api: Api, body: dict[str, object]) -> RawResponse | None:
        """A key with a tool restriction: a request offering any other tool never reaches the
        model (nothing dispatched, reserved or spent); audited, and the run told at once."""
        if key.tools is None:
            return None
        offered, gate = offered_tools(api, body), self.gate
        refused = ToolsRefused(key.id, key.run, key.session, key.tools.foreign(offered))
        if not refused.tools and offered and gate and gate.ready and not gate.ready():
            refused = replace(refused, tools=tuple(sorted(set(offered))), why=Why.BEFORE_SERVER)
        if not refused.tools:
            return None
        self._audit_block(key, api, str(body["model"]), "tools", refused.rule(),
                          tools=list(refused.tools), why=str(refused.why))
        if gate is not None and gate.on_refused is not None:
            gate.on_refused(refused)
        allowed = ", ".join(sorted(key.tools.allowed)) or "none"
        return _error(_family(api), Kind.TOOLS, f"{refused.message()} (this key allows: {allowed})")

    def _scopes(self, key: VirtualKey, cfg: Config) -> list[Scope]:
        day = time.strftime("%Y-%m-%d", time.gmtime())  # UTC
        scopes = [Scope(f"key:{key.id}", key.budget_usd)]
        if key.session:
            scopes.append(Scope(f"session:{key.session}", cfg.budget_session))
        scopes += [
            Scope(f"day:{day}", cfg.budget_day),
            Scope(f"month:{day[:7]}", cfg.budget_month),
        ]
        return scopes

    def _admit(self, request: Incoming, api: Api) -> tuple[VirtualKey, dict[str, object]] | RawResponse:
        """The key, the body and the key's model allowlist: what every model endpoint checks."""
        family = _family(api)
        key = self._auth(request, family)
        if isinstance(key, RawResponse):
            return key
        body = self._body(request, family)
        if isinstance(body, RawResponse):
            return body
        model = str(body["model"])
        if key.models and not any(fnmatch.fnmatchcase(model, g) for g in key.models):
            self._audit_block(key, api, model, "model", "key allowlist")
            return _error(family, Kind.FORBIDDEN, f"model {model} is not allowed for this key")
        refused = self._refuse_tools(key, api, body)
        if refused is not None:
            return refused
        return key, body

    async def call(self, request: Incoming, api: Api) -> Response:
        cfg, family, started = self.config, _family(api), time.monotonic()
        admitted = self._admit(request, api)
        if isinstance(admitted, RawResponse):
            return admitted
        key, body = admitted
        model = str(body["model"])
        # A restricted key's request leaves as the gateway read it (re-encoded): raw bytes with a
        # key twice (`"tools"` foreign first, ours last) could mean other tools to the provider.
        changed = key.tools is not None
        if cfg.content is not ContentMode.OFF:
            # Likewise for the content policy: the scan reads the parsed body, where a repeated
            # key's last value wins; a provider keeping the first would get what was never read.
            changed = True
            rules = self.scanner.rules(strings(body))
            if rules and cfg.content is ContentMode.BLOCK:
                rule = sorted(rules)[0]
                self._audit_block(key, api, model, "content", rule)
                return _error(
                    family, Kind.INVALID, f"request blocked by the gateway's content policy: rule {rule}"
                )
            if rules:
                redacted = redact_json(self.scanner, body, set())
                assert isinstance(redacted, dict)
                body, changed = redacted, True
        providers = cfg.route(model, family)
        if not providers:
            return _error(family, Kind.NOT_FOUND, f"model {model} is not routed by this gateway")
        price = cfg.price(model)
        if price is None:
            if not cfg.allow_unpriced:
                return _error(
                    family, Kind.INVALID, f"model {model} has no price; the gateway refuses unpriced models"
                )
            price = Price(0.0, 0.0)
        stream = body.get("stream") is True
        max_out, capped = _output_cap(api, body, cfg.default_max_tokens)
        changed = changed or capped
        hide_usage = False
        if api is Api.CHAT and stream:
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                changed = True
                hide_usage = True
        # Unchanged requests leave as the client sent them (no re-encoding of long transcripts).
        payload = json.dumps(body).encode() if changed else request.body
        limited = self.limits.admit(key.id, cfg.limits, stream)
        if limited is not None:
            self.metrics.child(self.metrics.refused, "rate").inc()
            why, after = limited
            return _error(family, Kind.RATE, why, [(b"retry-after", str(after).encode())])
        in_rate = max(price.input, price.read_rate, price.write_rate)
        worst = ((len(payload) + _INPUT_OVERHEAD_TOKENS) * in_rate + max_out * price.output) / 1e6
        res = self.ledger.reserve(self._scopes(key, cfg), worst)
        if isinstance(res, Refusal):
            self.limits.done(key.id, stream, 0)
            self.metrics.child(self.metrics.refused, "budget").inc()
            return _error(family, Kind.BUDGET, res.message())
        self.metrics.inflight.inc()
        self.metrics.reserved.inc(worst)
        call = Call(key, api, model, stream, body, price, res, started, self._settle,
                    scanned=cfg.content is not ContentMode.OFF)
        assert self.http is not None
        try:
            sent = await dispatch(self.http, providers, Endpoint.of(api), model,
                                  forward_headers(request.headers), payload, request.query)
        except Unreachable as exc:
            call.settle(Outcome(502, None, False, b""))
            return _error(family, Kind.UPSTREAM, str(exc))
        except BaseException:
            call.settle(Outcome(499, None, False, b""))
            raise
        call.provider, call.attempts = sent.provider, sent.attempts
        ctype = sent.response.headers.get("content-type", "")
        if stream and sent.response.status < 400:
            tracker = StreamTracker(api, hide_usage_chunk=hide_usage)
            if ctype.startswith("application/vnd.amazon.eventstream"):
                from sandbox.gateway._cloud import BedrockStream

                return StreamRelay(call, sent.response, tracker, BedrockStream().feed)
            if ctype.startswith("text/event-stream"):
                return StreamRelay(call, sent.response, tracker)
        return await read_whole(call, sent.response)

    def _settle(self, call: Call, out: Outcome) -> None:
        if out.status >= 400:
            cost = 0.0  # providers do not bill refused or failed calls
        elif out.usage is not None and out.complete:
            cost = out.usage.cost(call.price)
        else:
            cost = call.reservation.amount  # no final usage report: charge the worst case
        spend = self.ledger.settle(call.reservation, cost)
        usage = out.usage
        self.limits.done(call.key.id, call.stream, usage.total if usage else 0)
        m, now = self.metrics, time.monotonic()
        m.inflight.dec()
        m.reserved.dec(call.reservation.amount)
        provider = call.provider.name if call.provider else ""
        m.child(m.calls, str(call.api), provider, call.model, str(out.status)).inc()
        m.child(m.latency, str(call.api)).observe(now - call.started)
        if call.ttfb is not None:
            m.child(m.ttfb, str(call.api)).observe(call.ttfb)
        if usage:
            for kind, n in (
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_write", usage.cache_write),
            ):
                if n:
                    m.child(m.tokens, call.model, kind).inc(n)
        if cost:
            m.child(m.cost, call.model).inc(cost)
        data: dict[str, object] = {
            "key": call.key.id,
            "api": str(call.api),
            "provider": provider,
            "model": call.model,
            "status": out.status,
            "stream": call.stream,
            "input_tokens": usage.input if usage else 0,
            "output_tokens": usage.output if usage else 0,
            "cache_read_tokens": usage.cache_read if usage else 0,
            "cache_write_tokens": usage.cache_write if usage else 0,
            "cost_usd": round(cost, 9),
            "reserved_usd": round(call.reservation.amount, 9),
            "usage_complete": out.complete,
            "latency_ms": round((now - call.started) * 1000, 3),
            "ttfb_ms": round(call.ttfb * 1000, 3) if call.ttfb is not None else None,
            "attempts": call.attempts,
        }
        if out.disconnected:
            data["client_disconnected"] = True
        if out.broken:
            data["upstream_broken"] = True
        self.recorder.submit(
            CallRecord(
                AuditEvent.LLM_CALL,
                call.key.run,
                call.key.session,
                data,
                request=call.request,
                response=out.response or None,
                api=call.api,
                request_clean=call.scanned,
                spend=spend,
            )
        )

    async def _count_tokens(self, request: Incoming) -> Response:
        family = ApiFamily.ANTHROPIC
        admitted = self._admit(request, Api.MESSAGES)
        if isinstance(admitted, RawResponse):
            return admitted
        _, body = admitted
        providers = [p for p in self.config.route(str(body["model"]), family) if p.type.value == "anthropic"]
        if not providers:
            return _error(family, Kind.NOT_FOUND, f"model {body['model']} is not routed")
        assert self.http is not None
        try:
            sent = await dispatch(
                self.http,
                providers,
                Endpoint.COUNT_TOKENS,
                str(body["model"]),
                forward_headers(request.headers),
                json.dumps(body).encode(),
                request.query,
            )
        except Unreachable as exc:
            return _error(family, Kind.UPSTREAM, str(exc))
        async with sent.response as resp:
            data = await resp.read()
            return RawResponse(resp.status, reply_headers(resp.headers), data)

    def _model_ids(self, key: VirtualKey, family: ApiFamily) -> list[str]:
        names: list[str] = []
        for pattern, _ in (*self.config.routes, *self.config.prices):
            if any(c in pattern for c in "*?[") or pattern in names:
                continue
            if self.config.route(pattern, family) and (
                not key.models or any(fnmatch.fnmatchcase(pattern, g) for g in key.models)
            ):
                names.append(pattern)
        return names

    async def _models_anthropic(self, request: Incoming) -> Response:
        key = self._auth(request, ApiFamily.ANTHROPIC)
        if isinstance(key, RawResponse):
            return key
        ids = self._model_ids(key, ApiFamily.ANTHROPIC)
        data = [
            {"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids
        ]
        return JSONResponse(
            {
                "data": data,
                "has_more": False,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
        )

    async def _models_openai(self, request: Incoming) -> Response:
        key = self._auth(request, ApiFamily.OPENAI)
        if isinstance(key, RawResponse):
            return key
        data = [
            {"id": i, "object": "model", "created": 0, "owned_by": "sandbox-gateway"}
            for i in self._model_ids(key, ApiFamily.OPENAI)
        ]
        return JSONResponse({"object": "list", "data": data})
