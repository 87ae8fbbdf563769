"""Nothing the workspace's repository configures runs on the host when `sandbox` uses git.

The attack: a repository whose hooks (`reference-transaction`, `post-index-change`, ...),
`core.fsmonitor`, filter, diff and gpg drivers are commands. `sandbox export` ran plain git
over it (`update-ref` runs the reference-transaction hook, `read-tree` post-index-change,
`check-ignore` the fsmonitor command), so whatever the repository named ran on the host as the
person running `sandbox`. Every host-side git call now goes through one wrapper that switches
them off. Each trap writes a marker file: after run, show, diff, export, review and approve
(each shown to have worked) there is none, while plain git over the same repository still
trips them (the traps are armed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, require
from tests.support.tty import Tty

HOOKS = ("post-checkout", "pre-commit", "post-commit", "reference-transaction",
         "post-index-change", "pre-auto-gc", "post-rewrite")
SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c",
        "commit.gpgSign=false")
AGENT = ("echo more >> README.md && git -c core.hooksPath=/dev/null -c core.fsmonitor=false "
         "-c commit.gpgSign=false -c user.name=Agent -c user.email=a@example.com "
         "commit -qam 'agent work' && echo later > later.txt && echo new > src/new.py")


def _git(ws: Path, *args: str, safe: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ws.parent),
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    return subprocess.run(["git", *(SAFE if safe else ()), "-C", str(ws), *args],
                          capture_output=True, text=True, env=env, check=False)


def _trap(bindir: Path, markers: Path, name: str) -> str:
    script = bindir / f"trap-{name}"
    bindir.mkdir(exist_ok=True)
    script.write_text(f"#!/bin/sh\ntouch {markers / name}\ncat >/dev/null 2>&1 || true\n")
    script.chmod(0o755)
    return str(script)


def _trapped_repo(ws: Path, base_dir: Path) -> Path:
    """The workspace as a repository whose every code-running setting writes a marker."""
    markers, bindir = base_dir / "markers", base_dir / "bin"
    markers.mkdir()
    bindir.mkdir()
    (ws / ".env").write_text("SECRET=1\n")  # a hidden tracked file: the run's git view works
    for args in (("init", "-q", "-b", "main"), ("add", "-A"),
                 ("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "base")):
        assert _git(ws, *args).returncode == 0
    hooks = ws / ".git" / "hooks"
    for hook in HOOKS:
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {markers / ('hook-' + hook)}\n")
        (hooks / hook).chmod(0o755)
    (ws / ".git" / "info" / "attributes").write_text("* filter=trap diff=trap\n")
    for key, name in (("core.fsmonitor", "fsmonitor"), ("gpg.program", "gpg"),
                      ("diff.external", "external-diff"), ("filter.trap.clean", "clean"),
                      ("filter.trap.smudge", "smudge"), ("diff.trap.textconv", "textconv"),
                      ("diff.trap.command", "diff-command"), ("core.pager", "pager")):
        assert _git(ws, "config", key, _trap(bindir, markers, name)).returncode == 0
    for key in ("commit.gpgSign", "log.showSignature"):
        assert _git(ws, "config", key, "true").returncode == 0
    return markers


def _nothing_ran(markers: Path, after: str) -> None:
    assert sorted(os.listdir(markers)) == [], f"ran on the host during `sandbox {after}`"


def test_no_hook_or_configured_command_of_the_repository_runs_on_the_host(
        cli: Cli, workspace: Path, base_dir: Path) -> None:
    require(shutil.which("git") is not None, "git")
    markers = _trapped_repo(workspace, base_dir)
    base = _git(workspace, "rev-parse", "HEAD").stdout.strip()
    r = cli("run", "-C", str(workspace), "--", "sh", "-c", AGENT)
    assert r.returncode == 0, r.stderr.decode()
    _nothing_ran(markers, "run")

    show = cli("show", "last")
    assert show.returncode == 0 and "agent work" in show.stdout.decode(), show
    shown = json.loads(cli("show", "last", "--json", check=True).stdout)
    tip = shown["git"]["refs"][0]["new"]
    _nothing_ran(markers, "show")
    diff = cli("diff", "last")
    assert diff.returncode == 0 and b"+more" in diff.stdout, diff
    _nothing_ran(markers, "diff")
    export = cli("export", "last", "--branch", "agent/x", "--include-protected")
    assert export.returncode == 0, export.stderr.decode()
    _nothing_ran(markers, "export")
    assert _git(workspace, "rev-parse", "agent/x~1").stdout.strip() == tip  # carried, plus one
    assert _git(workspace, "rev-parse", "main").stdout.strip() == base

    tty = Tty(cli, "review", "last")
    tty.wait("A src/new.py")
    tty.press("A", "[y] A src/new.py")  # accept all: the protected ref move stays for approve
    tty.press("q", "Apply your decisions?")
    tty.press("y")
    status, out = tty.finish()
    assert status == 0, out
    assert (workspace / "src" / "new.py").read_text() == "new\n"
    _nothing_ran(markers, "review")
    approve = cli("approve", "last", "--include-protected")
    assert approve.returncode == 0, approve.stderr.decode()
    assert _git(workspace, "rev-parse", "main").stdout.strip() == tip

    _nothing_ran(markers, "approve")
    # The traps are armed: plain git over the same repository trips them.
    assert _git(workspace, "update-ref", "refs/heads/probe", "HEAD", safe=False).returncode == 0
    _git(workspace, "status", safe=False)
    tripped = set(os.listdir(markers))
    assert {"hook-reference-transaction", "fsmonitor"} <= tripped, tripped


def test_a_racily_clean_file_is_not_read_through_the_repositorys_filter(
        base_dir: Path) -> None:
    """git re-reads a file modified in the second its index was written ("racily clean")
    when it writes that index, through the filter driver `.gitattributes` selects: the index
    view of hidden files writes index copies on the host, so the driver must be off there."""
    require(shutil.which("git") is not None, "git")
    from sandbox.fs._gitview import tracked

    ws = base_dir / "repo"
    ws.mkdir()
    (ws / ".env").write_text("SECRET=1\n")
    (ws / "a.txt").write_text("a\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"),
                 ("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "base")):
        assert _git(ws, *args).returncode == 0
    markers = base_dir / "markers"
    markers.mkdir()
    (ws / ".git" / "info" / "attributes").write_text("* filter=trap\n")
    assert _git(ws, "config", "filter.trap.clean", _trap(base_dir, markers, "clean")).returncode == 0
    assert _git(ws, "config", "filter.trap.required", "true").returncode == 0
    index = ws / ".git" / "index"

    def racy() -> None:  # the index as old as the files: every entry is racily clean
        t = (ws / "a.txt").stat().st_mtime_ns
        os.utime(index, ns=(t, t))

    racy()
    from sandbox.fs import _gitview

    _gitview._mark(ws, index, [".env"], on=True)  # the view's write of an index copy
    assert tracked(ws, [".env"], index) == {".env": True}  # it did mark the hidden file
    assert os.listdir(markers) == []
    racy()  # armed: plain git writing that index runs the driver
    _git(ws, "update-index", "--no-assume-unchanged", ".env", safe=False)
    assert os.listdir(markers), "the trap did not fire for plain git"
