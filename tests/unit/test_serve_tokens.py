"""`sandbox serve` tokens under concurrent writers: serve handles API calls in threads and a
person may run `serve token create` at the same time; no token may be lost, and a revoked one
must never come back."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sandbox.server._tokens import Role, TokenStore


def _create_many(path: str, n: int) -> None:
    store = TokenStore(Path(path))
    for i in range(n):
        store.create(f"p{i}", Role.VIEWER)


def test_concurrent_creates_lose_no_token(tmp_path: Path) -> None:
    path = tmp_path / "serve" / "tokens.json"
    revoked, _ = TokenStore(path).create("gone", Role.ADMIN)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_create_many, args=(str(path), 25)) for _ in range(6)]
    for p in procs:
        p.start()
    TokenStore(path).revoke(revoked.id)  # while the others write
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = {t.id for t in TokenStore(path).list()}
    assert len(ids) == 6 * 25
    assert revoked.id not in ids
