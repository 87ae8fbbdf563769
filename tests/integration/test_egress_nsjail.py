"""Egress behind real nsjail: allowed hosts work with curl, urllib and pip; others get 403.

Each test launches nsjail with a fresh network namespace (loopback only) and the egress
plumbing's mounts, env and wrapper, exactly what `LaunchSpec.network = Network.EGRESS` asks
the backend for; origin servers listen on the host's loopback and are reached by mapped names.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.egress import EgressEvent, EgressHandle, EgressPolicy, Verdict, mapped_resolver, start
from tests.support.egress_env import (
    denied_events,
    origin,
    require_nsjail,
    run_jailed,
    self_signed,
    simple_index,
    traversable,
)

NAMES = {n: ["127.0.0.1"] for n in ("allowed.test", "denied.test", "index.test")}


@dataclass
class World:
    http: int
    https: int
    data: Path  # mounted at /run/data: cert.pem
    run_dir: Path

    def handle(self, events: list[EgressEvent] | None = None, **kw: object) -> EgressHandle:
        rules = [
            f"allowed.test:{self.http}",
            f"allowed.test:{self.https}",
            f"index.test:{self.https}",
        ]
        policy = EgressPolicy.from_strings(rules, allow_addresses=["127.0.0.1"])
        sink = events.append if events is not None else None
        return start(
            policy,
            run_id="r-nsjail",
            run_dir=self.run_dir,
            on_event=sink,
            resolver=mapped_resolver(NAMES, None),
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    require_nsjail()
    data = traversable(tmp_path_factory.mktemp("egress-data"))
    data.chmod(0o755)
    _cert, ctx = self_signed(data, ["allowed.test", "index.test", "denied.test"])
    index = data / "index"
    simple_index(index)
    with origin("plain") as http, origin("tls", root=index, tls=ctx) as https:
        yield http, https, data


@pytest.fixture
def world(servers: tuple[int, int, Path], tmp_path: Path) -> World:
    http, https, data = servers
    return World(http, https, data, traversable(tmp_path) / "run")


def test_curl_http_and_https_to_allowed_host(world: World) -> None:
    events: list[EgressEvent] = []
    with world.handle(events) as handle:
        result = run_jailed(
            handle,
            f"curl -sS http://allowed.test:{world.http}/a && "
            f"curl -sS --cacert /run/data/cert.pem https://allowed.test:{world.https}/hello",
            mounts=[(world.data, "/run/data")],
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"plain /a host=allowed.test:{world.http}\ntls /hello host=allowed.test:{world.https}\n"
    )
    assert [(e.verdict, e.method) for e in events] == [
        (Verdict.ALLOWED, "GET"),
        (Verdict.ALLOWED, "CONNECT"),
    ]


def test_denied_host_gets_403_with_reason(world: World) -> None:
    with world.handle() as handle:
        result = run_jailed(
            handle,
            f"curl -sS -i http://denied.test:{world.http}/; "
            f"curl -sS --cacert /run/data/cert.pem https://denied.test:{world.https}/ ; echo rc=$?",
            mounts=[(world.data, "/run/data")],
        )
        denied = denied_events(handle, 2)
    assert result.stdout.startswith("HTTP/1.1 403 Forbidden")
    assert "X-Sandbox-Deny: not-in-allowlist" in result.stdout
    assert "is not in the egress allowlist" in result.stdout
    assert "CONNECT tunnel failed, response 403" in result.stderr
    assert "rc=56" in result.stdout
    assert [(e.host, e.method) for e in denied] == [
        ("denied.test", "GET"),
        ("denied.test", "CONNECT"),
    ]


def test_python_urllib_uses_the_proxy(world: World) -> None:
    http, https = world.http, world.https
    code = (
        "import ssl, urllib.request as r, urllib.error\n"
        f"print(r.urlopen('http://allowed.test:{http}/u').read().decode(), end='')\n"
        "ctx = ssl.create_default_context(cafile='/run/data/cert.pem')\n"
        f"print(r.urlopen('https://allowed.test:{https}/hello', context=ctx).read().decode(),"
        " end='')\n"
        "try:\n"
        f"    r.urlopen('http://denied.test:{http}/')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.headers['X-Sandbox-Deny'])\n"
    )
    with world.handle() as handle:
        result = run_jailed(
            handle, "", argv=["/usr/bin/python3", "-c", code], mounts=[(world.data, "/run/data")]
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"plain /u host=allowed.test:{world.http}",
        f"tls /hello host=allowed.test:{world.https}",
        "403 not-in-allowlist",
    ]


def test_pip_download_from_local_index(world: World) -> None:
    with world.handle() as handle:
        result = run_jailed(
            handle,
            "python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check "
            f"--cert /run/data/cert.pem --index-url https://index.test:{world.https}/simple/ "
            "-d /tmp/dl egresstestpkg >/dev/null && ls /tmp/dl",
            mounts=[(world.data, "/run/data")],
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["egresstestpkg-1.0-py3-none-any.whl"]


def test_pip_cannot_reach_an_index_not_allowed(world: World) -> None:
    with world.handle() as handle:
        result = run_jailed(
            handle,
            "python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check "
            "--retries 0 --timeout 5 --index-url https://pypi.org/simple/ -d /tmp/dl six",
            timeout=120,
        )
        denied = denied_events(handle)
    assert result.returncode != 0
    assert [(e.host, e.port, e.reason) for e in denied][:1] == [("pypi.org", 443, "not-in-allowlist")]


@pytest.mark.parametrize("uid", [None, 1001], ids=["root-inside", "unprivileged"])
def test_command_is_the_main_process_and_keeps_its_status(world: World, uid: int | None) -> None:
    with world.handle() as handle:
        result = run_jailed(handle, "echo pid=$$ uid=$(id -u); exit 7", uid=uid)
    assert result.returncode == 7, result.stderr
    assert result.stdout == f"pid=1 uid={uid or 0}\n"
    # pid 1 with the command's own status: the shim exec'd it rather than waiting on it


def test_sigpipe_is_default_again_after_the_shim(world: World) -> None:
    with world.handle() as handle:
        result = run_jailed(handle, "grep SigIgn /proc/self/status")
    ignored = int(result.stdout.split()[1], 16)
    assert ignored & (1 << (13 - 1)) == 0  # SIGPIPE
    assert ignored & (1 << (25 - 1)) == 0  # SIGXFSZ


def test_missing_command_exits_127(world: World) -> None:
    with world.handle() as handle:
        result = run_jailed(handle, "", argv=["/nonexistent/cmd"])
    assert result.returncode == 127
    assert "command not found" in result.stderr


def test_fails_closed_when_the_proxy_is_not_there(world: World) -> None:
    """If the proxy cannot take the listening socket, the command must not run at all."""
    handle = world.handle()
    handle.stop()  # control socket gone: the shim cannot hand off
    handle.dir.mkdir(mode=0o711)  # the shim is still there, as if the proxy had died
    (handle.dir / "shim.py").write_text((Path(__file__).parents[2] / "sandbox/egress/_shim.py").read_text())
    try:
        result = run_jailed(handle, "echo RAN")
    finally:
        shutil.rmtree(handle.dir)
    assert result.returncode == 125
    assert "RAN" not in result.stdout
    assert "refusing to run" in result.stderr


def test_teardown_leaves_nothing(world: World) -> None:
    before = {t.ident for t in threading.enumerate()}
    handle = world.handle()
    result = run_jailed(handle, f"curl -sS http://allowed.test:{world.http}/x")
    assert result.returncode == 0
    assert handle.attached
    handle.stop()
    assert handle.live_connections() == 0
    assert not handle.dir.exists()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []


_AS_USER = """
import json, sys
from pathlib import Path
from sandbox.egress import EgressPolicy, mapped_resolver, start
from tests.support.egress_env import run_jailed
port, run_dir = int(sys.argv[1]), Path(sys.argv[2])
policy = EgressPolicy.from_strings([f"allowed.test:{port}"], allow_addresses=["127.0.0.1"])
resolver = mapped_resolver({"allowed.test": ["127.0.0.1"]}, None)
with start(policy, run_id="r-user", run_dir=run_dir, resolver=resolver) as handle:
    result = run_jailed(
        handle, f"id -u; curl -sS http://allowed.test:{port}/u; curl -sS http://denied.test/", uid=None
    )
    events = [e.verdict.value for e in handle.events()]
print(json.dumps({"rc": result.returncode, "out": result.stdout, "events": events}))
"""


def test_runtime_as_an_unprivileged_user(world: World, tmp_path: Path) -> None:
    """The whole mechanism (proxy, control socket, nsjail) run by a non-root user."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO, test_user

    pw = test_user()
    run_dir = traversable(tmp_path) / "user-run"
    run_dir.mkdir()
    os.chown(run_dir, pw.pw_uid, pw.pw_gid)
    proc = subprocess.run(
        ["/usr/sbin/runuser", "-u", pw.pw_name, "--", "env", "-i", f"PYTHONPATH={REPO}",
         "PATH=/usr/bin:/bin", sys.executable, "-c", _AS_USER, str(world.http), str(run_dir / "r")],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rc"] == 0
    uid, plain, denied = report["out"].splitlines()[:3]
    assert uid == str(pw.pw_uid)  # nsjail's default mapping: the caller's own uid inside
    assert plain == f"plain /u host=allowed.test:{world.http}"
    assert denied.startswith("sandbox egress proxy refused")
    assert report["events"] == ["allowed", "denied"]
