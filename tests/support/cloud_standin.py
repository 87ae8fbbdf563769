"""Stand-ins for Claude on Bedrock, on Vertex AI, and for Azure OpenAI, checking credentials
the way each cloud does: Bedrock recomputes the SigV4 signature (botocore, with the secret the
test gave it); Vertex serves the OAuth token endpoint (verifying the service account's signed
JWT) and accepts only tokens it issued; Azure wants `api-key` and an `api-version`.
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.provider_standin import ProviderStandIn

AWS = ("AKIDSTANDIN0000000001", "standin/secret+access/key0123456789abcdef", "us-east-1")


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only): prelude, CRCs, headers, payload."""
    hb = b""
    for k, v in headers.items():
        kb, vb = k.encode(), v.encode()
        hb += len(kb).to_bytes(1, "big") + kb + b"\x07" + len(vb).to_bytes(2, "big") + vb
    total = 12 + len(hb) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(hb).to_bytes(4, "big")
    msg = prelude + zlib.crc32(prelude).to_bytes(4, "big") + hb + payload
    return msg + zlib.crc32(msg).to_bytes(4, "big")


@dataclass
class CloudStandIn(ProviderStandIn):
    service_account_public_pem: bytes | None = None
    token_lifetime: int = 3600
    issued: list[str] = field(default_factory=list)
    token_requests: int = 0
    signatures_checked: int = 0

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/invoke", self._bedrock)
        app.router.add_post("/model/{model}/invoke-with-response-stream", self._bedrock)
        app.router.add_post("/token", self._token)
        app.router.add_post(
            "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{action}", self._vertex
        )
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)

    def _authorized(self, request: web.Request, raw: bytes) -> bool:
        path = request.path
        if path.startswith("/model/"):
            return self._sigv4_ok(request, raw)
        if path.startswith("/v1/projects/"):
            return request.headers.get("authorization", "").removeprefix("Bearer ") in self.issued
        if path.startswith("/openai/deployments/"):
            return request.headers.get("api-key") == self.api_key and "api-version" in request.query
        return super()._authorized(request, raw)

    def _sigv4_ok(self, request: web.Request, raw: bytes) -> bool:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or f"Credential={AWS[0]}/" not in auth:
            return False
        signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
        given = auth.split("Signature=")[1]
        headers = {h: request.headers[h] for h in signed if h in request.headers}
        req = AWSRequest(
            method="POST", url=f"http://{request.host}{request.raw_path}", data=raw, headers=headers
        )
        req.context["timestamp"] = request.headers["x-amz-date"]
        signer = SigV4Auth(Credentials(AWS[0], AWS[1]), "bedrock", AWS[2])
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        self.signatures_checked += 1
        return secrets.compare_digest(expected, given)

    async def _bedrock(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, True)
        if refused:
            return refused
        assert body.get("anthropic_version") == "bedrock-2023-05-31" and "model" not in body
        message, events = self._anthropic(request.path, {**body, "model": request.match_info["model"]})
        if not request.path.endswith("invoke-with-response-stream"):
            return web.json_response(message)
        resp = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        for _name, data in events:
            chunk = json.dumps({"bytes": base64.b64encode(json.dumps(data).encode()).decode()}).encode()
            await resp.write(
                event_message(
                    {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"},
                    chunk,
                )
            )
        await resp.write_eof()
        return resp

    async def _token(self, request: web.Request) -> web.StreamResponse:
        from google.auth import jwt

        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert self.service_account_public_pem is not None
        claims = jwt.decode(
            str(form["assertion"]),
            certs=self.service_account_public_pem,  # type: ignore[no-untyped-call]
            audience="https://oauth2.googleapis.com/token",
        )  # what google-auth signs for
        assert "cloud-platform" in claims["scope"]
        self.token_requests += 1
        token = f"ya29.standin-{secrets.token_hex(8)}"
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, True)
        if refused:
            return refused
        model, _, action = request.match_info["action"].partition(":")
        assert body.get("anthropic_version") == "vertex-2023-10-16" and "model" not in body
        message, events = self._anthropic(request.path, {**body, "model": model})
        if action == "rawPredict":
            return web.json_response(message)
        return await self._sse(request, events)

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request)


def service_account(token_uri: str) -> tuple[dict[str, Any], bytes]:
    """A fresh service-account key file's content, and the public key the token endpoint checks."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "standin-project",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "gw@standin-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return info, public
