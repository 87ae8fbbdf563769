"""Console log-ins through a real `sandbox serve`: the browser's cookie is a session id, never
the API token; the session ends at log-out and the moment its token is revoked (by the CLI in
another process, or by the API); a stolen raw token does not work as a cookie. And a failure of
the server shows the person an id to quote, never its details."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from tests.conftest import Cli
from tests.support.serve import Client, free_port, make_token, serving

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Console:
    cli: Cli
    anon: Client
    admin: Client
    token: str  # a reviewer's API token
    token_id: str


@pytest.fixture
def console(cli: Cli) -> Iterator[Console]:
    token = make_token(cli, "rita", "reviewer")
    admin = make_token(cli, "ada", "admin")
    rows = json.loads(cli("serve", "token", "ls", "--json", check=True).stdout)
    tid = next(r["id"] for r in rows if r["name"] == "rita")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        anon = Client(listen)
        yield Console(cli, anon, anon.with_token(admin), token, tid)


def _login(c: Console) -> str:
    r = c.anon.post("/login", f"token={c.token}".encode(), headers=FORM)
    assert r.status == 303 and r.headers["location"] == "/", r.body
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    cookie = set_cookie.split(";")[0]
    assert cookie.startswith("sbx_session=")
    return cookie


def _works(c: Console, cookie: str) -> bool:
    """The cookie still opens the console (a page, and the API behind it)."""
    page = c.anon.get("/", headers={"Cookie": cookie})
    api = c.anon.get("/api/v1/whoami", headers={"Cookie": cookie})
    if page.status == 200:
        assert api.status == 200 and api.json() == {"name": "rita", "role": "reviewer",
                                                    "via": "cookie"}
        return True
    assert page.status == 303 and page.headers["location"] == "/login"  # back to log-in
    assert api.status == 401
    return False


def _csrf(c: Console, cookie: str) -> str:
    page = c.anon.get("/", headers={"Cookie": cookie})
    m = re.search(rb'<meta name="csrf" content="([0-9a-f]{64})">', page.body)
    assert m is not None
    return m.group(1).decode()


def test_the_cookie_is_a_session_id_never_the_token(console: Console) -> None:
    cookie = _login(console)
    value = cookie.split("=", 1)[1]
    assert console.token not in cookie and console.token.removeprefix("sbx_") not in value
    assert _works(console, cookie)
    # Someone who copied the raw token into a cookie (the old scheme) gets nothing.
    assert not _works(console, f"sbx_session={console.token}")
    assert not _works(console, f"sbx_token={console.token}")
    # Nothing the server wrote holds the raw token (tokens are kept as sha256 only).
    for f in console.cli.home.rglob("*"):
        if f.is_file() and not f.is_symlink():
            assert console.token.encode() not in f.read_bytes(), f


def test_revoking_the_token_ends_its_console_sessions_at_once(console: Console) -> None:
    first, second = _login(console), _login(console)
    assert _works(console, first) and _works(console, second)
    p = console.cli("serve", "token", "revoke", console.token_id)  # another process
    assert p.returncode == 0, p.stderr
    assert not _works(console, first) and not _works(console, second)
    # A decision with a CSRF token taken before the revocation is refused too.
    r = console.anon.post("/api/v1/sessions/none/approve", {"paths": ["x"]},
                          headers={"Cookie": first, "X-CSRF-Token": "0" * 64})
    assert r.status == 401


def test_revoking_through_the_api_ends_them_too(console: Console) -> None:
    cookie = _login(console)
    assert _works(console, cookie)
    r = console.admin.request("DELETE", f"/api/v1/tokens/{console.token_id}")
    assert r.status == 200, r.body
    assert not _works(console, cookie)


def test_logout_ends_the_session_and_needs_the_csrf_token(console: Console) -> None:
    cookie, other = _login(console), _login(console)
    csrf = _csrf(console, cookie)
    forced = console.anon.post("/logout", b"csrf=" + b"0" * 64, headers={**FORM, "Cookie": cookie})
    assert forced.status == 403 and _works(console, cookie)  # a cross-site page cannot log out
    out = console.anon.post("/logout", f"csrf={csrf}".encode(), headers={**FORM, "Cookie": cookie})
    assert out.status == 303 and out.headers["location"] == "/login"
    assert "sbx_session=" in out.headers["set-cookie"]  # the browser is told to drop it
    assert not _works(console, cookie)
    assert _works(console, other)  # another browser's session is its own


def test_a_failure_shows_an_id_and_logs_the_details(cli: Cli) -> None:
    token = make_token(cli, "rita", "reviewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen) as proc:
        c = Console(cli, Client(listen), Client(listen), token, "")
        cookie = _login(c)
        assert c.anon.get("/", headers={"Cookie": cookie}).status == 200
        db = HomeLayout(cli.home).db
        db.write_bytes(b"this is not a database " * 100)  # the store breaks under serve
        page = c.anon.get("/", headers={"Cookie": cookie})
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert page.status == 500, page.body
    m = re.search(rb'<code id="error-id">([0-9a-f]{12})</code>', page.body)
    assert m is not None, page.body
    eid = m.group(1).decode()
    # The person sees the id only: no traceback, no exception text, no path of the state.
    assert b"Traceback" not in page.body and str(db).encode() not in page.body
    assert b"not a database" not in page.body
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    # serve's log has the details under that id.
    logged = err[err.index(f"internal error {eid} on GET '/'"):]
    assert "Traceback" in logged and "not a database" in logged, err


def test_over_tls_the_cookie_is_secure(cli: Cli, tmp_path: Path) -> None:
    import http.client
    import ssl

    from tests.integration.test_gateway_cli import _self_signed

    cert, key = _self_signed(tmp_path)
    token = make_token(cli, "rita", "reviewer")
    port = free_port()
    with serving(cli, f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key)):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                           context=ssl.create_default_context(cafile=str(cert)))
        conn.request("POST", "/login", body=f"token={token}".encode(), headers=FORM)
        reply = conn.getresponse()
        reply.read()
        conn.close()
    assert reply.status == 303
    attrs = [a.strip().lower() for a in reply.getheader("set-cookie", "").split(";")]
    assert attrs[0].startswith("sbx_session=") and token.lower() not in attrs[0]
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= set(attrs)
