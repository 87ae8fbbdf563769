"""Attacks on commit: each must be stopped, and nothing may be written outside the workspace.

The attacker controls the run's upper dir (anything the sandbox can create) and, for the
TOCTOU case, races a change to the workspace between diff and commit. Change sets are also
built by hand, as if loaded from tampered state, to check commit's own defenses.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import CommitError, ConflictError, ForbiddenChangeError
from sandbox.fs import (
    Change,
    ChangeKind,
    ChangeSet,
    FileType,
    commit_changeset,
    compute_changeset,
    recover_interrupted,
)
from tests.conftest import require_root
from tests.support.trees import snapshot, write


class Site:
    """A workspace, an upper dir, a journal dir, and an `outside` dir standing in for /etc."""

    def __init__(self, tmp: Path) -> None:
        self.ws = tmp / "ws"
        self.upper = tmp / "upper"
        self.journal = tmp / "journal"
        self.outside = tmp / "etc"
        for d in (self.ws, self.upper, self.outside):
            d.mkdir()
        write(self.outside / "passwd", "root:x:0:0::/root:/bin/sh\n")
        self.outside_before = snapshot(self.outside)
        self.started = time.time_ns()

    def commit(self, cs: ChangeSet, **kw: Any) -> Any:
        return commit_changeset(
            cs, upper=self.upper, workspace=self.ws, journal_dir=self.journal,
            started_ns=self.started, **kw,
        )  # fmt: skip

    def assert_outside_untouched(self) -> None:
        assert snapshot(self.outside) == self.outside_before


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_symlink_to_outside_then_write_through_it(site: Site) -> None:
    # The sandbox made `link -> <outside>`; a forged change set adds `link/passwd`.
    os.symlink(site.outside, site.upper / "link")
    write(site.upper / "evil_passwd", "pwned\n")
    real = compute_changeset(site.upper, site.ws)
    assert real.by_path("link") is not None
    assert "symlink-escape" in real.by_path("link").forbidden_rules  # type: ignore[union-attr]
    forged = ChangeSet(
        (
            Change("link", ChangeKind.ADDED, new_type=FileType.SYMLINK, new_mode=0o120777,
                   link_target=os.fspath(site.outside)),
            Change("link/passwd", ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644,
                   new_size=6),
        )
    )  # fmt: skip
    with pytest.raises(ForbiddenChangeError, match="symlink-escape"):
        site.commit(real)
    with pytest.raises(ForbiddenChangeError, match="symlink-escape"):
        site.commit(forged)
    # Even if the link already sits in the workspace, nothing is written through it.
    os.symlink(site.outside, site.ws / "link")
    with pytest.raises(ConflictError, match="symlink"):
        site.commit(forged, paths=["link/passwd"], force=True)
    site.assert_outside_untouched()
    assert sorted(os.listdir(site.ws)) == ["link"]


def test_upper_symlinked_parent_is_not_read_through(site: Site) -> None:
    # Forged: claims `d/passwd` is a new file, but upper `d` is a symlink to outside; commit
    # must not copy the outside file's content into the workspace.
    os.symlink(site.outside, site.upper / "d")
    forged = ChangeSet(
        (Change("d/passwd", ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644,
                new_size=len(b"root:x:0:0::/root:/bin/sh\n")),)
    )  # fmt: skip
    (site.ws / "d").mkdir()
    with pytest.raises(CommitError):
        site.commit(forged)
    assert os.listdir(site.ws / "d") == []


def test_setuid_file_is_refused_and_stripped_if_forged(site: Site) -> None:
    require_root()
    write(site.upper / "suid", "#!/bin/sh\n", 0o4755)
    write(site.upper / "sgid", "#!/bin/sh\n", 0o2755)
    cs = compute_changeset(site.upper, site.ws)
    with pytest.raises(ForbiddenChangeError, match="setid"):
        site.commit(cs)
    assert os.listdir(site.ws) == []
    # A forged change set hiding the bits: commit strips them from what it writes anyway.
    forged = ChangeSet(
        (Change("suid", ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100755,
                new_size=10),)
    )  # fmt: skip
    site.commit(forged)
    assert stat.S_IMODE(os.lstat(site.ws / "suid").st_mode) == 0o755


@pytest.mark.parametrize("kind", ["chardev", "blockdev", "fifo"])
def test_special_files_are_refused(site: Site, kind: str) -> None:
    require_root()
    target = site.upper / "node"
    if kind == "chardev":
        os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null
    elif kind == "blockdev":
        os.mknod(target, stat.S_IFBLK | 0o666, os.makedev(7, 0))  # loop0
    else:
        os.mkfifo(target)
    cs = compute_changeset(site.upper, site.ws)
    with pytest.raises(ForbiddenChangeError):
        site.commit(cs)
    # Forged as a plain file: commit checks what upper really holds and refuses.
    forged = ChangeSet(
        (Change("node", ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644,
                new_size=0),)
    )  # fmt: skip
    with pytest.raises(CommitError):
        site.commit(forged)
    assert os.listdir(site.ws) == []


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "./x", "/abs", "a//b"])
def test_dotdot_and_odd_paths_are_refused(site: Site, path: str) -> None:
    write(site.upper / "escape", "x")
    forged = ChangeSet(
        (Change(path, ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644, new_size=1),)
    )
    with pytest.raises(ForbiddenChangeError, match="dotdot-path"):
        site.commit(forged)
    assert not (site.ws.parent / "escape").exists()
    assert os.listdir(site.ws) == []


def test_parent_swapped_for_symlink_between_diff_and_commit(site: Site) -> None:
    write(site.ws / "sub/config", "original\n")
    write(site.outside / "config", "outside original\n")
    site.outside_before = snapshot(site.outside)
    write(site.upper / "sub/config", "changed by the run\n")
    write(site.upper / "sub/new", "new file\n")
    cs = compute_changeset(site.upper, site.ws)
    # TOCTOU: the real dir moves away and a symlink to outside takes its place
    os.rename(site.ws / "sub", site.ws / "sub.moved")
    os.symlink(site.outside, site.ws / "sub")
    for force in (False, True):
        with pytest.raises(ConflictError, match="symlink"):
            site.commit(cs, force=force)
    site.assert_outside_untouched()
    assert (site.ws / "sub.moved/config").read_text() == "original\n"


def test_control_characters_refused(site: Site) -> None:
    write(site.upper / "evil\x1b]0;title\x07", "x")
    cs = compute_changeset(site.upper, site.ws)
    with pytest.raises(ForbiddenChangeError, match="control-char"):
        site.commit(cs)
    assert os.listdir(site.ws) == []


# -- crash at any instant ---------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sandbox.fs import commit_changeset, compute_changeset
    upper, ws, journal = map(Path, sys.argv[1:4])
    started = time.time_ns()
    cs = compute_changeset(upper, ws)
    print("go", flush=True)
    commit_changeset(cs, upper=upper, workspace=ws, journal_dir=journal, started_ns=started)
    print("done", flush=True)
    """
)


def _build_crash_fixture(root: Path) -> tuple[Path, Path]:
    template, upper = root / "template", root / "upper"
    for d in range(8):
        for f in range(15):
            write(template / f"dir{d}/f{f}.txt", f"line {d} {f}\n" * 3)
    write(template / "doomed/a/x", "x\n")
    write(template / "doomed/b", "b\n")
    os.symlink("dir0/f0.txt", template / "link")
    for d in range(8):  # ~ 80 modifications, some mode changes
        for f in range(10):
            mode = 0o755 if f == 9 else 0o644
            body = f"line {d} {f}\n" * 3 if f == 9 else f"changed {d} {f}\n"
            write(upper / f"dir{d}/f{f}.txt", body, mode)
    for n in range(100):  # new trees and files
        write(upper / f"new{n % 6}/sub{n % 3}/n{n}.py", f"print({n})\n")
    for d in range(8):  # deletions
        os.mknod(upper / f"dir{d}/f14.txt", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "doomed", stat.S_IFCHR, os.makedev(0, 0))
    os.symlink("dir1/f1.txt", upper / "link")
    (upper / "dir7/f13.txt").mkdir()  # file -> dir
    write(upper / "dir7/f13.txt/inside", "inside\n")
    return template, upper


def test_kill_9_at_random_instants_leaves_before_or_after(tmp_path: Path) -> None:
    require_root()
    template, upper = _build_crash_fixture(tmp_path)
    before = snapshot(template)
    after_ws = tmp_path / "after"
    shutil.copytree(template, after_ws, symlinks=True)
    cs = compute_changeset(upper, after_ws)
    assert len(cs) >= 180
    commit_changeset(
        cs, upper=upper, workspace=after_ws, journal_dir=tmp_path / "j0", started_ns=time.time_ns()
    )
    after = snapshot(after_ws)
    assert after != before

    env = {**os.environ, "SANDBOX_COMMIT_STEP_DELAY": "0.002"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([os.fspath(root), env.get("PYTHONPATH", "")])

    def start(ws: Path, journal: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, os.fspath(upper), os.fspath(ws), os.fspath(journal)],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        return proc

    # One undisturbed run to learn how long a commit takes with the step delay.
    ws = tmp_path / "timing"
    shutil.copytree(template, ws, symlinks=True)
    t0 = time.monotonic()
    proc = start(ws, tmp_path / "jt")
    assert proc.wait(timeout=120) == 0
    duration = time.monotonic() - t0
    assert snapshot(ws) == after

    seed = int(os.environ.get("SANDBOX_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    outcomes = {"before": 0, "after": 0, "recovered": 0}
    for trial in range(24):
        ws = tmp_path / f"ws{trial}"
        journal = tmp_path / f"j{trial}"
        shutil.copytree(template, ws, symlinks=True)
        proc = start(ws, journal)
        time.sleep(rng.uniform(0, duration * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes["recovered"] += len(recover_interrupted(journal))
        state = snapshot(ws)
        assert state in (before, after), f"trial {trial} (seed {seed}): workspace is in between"
        outcomes["before" if state == before else "after"] += 1
        assert recover_interrupted(journal) == ()
        shutil.rmtree(ws)
    print("crash outcomes", outcomes, "seed", seed)
    # The kill must really land inside commits, on both sides of the decision point.
    assert outcomes["recovered"] >= 5, (outcomes, seed)
