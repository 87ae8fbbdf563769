"""Console sessions end when idle, at their absolute limit, at log-out and with their token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.server._logins import Logins
from sandbox.server._tokens import Role, TokenStore


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _logins(tmp_path: Path) -> tuple[Logins, TokenStore, Clock]:
    store, clock = TokenStore(tmp_path / "tokens.json"), Clock()
    return Logins(store, idle=60, absolute=300, clock=clock), store, clock


def test_idle_expiry_and_use_keeps_it_alive(tmp_path: Path) -> None:
    logins, store, clock = _logins(tmp_path)
    token, secret = store.create("rita", Role.REVIEWER)
    sid = logins.open(token)
    assert sid != secret and secret not in sid
    clock.now += 59
    login = logins.resolve(sid)
    assert login is not None and (login.name, login.role) == ("rita", Role.REVIEWER)
    clock.now += 59  # 118 s after log-in, but used 59 s ago
    assert logins.resolve(sid) is not None
    clock.now += 60
    assert logins.resolve(sid) is None
    clock.now -= 60  # gone for good, not merely hidden
    assert logins.resolve(sid) is None and len(logins) == 0


def test_absolute_expiry_however_busy(tmp_path: Path) -> None:
    logins, store, clock = _logins(tmp_path)
    sid = logins.open(store.create("rita", Role.VIEWER)[0])
    for _ in range(5):
        clock.now += 59
        assert logins.resolve(sid) is not None
    clock.now += 59  # 354 s after log-in
    assert logins.resolve(sid) is None


def test_logout_and_revocation(tmp_path: Path) -> None:
    logins, store, _ = _logins(tmp_path)
    a, _s = store.create("rita", Role.VIEWER)
    b, _s = store.create("bob", Role.ADMIN)
    one, two, bobs = logins.open(a), logins.open(a), logins.open(b)
    logins.close(one)
    assert logins.resolve(one) is None and logins.resolve(two) is not None
    store.revoke(a.id)  # as `sandbox serve token revoke` does, from another process
    assert logins.resolve(two) is None
    assert logins.resolve(bobs) is not None and logins.close_token(b.id) == 1
    assert logins.resolve(bobs) is None


def test_unknown_ids_are_refused(tmp_path: Path) -> None:
    logins, store, _ = _logins(tmp_path)
    token, secret = store.create("rita", Role.ADMIN)
    logins.open(token)
    assert logins.resolve(secret) is None and logins.resolve("") is None


def test_log_ins_per_token_are_bounded(tmp_path: Path) -> None:
    logins, store, clock = _logins(tmp_path)
    logins.per_token = 3
    token = store.create("rita", Role.VIEWER)[0]
    other = logins.open(store.create("bob", Role.VIEWER)[0])
    sids = []
    for _ in range(5):
        clock.now += 1
        sids.append(logins.open(token))
    clock.now += 1
    assert logins.resolve(sids[2]) is not None  # used now: the oldest unused go first
    clock.now += 1
    sids.append(logins.open(token))
    alive = [s for s in sids if logins.resolve(s) is not None]
    assert alive == [sids[2], sids[4], sids[5]] and len(logins) == 4
    assert logins.resolve(other) is not None  # another token's log-in is its own
