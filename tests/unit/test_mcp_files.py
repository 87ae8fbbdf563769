"""The file tools' reading side without a sandbox: a pathological grep pattern answers at once;
a long grep stops at its time limit with a note; the overlay rules hold."""

from __future__ import annotations

import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from sandbox.mcp import _files
from sandbox.mcp._errors import ToolRefused
from sandbox.mcp._view import View


def _view(tmp_path: Path) -> View:
    ws, upper = tmp_path / "ws", tmp_path / "upper"
    ws.mkdir()
    upper.mkdir()
    (ws / "slow.txt").write_text("a" * 40 + "b\n")
    (ws / "gone.txt").write_text("deleted in the session\n")
    (ws / ".env").write_text("SECRET=1\n")
    (upper / "new.txt").write_text("added in the session\n")
    os.mknod(upper / "gone.txt", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # a whiteout
    return View(ws, upper, (".env",))


def test_catastrophic_pattern_is_linear_and_a_long_grep_stops_at_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = _view(tmp_path)
    (tmp_path / "ws" / "aaa.txt").write_text("a" * 100_000 + "b\n")
    # exponential backtracking on "aaa...b" in a backtracking engine; RE2 answers at once
    assert "no matches" in _files.grep(view, r"(a|aa)+$", None, None)
    monkeypatch.setattr(_files, "GREP_TIMEOUT_S", -1.0)
    assert "grep stopped after -1s" in _files.grep(view, "a", None, None)


def test_a_huge_directory_is_listed_and_searched_in_bounded_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run (or a hostile repository) can make a directory of millions of entries; the file
    tools run on the host. list_files kept a stat for every entry (~1 KB each: GBs), grep
    listed the whole tree before its time limit was even looked at."""
    view = _view(tmp_path)
    big = tmp_path / "upper" / "big"
    big.mkdir()
    for i in range(20_000):
        os.close(os.open(big / f"f{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))
    tracemalloc.start()
    try:
        out = _files.list_files(view, "big", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.startswith("big: 20000 entries") and "[19000 more not shown]" in out
    assert peak < 8 << 20, peak  # its names (~2 MB), not 20,000 stats (~18 MB)
    monkeypatch.setattr(_files, "GREP_TIMEOUT_S", -1.0)  # the walk is under the limit too
    assert "grep stopped after -1s (at big/f000000)" in _files.grep(view, "x", "big", None)


def test_view_follows_the_overlay(tmp_path: Path) -> None:
    view = _view(tmp_path)
    assert "added in the session" in _files.read_file(view, "new.txt", None, None)
    with pytest.raises(ToolRefused):
        _files.read_file(view, "gone.txt", None, None)  # whiteout: deleted
    with pytest.raises(ToolRefused):
        _files.read_file(view, ".env", None, None)  # hidden: not there
    listing = _files.list_files(view, None, None)
    assert "new.txt" in listing and "gone.txt" not in listing and ".env" not in listing
    assert "no matches" in _files.grep(view, "SECRET|deleted", None, None)
