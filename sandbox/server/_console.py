"""The web console: server-rendered pages, one small same-origin script, no CDN.

Safety: every value from a session (paths, diff lines, reasons, argv) is HTML-escaped text;
diff lines arrive already escaped for display by review's `esc` (control, bidi and zero-width
characters become visible escapes), so nothing in a diff can run, restyle or reorder the page.
A strict Content-Security-Policy (scripts and styles only from this origin) backs that up.
Decisions are POSTed by the script with the CSRF token from the page (see _auth).
"""

from __future__ import annotations

import asyncio
import hmac
import html
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.errors import SandboxError
from sandbox.server._auth import COOKIE, Denied, Principal, authenticate, csrf_token
from sandbox.server._failures import log_failure
from sandbox.server._highlight import MAX_ROWS, highlighter
from sandbox.server._tokens import Role

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from starlette.requests import Request

    from sandbox.server._app import Server

__all__ = ["console_routes"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def _t(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, who: Principal | None, server: Server) -> HTMLResponse:
    csrf = csrf_token(server.csrf_key, who.secret) if who and who.via == "cookie" else ""
    user = f"{_t(who.name)} ({_t(who.role)})" if who else ""
    if csrf:
        user += ("<form method=\"post\" action=\"/logout\" class=\"logout\">"
                 f"<input type=\"hidden\" name=\"csrf\" value=\"{_t(csrf)}\">"
                 "<button>Log out</button></form>")
    return HTMLResponse(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"csrf\" content=\"{_t(csrf)}\"><title>{_t(title)} · sandbox</title>"
        "<link rel=\"stylesheet\" href=\"/static/console.css\">"
        "<script src=\"/static/console.js\" defer></script></head><body>"
        "<nav><a href=\"/\">Pending</a> <a href=\"/report\">Report</a>"
        f"<span class=\"who\">{user}</span></nav><main>{body}</main></body></html>",
        headers=_HEADERS)


def _marks(risk: Mapping[str, object]) -> str:
    out = []
    for key, cls in (("forbidden", "bad"), ("protected", "warn"), ("conflicts", "warn")):
        n = risk.get(key)
        if isinstance(n, int) and n:
            out.append(f"<span class=\"mark {cls}\">{n} {_t(key)}</span>")
    return " ".join(out) or "<span class=\"mark ok\">low risk</span>"


def _pending_page(sessions: list[dict[str, object]]) -> str:
    rows = []
    for s in sessions:
        risk = s.get("risk")
        lines = s.get("lines") if isinstance(s.get("lines"), dict) else {}
        assert isinstance(lines, dict)
        rows.append(
            f"<tr data-session=\"{_t(s['id'])}\"><td><a href=\"/s/{quote(str(s['id']))}\">"
            f"{_t(s['id'])}</a></td><td>{_t(s['workspace'])}</td><td>{_t(s['level'])}</td>"
            f"<td>{_t(s['changes'])} (+{_t(lines.get('added', 0))} "
            f"-{_t(lines.get('removed', 0))})</td>"
            f"<td>{_marks(risk if isinstance(risk, dict) else {})}</td>"
            f"<td>{_t(s['verdict'])}</td><td>{_t(str(s['updated'])[:19])}</td></tr>")
    table = ("<table id=\"pending\"><thead><tr><th>session</th><th>workspace</th><th>level</th>"
             "<th>changes</th><th>risk</th><th>verdict</th><th>updated</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    return (f"<h1>Pending changes <small>({len(sessions)})</small></h1>"
            + (table if sessions else "<p>Nothing waits for a person.</p>"))


def _file_html(f: dict[str, object]) -> str:
    path, marks = str(f["path"]), f.get("marks") or []
    assert isinstance(marks, list)
    badges = " ".join(f"<span class=\"mark {'bad' if m == 'FORBIDDEN' else 'warn'}\">{_t(m)}"
                      "</span>" for m in marks)
    lines, current = [], None
    rows = f["rows"]
    assert isinstance(rows, list)
    paint = highlighter(path) if len(rows) <= MAX_ROWS else None
    for kind, text, part in rows:
        if kind == "hunk" and part is not None:
            if current is not None:
                lines.append("</div>")
            current = part
            lines.append(
                f"<div class=\"hunk\" data-hunk=\"{int(part) + 1}\"><div class=\"hunkbar\">"
                f"<code>{_t(text)}</code> <button data-act=\"approve\" data-hunk=\"{int(part) + 1}\">"
                f"approve hunk</button> <button data-act=\"reject\" data-hunk=\"{int(part) + 1}\">"
                "reject hunk</button></div>")
            continue
        if paint is not None and kind in ("add", "del", "context") and text:
            body = _t(text[0]) + paint(text[1:])  # the sign, then the code
        else:
            body = _t(text)
        lines.append(f"<pre class=\"{_t(kind)}\">{body}</pre>")
    if current is not None:
        lines.append("</div>")
    return (f"<section class=\"file\" data-path=\"{_t(path)}\" data-etag=\"{_t(f['etag'])}\">"
            f"<h3><code>{_t(path)}</code> <small>{_t(f['kind'])}</small> {badges}"
            f" <button data-act=\"approve\">approve file</button>"
            f" <button data-act=\"reject\">reject file</button></h3>"
            f"<div class=\"rows\">{''.join(lines)}</div></section>")


def _session_page(s: dict[str, object], d: dict[str, object]) -> str:
    files = d.get("files") if isinstance(d.get("files"), list) else []
    assert isinstance(files, list)
    usage = s.get("usage") if isinstance(s.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    timeline = s.get("timeline") if isinstance(s.get("timeline"), list) else []
    assert isinstance(timeline, list)
    trows = "".join(
        f"<tr><td>{_t(str(r['ts'])[:19])}</td><td>{_t(r['event'])}</td><td>{_t(r['actor'])}"
        f"</td><td><code>{_t(_brief(r.get('data')))}</code></td></tr>" for r in timeline[-200:])
    return (
        f"<h1>Session <code id=\"sid\">{_t(s['id'])}</code></h1>"
        f"<p>{_t(s['workspace'])} · level {_t(s['level'])} · <b id=\"state\">{_t(s['state'])}"
        f"</b> · {_marks(s.get('risk') or {})} · {_t(s['verdict'])}</p>"  # type: ignore[arg-type]
        f"<p class=\"usage\">LLM: {_t(usage.get('llm_calls', 0))} calls, "
        f"{_t(usage.get('input_tokens', 0))} in + {_t(usage.get('output_tokens', 0))} out "
        f"tokens, {_t(round(float(usage.get('cost_usd', 0) or 0), 4))} USD"
        + (f" of a {_t(s['budget_usd'])} USD session budget" if s.get("budget_usd") else "")
        + "</p>"
        "<p><label>Message <input id=\"message\" size=\"60\" maxlength=\"10000\"></label> "
        "<span id=\"status\" role=\"status\"></span></p>"
        "<div id=\"live\"><h2>Live</h2><ul id=\"written\"></ul><ul id=\"conflicts\"></ul></div>"
        f"<h2>Changes ({len(files)})</h2>"
        + "".join(_file_html(f) for f in files if isinstance(f, dict))
        + f"<h2>Timeline</h2><table class=\"timeline\">{trows}</table>")


def _brief(data: object) -> str:
    if not isinstance(data, dict):
        return ""
    text = " ".join(f"{k}={v}" for k, v in data.items())
    return text if len(text) <= 200 else text[:199] + "…"


def _static(name: str) -> bytes:
    return resources.files("sandbox.server").joinpath("static", name).read_bytes()


def console_routes(server: Server) -> list[Route]:
    from sandbox.server import _sessions

    def page(needed: Role, build: Callable[[Request, Principal], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who = authenticate(request, server.tokens, server.logins, socket_owner=server.socket_owner,
                                   csrf_key=server.csrf_key, needed=needed)
            except Denied as exc:
                if exc.status == 401:
                    return RedirectResponse("/login", status_code=303)
                return HTMLResponse(f"<p>{_t(exc.message)}</p>", exc.status, headers=_HEADERS)
            try:
                return await build(request, who)
            except SandboxError as exc:
                from sandbox.server._api import status_of

                if status_of(exc) < 500:  # the request was wrong: say how
                    return _page("error", f"<p class=\"error\">{_t(exc)}</p>", who, server)
                return _failed(request, exc, who)
            except Exception as exc:  # a bug of ours: logged under an id, never shown
                return _failed(request, exc, who)

        return endpoint

    def _failed(request: Request, exc: Exception, who: Principal) -> Response:
        eid = log_failure(request, exc)
        resp = _page("error", "<h1>Something went wrong</h1><p class=\"error\">The server "
                     f"could not show this page (error id <code id=\"error-id\">{_t(eid)}</code>)"
                     ". Its log has the details under that id.</p>", who, server)
        resp.status_code = 500
        return resp

    async def pending(_request: Request, who: Principal) -> Response:
        sessions = await asyncio.to_thread(_sessions.list_sessions, server, "pending", 1000)
        return _page("pending", _pending_page(sessions), who, server)

    async def session(request: Request, who: Principal) -> Response:
        sid = request.path_params["sid"]
        s = await asyncio.to_thread(_sessions.session_json, server, sid)
        d = await asyncio.to_thread(_sessions.diff_json, server, sid)
        return _page(f"session {sid}", _session_page(s, d), who, server)

    async def report(request: Request, _who: Principal) -> Response:
        from sandbox.report import build_report, render_html

        data = await asyncio.to_thread(build_report, server.audit)
        # The report page is self-contained: inline styles, no script at all.
        return HTMLResponse(render_html(data), headers={
            **_HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _page("log in", "<h1>Log in</h1><form method=\"post\" action=\"/login\">"
                         "<label>Token <input type=\"password\" name=\"token\" size=\"50\">"
                         "</label> <button>Log in</button></form>", None, server)
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return HTMLResponse("cross-origin login refused", 403, headers=_HEADERS)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        secret = (form.get("token") or [""])[0].strip()
        token = await asyncio.to_thread(server.tokens.lookup, secret) if secret else None
        if token is None:
            return _page("log in", "<p class=\"error\">Unknown token.</p>", None, server)
        # The cookie carries a new session id; the token itself goes no further than this line.
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, server.logins.open(token), httponly=True, samesite="strict",
                        path="/", secure=request.url.scheme == "https")
        return resp

    async def logout(request: Request) -> Response:
        """Ends the session the cookie names. The form carries the page's CSRF token: a
        cross-site page must not be able to log a person out either."""
        sid = request.cookies.get(COOKIE, "")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        sent = (form.get("csrf") or [""])[0]
        if sid and not hmac.compare_digest(sent, csrf_token(server.csrf_key, sid)):
            return HTMLResponse("missing or wrong CSRF token (reload the page)", 403,
                                headers=_HEADERS)
        if sid:
            server.logins.close(sid)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
        return resp

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        types = {"console.js": "text/javascript", "console.css": "text/css"}
        if name not in types:
            return Response("not found", 404)
        return Response(_static(name), media_type=types[name], headers=_HEADERS)

    return [
        Route("/", page(Role.VIEWER, pending)),
        Route("/s/{sid}", page(Role.VIEWER, session)),
        Route("/report", page(Role.VIEWER, report)),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/{name}", static),
    ]
