"""Sessions through a real `sandbox serve`: the pending list, diffs, approve/reject per file
and per hunk, who may decide, and stale or malformed decisions that must change nothing."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.audit import AuditLog
from tests.conftest import Cli
from tests.support.serve import Client, check_stream_bound, free_port, make_token, serving

README = "".join(f"line {i}\n" for i in range(1, 31))


@dataclass(frozen=True)
class Served:
    cli: Cli
    ws: Path
    session: str
    reviewer: Client
    viewer: Client
    anon: Client


def pending_session(cli: Cli, ws: Path, session: str) -> None:
    """README changed in two hunks far apart, and a new file: held at level 2."""
    (ws / "README.md").write_text(README)
    script = ("sed -i -e 's/^line 2$/line two/' -e 's/^line 28$/line twenty-eight/' README.md"
              " && printf 'new\\n' > new.txt")
    p = cli("run", "--level", "2", "--session", session, "--", "sh", "-c", script, cwd=ws)
    assert p.returncode == 0, p.stderr


@pytest.fixture
def served(cli: Cli, workspace: Path) -> Iterator[Served]:
    pending_session(cli, workspace, "fix-1")
    rita, vera = make_token(cli, "rita", "reviewer"), make_token(cli, "vera", "viewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        base = Client(listen)
        yield Served(cli, workspace, "fix-1", base.with_token(rita), base.with_token(vera), base)


def _diff(c: Client, sid: str) -> dict[str, dict[str, object]]:
    r = c.get(f"/api/v1/sessions/{sid}/diff")
    assert r.status == 200, r.body
    files = r.json()["files"]
    assert isinstance(files, list)
    return {f["path"]: f for f in files}


def test_pending_list_and_diff(served: Served) -> None:
    rows = served.viewer.get("/api/v1/sessions?state=pending").json()["sessions"]
    assert isinstance(rows, list) and [s["id"] for s in rows] == ["fix-1"]
    assert rows[0]["changes"] == 2 and rows[0]["level"] == 2
    files = _diff(served.viewer, "fix-1")
    assert set(files) == {"README.md", "new.txt"}
    assert files["README.md"]["hunks"] == 2 and len(str(files["README.md"]["etag"])) == 32
    assert served.viewer.get("/api/v1/sessions/nope/diff").status == 404
    assert served.viewer.get("/api/v1/sessions?state=bogus").status == 400


def _unchanged(s: Served) -> None:
    assert (s.ws / "README.md").read_text() == README and not (s.ws / "new.txt").exists()
    assert set(_diff(s.viewer, s.session)) == {"README.md", "new.txt"}


def test_authorization_refuses_and_changes_nothing(served: Served) -> None:
    body = {"paths": ["new.txt"]}
    assert served.anon.post("/api/v1/sessions/fix-1/approve", body).status == 401
    r = served.viewer.post("/api/v1/sessions/fix-1/approve", body)
    assert r.status == 403 and b"viewer" in r.body
    assert served.viewer.post("/api/v1/sessions/fix-1/reject", body).status == 403
    _unchanged(served)


def test_bad_input_gets_4xx_and_changes_nothing(served: Served) -> None:
    c = served.reviewer
    url = "/api/v1/sessions/fix-1/approve"
    assert c.post(url, b"{not json").status == 400
    assert c.post(url, {"paths": "new.txt"}).status == 400
    assert c.post(url, {"paths": ["new.txt"], "bogus": 1}).status == 400
    assert c.post(url, {}).status == 400
    assert c.post(url, {"hunks": {"README.md": [0]}}).status == 400
    assert c.post(url, {"hunks": {"README.md": [3]}}).status == 400
    assert c.post(url, {"paths": ["nothing-here.txt"]}).status == 409
    assert c.post("/api/v1/sessions/no-such/approve", {"paths": ["x"]}).status == 404
    assert c.post(url, {"paths": ["new.txt"]}, headers={"Content-Type": "text/plain"}).status == 400
    _unchanged(served)


def test_approve_one_hunk_reject_the_other(served: Served) -> None:
    c = served.reviewer
    etag = _diff(c, "fix-1")["README.md"]["etag"]
    r = c.post("/api/v1/sessions/fix-1/approve", {"hunks": {"README.md": [1]},
               "message": "first hunk ok", "expect": {"README.md": etag}})
    assert r.status == 200, r.body
    assert r.json()["partial"] == [{"path": "README.md", "hunks": [1]}]
    text = (served.ws / "README.md").read_text()
    assert "line two\n" in text and "line twenty-eight" not in text
    left = _diff(c, "fix-1")["README.md"]
    assert left["hunks"] == 1
    r = c.post("/api/v1/sessions/fix-1/reject", {"hunks": {"README.md": [1]},
               "expect": {"README.md": left["etag"]}})
    assert r.status == 200, r.body
    assert set(_diff(c, "fix-1")) == {"new.txt"}
    assert "line twenty-eight" not in (served.ws / "README.md").read_text()
    r = c.post("/api/v1/sessions/fix-1/approve", {"paths": ["new.txt"]})
    assert r.status == 200 and r.json()["state"] == "committed", r.body
    assert (served.ws / "new.txt").read_text() == "new\n"
    # Every decision is on record with the person's name.
    decisions = [rec for rec in AuditLog(served.cli.home / "audit.log").records(session="fix-1")
                 if rec.event == "decision" and rec.actor != "policy"]
    assert decisions and all(d.actor == "rita (serve token)" for d in decisions)


def test_stale_approval_is_refused_and_changes_nothing(served: Served) -> None:
    c = served.reviewer
    seen = _diff(c, "fix-1")
    # The agent writes the file again after the page was loaded...
    p = served.cli("run", "--session", "fix-1", "--", "sh", "-c", "printf 'newer\\n' > new.txt",
                   cwd=served.ws)
    assert p.returncode == 0, p.stderr
    r = c.post("/api/v1/sessions/fix-1/approve",
               {"paths": ["new.txt"], "expect": {"new.txt": seen["new.txt"]["etag"]}})
    assert r.status == 409 and b"changed since the page was loaded" in r.body, r.body
    assert not (served.ws / "new.txt").exists()
    # ...or the person edits the workspace file the session changes.
    (served.ws / "README.md").write_text(README + "mine\n")
    r = c.post("/api/v1/sessions/fix-1/approve",
               {"hunks": {"README.md": [1]}, "expect": {"README.md": seen["README.md"]["etag"]}})
    assert r.status == 409, r.body
    assert (served.ws / "README.md").read_text() == README + "mine\n"
    assert set(_diff(c, "fix-1")) == {"README.md", "new.txt"}
    assert json.loads(served.cli("ls", "--json").stdout)  # the store still answers


def test_console_posts_need_the_csrf_token(served: Served) -> None:
    """A page on another site can make the browser send the cookie, not the page's CSRF token;
    and a foreign Origin is refused even with it."""
    import re

    token = served.reviewer.token
    assert token is not None
    login = served.anon.post("/login", f"token={token}".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 303
    forced = served.anon.post("/login", f"token={token}".encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
    assert forced.status == 403 and "set-cookie" not in forced.headers
    cookie = login.headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=strict" in login.headers["set-cookie"]
    report = served.anon.get("/report", headers={"Cookie": cookie})
    assert report.status == 200 and report.body.count(b"<svg") == 7
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    assert served.anon.get("/report").status == 303  # no cookie: to the login page
    page = served.anon.get("/s/fix-1", headers={"Cookie": cookie})
    assert page.status == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    m = re.search(rb'<meta name="csrf" content="([0-9a-f]{64})">', page.body)
    assert m is not None
    url, body = "/api/v1/sessions/fix-1/approve", {"paths": ["new.txt"]}
    r = served.anon.post(url, body, headers={"Cookie": cookie})
    assert r.status == 403 and b"CSRF" in r.body
    r = served.anon.post(url, body, headers={"Cookie": cookie, "X-CSRF-Token": m.group(1).decode(),
                                             "Origin": "http://evil.example"})
    assert r.status == 403 and b"cross-origin" in r.body
    _unchanged(served)
    r = served.anon.post(url, body, headers={"Cookie": cookie, "X-CSRF-Token": m.group(1).decode()})
    assert r.status == 200, r.body


def test_watch_shows_files_as_written_and_coming_conflicts(served: Served) -> None:
    conn = served.viewer.connection(timeout=60)
    conn.request("GET", "/api/v1/sessions/fix-1/watch",
                 headers={"Authorization": f"Bearer {served.viewer.token}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.readline() == b": watching\n"

    def next_event() -> tuple[bytes, bytes]:
        while True:
            line = resp.readline()
            if line.startswith(b"event: "):
                return line[7:].strip(), resp.readline()

    (served.ws / "README.md").write_text(README + "the person's edit\n")
    kind, data = next_event()
    assert kind == b"conflict" and b'"README.md"' in data
    (served.ws / "unrelated.txt").write_text("not the session's\n")  # no event for this one
    p = served.cli("run", "--session", "fix-1", "--", "sh", "-c", "echo live > live.txt",
                   cwd=served.ws)
    assert p.returncode == 0, p.stderr
    seen: set[bytes] = set()
    while b'"live.txt"' not in b"".join(seen):
        kind, data = next_event()
        assert b"unrelated" not in data
        seen.add(kind + b" " + data)
    assert any(s.startswith(b"written") and b'"live.txt"' in s for s in seen)
    conn.close()


def test_live_watches_are_bounded(served: Served) -> None:
    """Each watch holds an inotify observer over the workspace (a thread, a watch per
    directory): a viewer opening them in a loop took the host's threads and inotify watches.
    Past the cap the next is refused (429); a closed one frees its place."""
    from sandbox.server._caps import MAX_WATCHES

    def open_watch() -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = served.viewer.connection(timeout=60)
        conn.request("GET", "/api/v1/sessions/fix-1/watch",
                     headers={"Authorization": f"Bearer {served.viewer.token}"})
        return conn, conn.getresponse()

    check_stream_bound(open_watch, MAX_WATCHES, b": watching\n")


def test_sessions_over_the_owner_socket(cli: Cli, workspace: Path, base_dir: Path) -> None:
    """On the owner-only unix socket no token is needed: the decision is the owner's."""
    import pwd

    pending_session(cli, workspace, "sock-1")
    sock = base_dir / "s" / "serve.sock"
    with serving(cli, f"unix:{sock}"):
        owner = Client(f"unix:{sock}")
        rows = owner.get("/api/v1/sessions?state=pending").json()["sessions"]
        assert isinstance(rows, list) and [s["id"] for s in rows] == ["sock-1"]
        r = owner.post("/api/v1/sessions/sock-1/approve", {"paths": ["new.txt"]})
        assert r.status == 200, r.body
    assert (workspace / "new.txt").read_text() == "new\n"
    me = pwd.getpwuid(os.geteuid()).pw_name
    decisions = [rec for rec in AuditLog(cli.home / "audit.log").records(session="sock-1")
                 if rec.event == "decision" and rec.actor != "policy"]
    assert decisions and all(d.actor == me for d in decisions)


def test_an_agent_sessions_view_counts_its_agents_llm_calls(served: Served) -> None:
    """`sandbox agent` runs the agent in a session of its own beside the tool calls' session:
    serve's session view shows one timeline and one usage over both, as `sandbox show`."""
    from sandbox.audit import AuditEvent

    log = AuditLog(served.cli.home / "audit.log")
    log.append(AuditEvent.LLM_CALL, session="fix-1-agent",
               data={"model": "m", "input_tokens": 100, "output_tokens": 7, "cost_usd": 0.25})
    log.append(AuditEvent.TOOL_CALL, session="fix-1", data={"tool": "bash"})
    log.append(AuditEvent.LLM_CALL, session="other-agent",
               data={"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 9.0})
    r = served.viewer.get("/api/v1/sessions/fix-1")
    assert r.status == 200, r.body
    view = r.json()
    assert view["usage"] == {"llm_calls": 1, "input_tokens": 100, "output_tokens": 7,
                             "cost_usd": 0.25}
    timeline = view["timeline"]
    assert isinstance(timeline, list)
    events = [(e["event"], e["session"]) for e in timeline]
    assert events[-2:] == [("llm.call", "fix-1-agent"), ("tool.call", "fix-1")]
