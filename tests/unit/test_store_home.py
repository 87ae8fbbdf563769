"""sandbox_home / ensure_home / HomeLayout (sandbox/_home.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandbox._home import HomeLayout, ensure_home, sandbox_home
from sandbox.errors import StateError, UsageError
from tests.conftest import require_root


def test_home_precedence(tmp_path: Path) -> None:
    env = {"SANDBOX_HOME": str(tmp_path / "sb"), "XDG_STATE_HOME": "/x", "HOME": "/h"}
    assert sandbox_home(env) == tmp_path / "sb"
    assert sandbox_home({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == Path("/x/sandbox")
    assert sandbox_home({"HOME": "/h"}) == Path("/h/.local/state/sandbox")
    # Relative XDG values are invalid per the spec and ignored; empty ones too.
    assert sandbox_home({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path("/h/.local/state/sandbox")
    assert sandbox_home({"SANDBOX_HOME": "", "HOME": "/h"}) == Path("/h/.local/state/sandbox")


def test_home_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_HOME", "/somewhere/else")
    assert sandbox_home() == Path("/somewhere/else")


def test_ensure_home_creates_private_dir(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    assert ensure_home(home) == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert ensure_home(home) == home  # idempotent


def test_ensure_home_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(StateError):
        ensure_home(tmp_path / "link")


def test_ensure_home_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(StateError):
        ensure_home(tmp_path / "f")


def test_ensure_home_refuses_foreign_owner(tmp_path: Path) -> None:
    require_root()  # to create a directory owned by someone else
    other = tmp_path / "other"
    other.mkdir()
    os.chown(other, 12345, 12345)
    with pytest.raises(StateError, match="owned by uid 12345"):
        ensure_home(other)


def test_layout_paths_and_ensure(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path / "home").ensure()
    assert layout.db == layout.root / "state.db"
    assert layout.audit == layout.root / "audit.log"
    for d in (layout.journal_dir, layout.sessions_dir, layout.cache_dir, layout.locks_dir):
        assert d.parent == layout.root
        assert d.is_dir() and stat.S_IMODE(d.stat().st_mode) == 0o700
    assert HomeLayout.from_env({"SANDBOX_HOME": str(layout.root)}) == layout


def test_session_dirs(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path / "home")
    assert layout.session_dir("s-abc") == layout.root / "sessions" / "s-abc"
    dirs = layout.session_dirs("s-abc").create()
    for d in (dirs.upper, dirs.work, dirs.mask):
        assert d.parent == layout.session_dir("s-abc")
        assert d.is_dir() and stat.S_IMODE(d.stat().st_mode) == 0o700
    assert [d.name for d in (dirs.upper, dirs.work, dirs.mask)] == ["upper", "work", "mask"]


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", ".x", "", "a\nb", "x" * 65])
def test_session_dir_rejects_unsafe_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        HomeLayout(tmp_path).session_dir(bad)
