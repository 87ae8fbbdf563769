"""Claude on Bedrock and Vertex AI, and Azure OpenAI, through the gateway, against stand-ins
that check each cloud's credential for real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from sandbox.audit import AuditEvent, AuditLog
from sandbox.gateway import KeyStore
from tests.support.cloud_standin import AWS, CloudStandIn, service_account
from tests.support.gateway import PRICES, running_gateway, url_of


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudStandIn]:
    # The standard AWS chain: environment variables first.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS[1])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    with CloudStandIn(api_key="azure-key-0123456789", input_tokens=70, output_tokens=20) as up:
        yield up


def _calls(home: Path) -> list[dict[str, object]]:
    return [dict(r.data) for r in AuditLog(home / "audit.log").records() if r.event is AuditEvent.LLM_CALL]


def _client(gw_url: str, home: Path) -> anthropic.Anthropic:
    key, _ = KeyStore.at_home(home).create()
    return anthropic.Anthropic(base_url=gw_url + "/anthropic", api_key=key, max_retries=0)


def _ask(client: anthropic.Anthropic) -> tuple[str, str]:
    msg = client.messages.create(
        model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    with client.messages.stream(
        model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
    assert msg.content[0].type == "text"
    return msg.content[0].text, streamed


def test_bedrock_sigv4_and_event_stream_reemitted_as_sse(tmp_path: Path, cloud: CloudStandIn) -> None:
    text = (
        f'[providers.bedrock]\ntype = "bedrock"\nregion = "{AWS[2]}"\nbase_url = "{cloud.url}"\n'
        '[providers.bedrock.model_ids]\n"claude-test" = "anthropic.claude-test-v1:0"\n'
        '[routes]\n"claude-*" = ["bedrock"]\n' + PRICES
    )
    with running_gateway(tmp_path, text) as gw:
        plain, streamed = _ask(_client(url_of(gw), tmp_path))
        gw.gateway.recorder.flush()
    assert plain == cloud.text and streamed.strip() == cloud.text
    assert cloud.signatures_checked == 2 and len(cloud.billed) == 2
    assert {r.path for r in cloud.received} == {
        "/model/anthropic.claude-test-v1:0/invoke",
        "/model/anthropic.claude-test-v1:0/invoke-with-response-stream",
    }
    calls = _calls(tmp_path)
    assert [(c["provider"], c["stream"], c["input_tokens"], c["output_tokens"]) for c in calls] == [
        ("bedrock", False, 70, 20),
        ("bedrock", True, 70, 20),
    ]
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert AWS[1].encode() not in written


def test_bedrock_wrong_secret_is_refused_by_the_standin(
    tmp_path: Path, cloud: CloudStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    text = (
        f'[providers.bedrock]\ntype = "bedrock"\nregion = "{AWS[2]}"\nbase_url = "{cloud.url}"\n'
        '[routes]\n"claude-*" = ["bedrock"]\n' + PRICES
    )
    with running_gateway(tmp_path, text) as gw, pytest.raises(anthropic.AuthenticationError):
        _ask(_client(url_of(gw), tmp_path))
    assert cloud.signatures_checked == 1 and cloud.billed == []


@pytest.mark.parametrize("lifetime,tokens", [(60, 2), (3600, 1)])
def test_vertex_token_from_a_service_account_refreshed_before_expiry(
    tmp_path: Path, cloud: CloudStandIn, lifetime: int, tokens: int
) -> None:
    info, public = service_account(f"{cloud.url}/token")
    cloud.service_account_public_pem = public
    # 60 s is inside google-auth's refresh margin: each call gets a fresh token; an hour's is reused.
    cloud.token_lifetime = lifetime
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps(info))
    text = (
        f'[providers.vertex]\ntype = "vertex"\nregion = "us-east5"\nproject = "standin-project"\n'
        f'base_url = "{cloud.url}"\ncredentials_file = "{sa}"\n'
        '[routes]\n"claude-*" = ["vertex"]\n' + PRICES
    )
    with running_gateway(tmp_path, text) as gw:
        plain, streamed = _ask(_client(url_of(gw), tmp_path))
        gw.gateway.recorder.flush()
    assert plain == cloud.text and streamed.strip() == cloud.text
    assert cloud.token_requests == tokens and len(cloud.issued) == tokens
    assert {r.path.rsplit(":", 1)[1] for r in cloud.received} == {"rawPredict", "streamRawPredict"}
    assert [c["output_tokens"] for c in _calls(tmp_path)] == [20, 20]


def test_azure_openai_deployment_url_and_api_key(tmp_path: Path, cloud: CloudStandIn) -> None:
    text = (
        f'[providers.azure]\ntype = "azure-openai"\nbase_url = "{cloud.url}/openai"\n'
        'api_key_env = "AZ_KEY"\napi_version = "2024-10-21"\n[routes]\n"gpt-*" = ["azure"]\n' + PRICES
    )
    with running_gateway(tmp_path, text, {"AZ_KEY": "azure-key-0123456789"}) as gw:
        key, _ = KeyStore.at_home(tmp_path).create()
        client = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=key, max_retries=0)
        out = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == cloud.text
    assert cloud.received[0].path == "/openai/deployments/gpt-test/chat/completions"
    assert cloud.received[0].headers["api-key"] == "azure-key-0123456789"


def test_openai_compatible_without_a_key_never_gets_the_virtual_one(tmp_path: Path) -> None:
    from tests.support.provider_standin import ProviderStandIn

    with ProviderStandIn(api_key=None) as local:  # vLLM / Ollama: no credential
        text = (
            f'[providers.local]\ntype = "openai-compatible"\nbase_url = "{local.url}/v1"\n'
            '[routes]\n"gpt-*" = ["local"]\n' + PRICES
        )
        with running_gateway(tmp_path, text) as gw:
            key, _ = KeyStore.at_home(tmp_path).create()
            client = openai.OpenAI(base_url=url_of(gw) + "/openai/v1", api_key=key, max_retries=0)
            out = client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-api-key": key, "api-key": key},
            )
        received = local.received
    assert out.choices[0].message.content == local.text
    headers = received[0].headers
    assert "authorization" not in headers and "x-api-key" not in headers and "api-key" not in headers
    assert key not in json.dumps(dict(headers))
