"""Who is asking, and may they: tokens, the socket owner, roles, and CSRF for the console.

- On the default unix socket (0600, in a 0700 dir) only its owner can connect, so a request
  without credentials acts as that owner (admin). Over TCP every request needs a token.
- API clients send `Authorization: Bearer TOKEN`. Browsers log in once with a token and get a
  console session (see _logins): an HttpOnly, SameSite=Strict cookie holding a random session
  id, never the token. Every state-changing request from a browser must also carry a CSRF token
  derived from the session id (a header) and, when the browser sends one, an Origin of this
  server. A cross-site page can neither read the CSRF token nor send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.server._tokens import Role

if TYPE_CHECKING:
    from starlette.requests import Request

    from sandbox.server._logins import Logins
    from sandbox.server._tokens import TokenStore

__all__ = ["COOKIE", "Denied", "Principal", "authenticate", "csrf_token"]

COOKIE = "sbx_session"  # a console session id (the old raw-token cookie is not accepted)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    via: str  # "token", "cookie" or "socket"
    secret: str = ""  # the bearer token, or the console session id the CSRF token derives from

    @property
    def actor(self) -> str:
        """How decisions are recorded: the person's name, with how they were identified."""
        return self.name if self.via == "socket" else f"{self.name} (serve token)"


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def csrf_token(key: bytes, secret: str) -> str:
    return hmac.new(key, b"csrf\0" + secret.encode(), hashlib.sha256).hexdigest()


def _owner() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def authenticate(request: Request, tokens: TokenStore, logins: Logins, *, socket_owner: bool,
                 csrf_key: bytes, needed: Role) -> Principal:
    """The principal of `request`, or Denied(401|403). `socket_owner`: the server listens on
    its owner-only unix socket, so a request without credentials is the owner's."""
    auth = request.headers.get("authorization", "")
    secret, via = "", ""
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Denied(401, "Authorization must be `Bearer TOKEN`")
        secret, via = value.strip(), "token"
    elif request.cookies.get(COOKIE):
        secret, via = request.cookies[COOKIE], "cookie"
    if not secret:
        if not socket_owner:
            raise Denied(401, "a token is required (sandbox serve token create)")
        principal = Principal(_owner(), Role.ADMIN, "socket")
    elif via == "cookie":
        login = logins.resolve(secret)
        if login is None:
            raise Denied(401, "the console session ended (expired, logged out or token revoked)")
        principal = Principal(login.name, login.role, via, secret)
    else:
        token = tokens.lookup(secret)
        if token is None:
            raise Denied(401, "unknown or revoked token")
        principal = Principal(token.name, token.role, via, secret)
    if via == "cookie" and request.method not in _SAFE:
        _check_csrf(request, principal, csrf_key)
    if not principal.role.allows(needed):
        raise Denied(403, f"{principal.name} is a {principal.role}; this needs {needed}")
    return principal


def _check_csrf(request: Request, principal: Principal, key: bytes) -> None:
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin.split("://", 1)[-1] != host:
        raise Denied(403, f"cross-origin request from {origin} refused")
    sent = request.headers.get("x-csrf-token", "")
    if not hmac.compare_digest(sent, csrf_token(key, principal.secret)):
        raise Denied(403, "missing or wrong CSRF token (reload the page)")
