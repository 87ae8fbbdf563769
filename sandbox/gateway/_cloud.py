"""Claude on the clouds: Bedrock (SigV4, AWS event stream) and Vertex AI (OAuth from a
service account). Both take the Anthropic Messages body without `model` (it is in the URL) and
with their own `anthropic_version`; both answer non-streamed calls in the Anthropic shape.

Bedrock streams arrive as an AWS event stream whose `chunk` events carry the Anthropic SSE
events base64'd: `BedrockStream` decodes them (botocore's parser) and re-emits Anthropic SSE,
so clients and the gateway's own accounting see one format. Vertex streams are Anthropic SSE.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from sandbox.gateway._config import ConfigError

__all__ = ["BedrockAuth", "BedrockStream", "VertexAuth", "cloud_body"]

BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def cloud_body(body: bytes, version: str, *, keep_stream: bool) -> tuple[bytes, str, bool]:
    """(body for the cloud, the model it named, whether it streams)."""
    obj = json.loads(body)
    model = str(obj.pop("model"))
    stream = obj.get("stream") is True
    if not keep_stream:
        obj.pop("stream", None)
    obj["anthropic_version"] = version
    return json.dumps(obj).encode(), model, stream


class BedrockAuth:
    """SigV4 with credentials from the standard AWS chain (env, shared files, IMDS...)."""

    def __init__(self, region: str, where: str) -> None:
        import botocore.session

        self.region = region
        creds = botocore.session.get_session().get_credentials()
        if creds is None:
            raise ConfigError(f"{where}: no AWS credentials found in the standard chain "
                              "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, instance role)")
        self._creds = creds

    def secret(self) -> str:
        return str(self._creds.get_frozen_credentials().secret_key)

    def url(self, base: str, model: str, stream: bool) -> str:
        action = "invoke-with-response-stream" if stream else "invoke"
        return f"{base}/model/{urllib.parse.quote(model, safe='')}/{action}"

    def sign(self, url: str, body: bytes, stream: bool) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        req = AWSRequest(method="POST", url=url, data=body,
                         headers={"content-type": "application/json", "accept": accept})
        SigV4Auth(self._creds.get_frozen_credentials(), "bedrock", self.region).add_auth(req)
        return dict(req.headers.items())


class BedrockStream:
    """AWS event stream bytes in, Anthropic SSE bytes out."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._buf = EventStreamBuffer()

    def feed(self, chunk: bytes) -> bytes:
        self._buf.add_data(chunk)
        out: list[bytes] = []
        for msg in self._buf:
            headers: Mapping[str, object] = msg.headers
            payload = msg.payload
            if headers.get(":message-type") == "event" and headers.get(":event-type") == "chunk":
                inner = base64.b64decode(json.loads(payload)["bytes"])
                kind = json.loads(inner).get("type", "message")
                out.append(b"event: " + str(kind).encode() + b"\ndata: " + inner + b"\n\n")
            elif headers.get(":message-type") == "exception":
                name = str(headers.get(":exception-type", "api_error"))
                text = json.loads(payload or b"{}").get("message", name)
                error = {"type": "error", "error": {"type": "api_error", "message": f"{name}: {text}"}}
                out.append(b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n")
        return b"".join(out)


class VertexAuth:
    """An OAuth token minted from a service-account file, refreshed before it expires."""

    def __init__(self, path: Path, project: str, region: str, where: str) -> None:
        from google.oauth2 import service_account

        try:
            self._creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(path), scopes=_SCOPES)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{where}.credentials_file: cannot use {path}: {exc}") from exc
        self._private_key = json.loads(path.read_text())["private_key"]
        self.project, self.region = project, region
        self._lock = asyncio.Lock()

    def secret(self) -> str:
        return str(self._private_key)

    def url(self, base: str, model: str, stream: bool) -> str:
        action = "streamRawPredict" if stream else "rawPredict"
        return (f"{base}/v1/projects/{self.project}/locations/{self.region}/publishers/anthropic/"
                f"models/{model}:{action}")

    async def token(self) -> str:
        """google-auth treats a token as expired minutes before its expiry, so a call never
        leaves with a token about to lapse; one refresh at a time."""
        async with self._lock:
            if not self._creds.valid:
                import urllib3
                from google.auth.transport.urllib3 import Request

                await asyncio.to_thread(self._creds.refresh,
                                        Request(urllib3.PoolManager()))  # type: ignore[no-untyped-call]
        return str(self._creds.token)
