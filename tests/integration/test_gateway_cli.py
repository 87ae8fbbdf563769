"""`sandbox gateway ...` as a person uses it: keys, serve in the foreground, reload, usage."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_BIN
from tests.support.gateway import UPSTREAM_KEY, config_text
from tests.support.procs import Lines
from tests.support.provider_standin import ProviderStandIn


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "SANDBOX_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path),
        "UP_KEY": UPSTREAM_KEY,
        "LANG": "C.UTF-8",
    }


def gw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SANDBOX_BIN), "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_key_create_prints_the_key_alone_and_stores_only_its_hash(env: dict[str, str]) -> None:
    r = gw(
        env,
        "key",
        "create",
        "--budget",
        "2.5",
        "--ttl",
        "1h",
        "--models",
        "claude-*",
        "gpt-4*",
        "--label",
        "ci job",
    )
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert r.stdout == key + "\n" and key.startswith("sk-sbx-")
    listed = json.loads(gw(env, "key", "ls", "--json").stdout)
    assert len(listed) == 1 and listed[0]["models"] == ["claude-*", "gpt-4*"]
    assert listed[0]["budget_usd"] == 2.5 and listed[0]["status"] == "active"
    state = Path(env["SANDBOX_HOME"])
    assert all(key.encode() not in p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert gw(env, "key", "revoke", listed[0]["id"]).returncode == 0
    assert json.loads(gw(env, "key", "ls", "--json").stdout)[0]["status"] == "revoked"
    r = gw(env, "key", "revoke", "k_nope")
    assert r.returncode == 2 and "no gateway key" in r.stderr


@pytest.mark.parametrize(
    "text,needle",
    [
        (
            "[providers.x]\ntype = 'anthropics'\nbase_url = 'https://a'\napi_key_env = 'UP_KEY'\n",
            "unknown provider type 'anthropics'",
        ),
        (
            "[providers.x]\ntype = 'anthropic'\nbase_url = 'https://a'\napi_key_file = '/nonexistent/k'\n",
            "cannot read /nonexistent/k",
        ),
        ("[providers.x\n", "Expected ']'"),
        ("[routes]\n'claude-*' = ['nobody']\n", "no provider named 'nobody'"),
        ("[gateway]\nlisten = '0.0.0.0:9'\n", "not loopback"),
        (
            "[providers.x]\ntype = 'anthropic'\nbase_url = 'https://a'\napi_key_env = 'NOT_SET_ANYWHERE'\n",
            "$NOT_SET_ANYWHERE is not set",
        ),
    ],
)
def test_bad_config_exits_2_before_listening(
    tmp_path: Path, env: dict[str, str], text: str, needle: str
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(text)
    r = gw(env, "serve", "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not (Path(env["SANDBOX_HOME"]) / "audit.log").exists()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _call(url: str, key: str, model: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(
        url + "/anthropic/v1/messages",
        data=body.encode(),
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def upstream() -> Iterator[ProviderStandIn]:
    # A stream of 40 events 20 ms apart: long enough to reload and to stop during one.
    with ProviderStandIn(api_key=UPSTREAM_KEY, gap=0.02, text=" ".join(f"w{i}" for i in range(40))) as up:
        yield up


def _stream(url: str, key: str, out: list[bytes], started: threading.Event) -> None:
    body = json.dumps(
        {
            "model": "claude-test",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    req = urllib.request.Request(
        url + "/anthropic/v1/messages",
        data=body.encode(),
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        first = resp.readline()
        started.set()
        out.append(first + resp.read())


def _streaming(url: str, key: str) -> tuple[threading.Thread, list[bytes]]:
    """A streamed call, returned once its first event arrived (the rest takes ~0.8 s more)."""
    out: list[bytes] = []
    started = threading.Event()
    thread = threading.Thread(target=_stream, args=(url, key, out, started))
    thread.start()
    assert started.wait(30), "the stream never began"
    return thread, out


def test_serve_reload_usage(tmp_path: Path, env: dict[str, str], upstream: ProviderStandIn) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(config_text(upstream.url))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    key = gw(env, "key", "create").stdout.strip()
    proc = subprocess.Popen(
        [str(SANDBOX_BIN), "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
        env={**env, "SANDBOX_GATEWAY_CONFIG": str(cfg)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    said = Lines(proc.stderr)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    assert json.loads(resp.read()) == {"status": "ok"}
                    break
            except OSError:
                time.sleep(0.05)
        assert _call(url, key, "claude-test")[0] == 200
        assert _call(url, key, "claude-new")[0] == 400  # unpriced
        cfg.write_text(config_text(upstream.url) + '[prices."claude-new"]\ninput = 1.0\noutput = 2.0\n')
        during_reload, got = _streaming(url, key)
        r = gw(env, "reload")
        assert r.returncode == 0, r.stderr
        during_reload.join(30)
        assert got and got[0].rstrip().endswith(b'{"type": "message_stop"}')  # not dropped
        assert b"w39" in got[0]
        said.wait_for("configuration reloaded")
        assert _call(url, key, "claude-new")[0] == 200
        cfg.write_text("[broken\n")  # a bad reload keeps the old config
        assert gw(env, "reload").returncode == 0
        said.wait_for("reload failed, keeping the old config")
        assert _call(url, key, "claude-new")[0] == 200
        during_stop, got = _streaming(url, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        err = said.text()
    during_stop.join(30)
    assert got and b"w39" in got[0] and b"message_stop" in got[0]  # shutdown finished the stream
    assert proc.returncode == 0, err
    assert "reload failed, keeping the old config" in err
    assert UPSTREAM_KEY not in err and key not in err
    usage = json.loads(gw(env, "usage", "--by", "model", "--json").stdout)
    assert {u["group"]: u["calls"] for u in usage} == {"claude-new": 2, "claude-test": 3}
    verify = subprocess.run(
        [str(SANDBOX_BIN), "audit", "--verify"], env=env, capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not (Path(env["SANDBOX_HOME"]) / "gateway" / "serve.pid").exists()


def _self_signed(dir: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dir / "gw.crt", dir / "gw.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path, env: dict[str, str], upstream: ProviderStandIn) -> None:
    import ssl

    cert, key_file = _self_signed(tmp_path)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\ntls_cert = "{cert}"\ntls_key = "{key_file}"\n' + config_text(upstream.url))
    port = _free_port()
    proc = subprocess.Popen(
        [str(SANDBOX_BIN), "gateway", "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=1, context=ctx) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("no TLS listener")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert f"listening on https://127.0.0.1:{port}" in err
    cfg.write_text('[gateway]\ntls_cert = "/nonexistent.crt"\ntls_key = "/nonexistent.key"\n')
    r = gw(env, "serve", "--config", str(cfg))
    assert r.returncode == 2 and "cannot read /nonexistent.crt" in r.stderr
    cfg.write_text(config_text(upstream.url))
    r = gw(env, "serve", "--config", str(cfg), "--listen", "0.0.0.0:9", "--allow-remote")
    assert r.returncode == 2 and "needs TLS" in r.stderr  # off loopback: never in clear text
