"""build_mask / find_hidden: whiteouts for secrets, pruned walk, no symlink following, cache."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from sandbox.fs import _mask, build_mask, compute_changeset, find_hidden
from tests.conftest import require
from tests.support.trees import write

PATTERNS = [".env*", "*.pem", ".ssh/", "/secrets/**"]




@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root / ".env", "TOKEN=1")
    write(root / "app/.env.local", "TOKEN=2")
    write(root / "app/main.py", "print()")
    write(root / "certs/server.pem")
    write(root / "home/.ssh/id_rsa")
    write(root / "home/.ssh/known_hosts")
    write(root / "secrets/db/password")
    write(root / "nested/secrets/not_anchored")
    outside = tmp_path / "outside"
    write(outside / ".env", "never listed")
    os.symlink(outside, root / "link")
    return root


def test_find_hidden_prunes_and_never_follows_symlinks(ws: Path) -> None:
    assert find_hidden(ws, PATTERNS) == (
        ".env",
        "app/.env.local",
        "certs/server.pem",
        "home/.ssh",
        "secrets/db",
    )


def test_no_patterns_no_walk(ws: Path) -> None:
    assert find_hidden(ws, []) == ()


def test_build_mask_makes_whiteouts_and_lookalike_dirs(ws: Path, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "needs root (chown of mask dirs)")
    os.chmod(ws / "app", 0o750)
    os.utime(ws / "app", ns=(1_000_000_000, 1_234_000_000))
    mask = tmp_path / "mask"
    write(mask / "stale", "from an earlier run")
    hidden = build_mask(ws, mask, PATTERNS, (1000, 1000))
    assert "app/.env.local" in hidden
    assert not (mask / "stale").exists()
    wo = os.lstat(mask / "app/.env.local")
    assert stat.S_ISCHR(wo.st_mode) and wo.st_rdev == 0
    st = os.lstat(mask / "app")
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_mtime_ns == 1_234_000_000
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert not (mask / "app/main.py").exists()


def test_cache_skips_unchanged_dirs_and_sees_new_entries(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "mask.cache"
    old = 1_000_000_000_000_000_000  # long ago: not "racy"
    for d in [ws, *(p for p in ws.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.utime(d, ns=(old, old))
    first = find_hidden(ws, PATTERNS, cache_file=cache)
    scans: list[str] = []
    real = _mask._scan

    def counting(ws_: str, rel: str, *args: object) -> object:
        scans.append(rel)
        return real(ws_, rel, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_mask, "_scan", counting)
    assert find_hidden(ws, PATTERNS, cache_file=cache) == first
    assert scans == []
    write(ws / "app/.envrc")
    assert "app/.envrc" in find_hidden(ws, PATTERNS, cache_file=cache)
    assert scans == ["app"]
    # different patterns never reuse the cache
    scans.clear()
    find_hidden(ws, ["*.key"], cache_file=cache)
    assert len(scans) > 1


def test_an_unchanged_workspace_leaves_the_cache_file_alone(ws: Path, tmp_path: Path) -> None:
    """Every run looks up the hide mask: a cache that did not change is not written again (a
    write and a rename per run, on the way to every launch)."""
    cache = tmp_path / "mask.cache"
    old = 1_000_000_000_000_000_000  # long ago: not "racy"
    for d in [ws, *(p for p in ws.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.utime(d, ns=(old, old))
    first = find_hidden(ws, PATTERNS, cache_file=cache)
    before = cache.stat()
    assert find_hidden(ws, PATTERNS, cache_file=cache) == first
    after = cache.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    write(ws / "app/.envrc")  # a change is still written
    assert "app/.envrc" in find_hidden(ws, PATTERNS, cache_file=cache)
    assert cache.stat().st_ino != before.st_ino


def test_corrupt_cache_is_ignored(ws: Path, tmp_path: Path) -> None:
    cache = tmp_path / "mask.cache"
    cache.write_text("{not json")
    assert find_hidden(ws, PATTERNS, cache_file=cache)[0] == ".env"


def test_mask_hides_through_a_real_overlay(ws: Path, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "needs root to mount overlayfs")
    mask, upper, work, merged = (tmp_path / n for n in ("mask", "upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    st = os.stat(ws)
    hidden = build_mask(ws, mask, PATTERNS, (st.st_uid, st.st_gid))
    opts = f"lowerdir={mask}:{ws},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    res = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, os.fspath(merged)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    require(res.returncode == 0, f"cannot mount overlay: {res.stderr.strip()}")
    try:
        assert not (merged / ".env").exists()
        assert not (merged / "home/.ssh").exists()
        assert (merged / "app/main.py").read_text() == "print()"
        assert stat.S_IMODE(os.stat(merged / "app").st_mode) == stat.S_IMODE(os.stat(ws / "app").st_mode)
        (merged / ".env").write_text("clobber")  # the run writes over a secret it cannot see
        (merged / "app/main.py").write_text("changed")
    finally:
        subprocess.run(["umount", os.fspath(merged)], check=True)
    cs = compute_changeset(upper, ws, hidden=hidden)
    rules = {c.path: c.forbidden_rules for c in cs}
    assert rules == {".env": ("hidden-path",), "app/main.py": ()}
