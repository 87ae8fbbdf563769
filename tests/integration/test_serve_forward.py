"""Forwarding the audit trail from a real `sandbox serve` to an OTLP collector stand-in: a slow
collector holds up no API request, and its records arrive once it recovers; records written
while the collector refused, or while serve was down, arrive after a restart, each once."""

from __future__ import annotations

import time
from pathlib import Path

from sandbox._home import HomeLayout
from sandbox.audit import AuditLog
from tests.conftest import Cli
from tests.integration.test_serve_sessions import pending_session
from tests.support.auditlogs import fill
from tests.support.collector import Mode, collector
from tests.support.serve import Client, free_port, make_token, serving


def _log(cli: Cli) -> AuditLog:
    return AuditLog(HomeLayout(cli.home).ensure().audit)


def _head(cli: Cli) -> int:
    return max((r.seq for r in _log(cli).records()), default=0)


def _behind(api: Client, url: str) -> str:
    """sandbox_audit_forward_behind of the target `url` (otlp+http://HOST:PORT)."""
    label = url.removeprefix("otlp+") + "/v1/logs"
    for line in api.get("/metrics").body.decode().splitlines():
        if line.startswith(f'sandbox_audit_forward_behind{{target="{label}"}} '):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no backlog metric for {label}")


def test_a_slow_collector_holds_up_no_request(cli: Cli, workspace: Path) -> None:
    pending_session(cli, workspace, "fix-1")
    token = make_token(cli, "rita", "reviewer")
    listen = f"127.0.0.1:{free_port()}"
    with collector(Mode.SLOW) as c, serving(cli, listen, "--forward", c.url):
        start = _head(cli)
        fill(_log(cli), 2)
        c.wait_for(c.held.is_set, "a request")  # the sender is stuck in it from here on
        api = Client(listen, token)
        conn = api.connection(timeout=20)  # the old code waited here for the collector
        conn.request("POST", "/api/v1/sessions/fix-1/approve", body=b'{"paths": ["new.txt"]}',
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200, reply.read()
        conn.close()
        assert (workspace / "new.txt").read_text() == "new\n"  # the decision took effect
        assert api.get("/api/v1/audit?limit=5").status == 200
        assert c.seqs() == []  # nothing was delivered meanwhile: the collector really hung
        c.mode = Mode.OK
        c.release.set()
        head = _head(cli)
        assert head > start + 2  # the approve's own records came after the held batch
        c.wait_for(lambda: c.seqs()[-1:] == [head], f"seq {head}")
        assert c.seqs() == list(range(start + 1, head + 1))  # in order, each once


def test_records_survive_a_refusing_collector_and_a_restart(cli: Cli) -> None:
    listen = f"127.0.0.1:{free_port()}"
    log = _log(cli)
    token = make_token(cli, "vera", "viewer")
    fill(log, 3)  # history before the first start is not replayed
    with collector() as c:
        with serving(cli, listen, "--forward", c.url):
            fill(log, 2)
            c.wait_for(lambda: len(c.seqs()) == 2, "seqs 4-5")
            c.mode = Mode.FAIL
            fill(log, 2)
            c.wait_for(lambda: c.attempts >= 2, "a refused attempt")
            # The backlog shows in the metrics.
            c.wait_for(lambda: _behind(Client(listen, token), c.url) == "2.0", "a backlog of 2")
        fill(log, 3)  # while serve is down
        c.mode = Mode.OK
        with serving(cli, listen, "--forward", c.url):
            c.wait_for(lambda: c.seqs()[-1:] == [10], "seq 10")
            assert _behind(Client(listen, token), c.url) == "0.0"
        assert c.seqs() == list(range(4, 11))  # nothing lost, nothing sent twice


def test_a_tcp_syslog_collector_down_at_start_gets_the_records_later(cli: Cli) -> None:
    import io
    import re
    import socket
    import threading

    from tests.support.procs import Lines

    log = _log(cli)
    fill(log, 1)
    port = free_port()  # nothing listens there yet
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen, "--forward", f"syslog+tcp://127.0.0.1:{port}") as proc:
        assert proc.stderr is not None
        said = Lines(io.TextIOWrapper(proc.stderr))
        said.wait_for("is not reachable yet")  # and serve started all the same
        fill(log, 2)
        said.wait_for("cannot deliver")
        got = bytearray()
        with socket.create_server(("127.0.0.1", port)) as srv:
            srv.settimeout(60)

            def receive() -> None:
                conn, _ = srv.accept()
                with conn:
                    while chunk := conn.recv(65536):
                        got.extend(chunk)

            threading.Thread(target=receive, daemon=True).start()

            def seqs() -> list[int]:
                """The seq of each record message received (one per NUL-ended message)."""
                done = bytes(got).split(b"\0")[:-1]
                return [int(m.group(1)) for msg in done if b"checkpoint" not in msg
                        if (m := re.search(rb'"seq":(\d+)', msg))]

            deadline = time.monotonic() + 60
            while seqs()[-1:] != [3]:
                assert time.monotonic() < deadline, bytes(got)
                time.sleep(0.02)
            assert seqs() == [2, 3]  # the one record before serve started is not replayed
