"""Admin endpoints: people's tokens, and the gateway's virtual keys with their budgets.
Secrets are returned once, at creation, and never listed."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.errors import UsageError
from sandbox.server._api import Handler, guarded, read_json
from sandbox.server._tokens import Role

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request
    from starlette.responses import Response

    from sandbox.server._app import Server
    from sandbox.server._auth import Principal

__all__ = ["admin_routes"]


def _number(body: dict[str, object], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UsageError(f"{key} must be a number >= 0")
    return float(value)


def admin_routes(server: Server) -> list[Route]:
    from sandbox.gateway import KeyStore

    def keys() -> KeyStore:
        return KeyStore.at_home(server.layout.root)

    async def tokens_list(_request: Request, _who: Principal) -> Response:
        rows = await asyncio.to_thread(server.tokens.list)
        return JSONResponse({"tokens": [{"id": t.id, "name": t.name, "role": str(t.role),
                                         "created": t.created} for t in rows]})

    async def tokens_create(request: Request, _who: Principal) -> Response:
        body = await read_json(request)
        if set(body) - {"name", "role"} or not isinstance(body.get("name"), str):
            raise UsageError('expected {"name": "...", "role": "viewer|reviewer|admin"}')
        try:
            role = Role(str(body.get("role")))
        except ValueError as exc:
            raise UsageError("role must be viewer, reviewer or admin") from exc
        token, secret = await asyncio.to_thread(server.tokens.create, str(body["name"]), role)
        return JSONResponse({"id": token.id, "name": token.name, "role": str(token.role),
                             "token": secret}, status_code=201)

    async def tokens_revoke(request: Request, _who: Principal) -> Response:
        gone = await asyncio.to_thread(server.tokens.revoke, request.path_params["tid"])
        server.logins.close_token(gone.id)  # its console sessions end with it
        return JSONResponse({"revoked": gone.id})

    async def keys_list(_request: Request, _who: Principal) -> Response:
        def read() -> list[dict[str, object]]:
            store, now = keys(), time.time()
            try:
                return list(store.listing(now))
            finally:
                store.close()

        return JSONResponse({"keys": await asyncio.to_thread(read)})

    async def keys_create(request: Request, _who: Principal) -> Response:
        body = await read_json(request)
        unknown = set(body) - {"label", "budget_usd", "ttl_s", "models"}
        if unknown:
            raise UsageError(f"unknown field(s): {', '.join(sorted(unknown))}")
        models = body.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise UsageError("models must be a list of model globs")
        label = body.get("label")
        if label is not None and not isinstance(label, str):
            raise UsageError("label must be a string")
        budget, ttl = _number(body, "budget_usd"), _number(body, "ttl_s")

        def create() -> tuple[str, str]:
            store = keys()
            try:
                secret, vk = store.create(label=label, budget_usd=budget, ttl_s=ttl,
                                          models=models)
                return secret, vk.id
            finally:
                store.close()

        secret, key_id = await asyncio.to_thread(create)
        return JSONResponse({"id": key_id, "key": secret}, status_code=201)

    async def keys_revoke(request: Request, _who: Principal) -> Response:
        def revoke() -> str:
            store = keys()
            try:
                return store.revoke(request.path_params["kid"]).id
            finally:
                store.close()

        return JSONResponse({"revoked": await asyncio.to_thread(revoke)})

    def admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return guarded(server, Role.ADMIN, handler)

    v = "/api/v1"
    return [
        Route(f"{v}/tokens", admin(tokens_list)),
        Route(f"{v}/tokens", admin(tokens_create), methods=["POST"]),
        Route(f"{v}/tokens/{{tid}}", admin(tokens_revoke), methods=["DELETE"]),
        Route(f"{v}/gateway/keys", admin(keys_list)),
        Route(f"{v}/gateway/keys", admin(keys_create), methods=["POST"]),
        Route(f"{v}/gateway/keys/{{kid}}", admin(keys_revoke), methods=["DELETE"]),
    ]
