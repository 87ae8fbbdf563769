"""The API of a real `sandbox serve`, on loopback TCP and on its unix socket: who may do what."""

from __future__ import annotations

import http.client
import os
import stat
from pathlib import Path

import pytest

from sandbox.audit import AuditEvent, AuditLog
from tests.conftest import Cli
from tests.support.serve import Client, check_stream_bound, free_port, make_token, serving, state_home


@pytest.fixture
def home(base_dir: Path) -> Path:
    return state_home(base_dir)


def test_tcp_needs_a_token_and_roles_are_enforced(home: Path) -> None:
    cli = Cli(home=home)
    viewer = make_token(cli, "vera", "viewer")
    assert viewer.startswith("sbx_")
    assert viewer.encode() not in (home / "serve" / "tokens.json").read_bytes()  # hashed
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        anon = Client(listen)
        r = anon.get("/api/v1/whoami")
        assert r.status == 401 and r.headers["www-authenticate"] == "Bearer"
        assert anon.get("/metrics").status == 401
        assert anon.with_token("sbx_not-a-token").get("/api/v1/report").status == 401
        me = anon.with_token(viewer)
        assert me.get("/api/v1/whoami").json() == {"name": "vera", "role": "viewer",
                                                   "via": "token"}
        assert me.get("/api/v1/report").json()["records"] == 0
        assert b"sandbox_audit_checkpoints" in me.get("/metrics").body
        # revoked: refused from the next request on
        tok_id = cli("serve", "token", "ls", "--json", check=True).stdout
        import json

        cli("serve", "token", "revoke", json.loads(tok_id)[0]["id"], check=True)
        assert me.get("/api/v1/whoami").status == 401


def test_unix_socket_is_owner_only_and_acts_as_owner(home: Path, base_dir: Path) -> None:
    cli = Cli(home=home)
    sock = base_dir / "serve" / "api.sock"
    with serving(cli, f"unix:{sock}"):
        st = sock.stat()
        assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o777 == 0o600
        assert sock.parent.stat().st_mode & 0o777 == 0o700
        who = Client(f"unix:{sock}").get("/api/v1/whoami").json()
        assert who["role"] == "admin" and who["via"] == "socket"
        log = AuditLog(home / "audit.log")
        log.append(AuditEvent.RUN_STARTED, run="r1", session="s1", data={"level": 2})
        records = Client(f"unix:{sock}").get("/api/v1/audit?session=s1").json()["records"]
        assert [r["seq"] for r in records] == [1]  # type: ignore[attr-defined]
    assert not sock.exists()


def test_unix_socket_refuses_other_users(home: Path, base_dir: Path) -> None:
    from tests.conftest import TEST_USER, test_user

    test_user()
    cli = Cli(home=home)
    sock = base_dir / "open" / "api.sock"
    sock.parent.mkdir(mode=0o755)
    with serving(cli, f"unix:{sock}"):
        os.chmod(sock.parent, 0o755)  # even with the directory open, the socket is 0600
        probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
                 f"s.connect({str(sock)!r})")
        import subprocess

        r = subprocess.run(["runuser", "-u", TEST_USER, "--", "python3", "-c", probe],
                           capture_output=True, check=False)
        assert r.returncode != 0 and b"Permission denied" in r.stderr


def test_non_loopback_needs_tls_and_a_flag(home: Path) -> None:
    cli = Cli(home=home)
    r = cli("serve", "--listen", "0.0.0.0:8799", timeout=30)
    assert r.returncode == 2 and b"not loopback" in r.stderr
    r = cli("serve", "--listen", "0.0.0.0:8799", "--allow-remote", timeout=30)
    assert r.returncode == 2 and b"needs TLS" in r.stderr


def test_events_stream_audit_records_as_they_land(home: Path) -> None:
    cli = Cli(home=home)
    token = make_token(cli, "vera", "viewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        conn = Client(listen).connection(timeout=20)
        conn.request("GET", "/api/v1/events?session=s9", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
        # Subscribed by now: the server registers the stream before it says ": connected".
        assert resp.readline() == b": connected\n" and resp.readline() == b"\n"
        log = AuditLog(home / "audit.log")
        log.append(AuditEvent.RUN_STARTED, run="r0", session="other", data={})
        log.append(AuditEvent.RUN_STARTED, run="r1", session="s9", data={"level": 2})
        lines = [resp.readline() for _ in range(3)]
        conn.close()
        assert lines[0] == b"id: 2\n" and lines[1] == b"event: run.started\n"
        assert b'"session":"s9"' in lines[2]


def test_event_streams_are_bounded(home: Path) -> None:
    """Each events stream holds a queue of up to 1000 records the fan-out fills: a viewer
    opening them in a loop took the host's memory. Past the cap the next is refused (429);
    a closed one frees its place."""
    from sandbox.server._events import MAX_SUBSCRIBERS

    cli = Cli(home=home)
    token = make_token(cli, "vera", "viewer")
    listen = f"127.0.0.1:{free_port()}"

    def open_stream() -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = Client(listen).connection(timeout=60)
        conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"})
        return conn, conn.getresponse()

    with serving(cli, listen):
        check_stream_bound(open_stream, MAX_SUBSCRIBERS, b": connected\n")


def test_admins_manage_tokens_and_gateway_keys(home: Path) -> None:
    cli = Cli(home=home)
    admin, rita = make_token(cli, "ada", "admin"), make_token(cli, "rita", "reviewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        c = Client(listen)
        assert c.with_token(rita).get("/api/v1/tokens").status == 403
        assert c.with_token(rita).post("/api/v1/gateway/keys", {"budget_usd": 1}).status == 403
        r = c.with_token(admin).post("/api/v1/tokens", {"name": "vic", "role": "viewer"})
        assert r.status == 201, r.body
        vic = str(r.json()["token"])
        assert c.with_token(vic).get("/api/v1/whoami").json()["name"] == "vic"
        listed = c.with_token(admin).get("/api/v1/tokens").body
        assert b"vic" in listed and vic.encode() not in listed
        assert c.with_token(admin).post("/api/v1/tokens", {"name": "x", "role": "boss"}).status == 400
        r = c.with_token(admin).post("/api/v1/gateway/keys",
                                     {"budget_usd": 2.5, "models": ["claude-*"], "label": "ci"})
        assert r.status == 201, r.body
        key = r.json()
        keys = c.with_token(admin).get("/api/v1/gateway/keys").json()["keys"]
        assert isinstance(keys, list) and keys[0]["budget_usd"] == 2.5
        assert str(key["key"]).encode() not in c.with_token(admin).get("/api/v1/gateway/keys").body
        assert c.with_token(admin).post("/api/v1/gateway/keys", {"budget_usd": -1}).status == 400
        r = c.with_token(admin).request("DELETE", f"/api/v1/gateway/keys/{key['id']}")
        assert r.status == 200
        assert c.with_token(admin).get("/api/v1/gateway/keys").json()["keys"][0]["status"] == "revoked"  # type: ignore[index]
