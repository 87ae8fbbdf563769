"""Build output is not proposed; a venv's links into the system need a person, not a refusal;
new files in new directories clobber nothing; `[hide] except` un-hides, from the person only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, give

pytestmark = pytest.mark.parametrize("sbx", ["root", "user"], indirect=True)

BUILD = ("mkdir -p __pycache__ build node_modules/p venv/bin certs; echo c > __pycache__/m.pyc; "
         "echo o > build/out.o; echo j > node_modules/p/index.js; "
         "ln -s /usr/bin/python3 venv/bin/python3; echo pem > certs/cacert.pem; "
         "ln -s /usr/bin/python3 tool; echo edit >> README.md")


def _paths(cli: Cli, ref: str, *args: str) -> set[str]:
    data = json.loads(cli("diff", ref, "--json", *args, check=True).stdout)
    return {c["path"] for c in data["changes"]}


def test_ignored_output_is_not_proposed(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    (ws / ".gitignore").write_text("build/\n*.log\n")
    (ws / "kept.log").write_text("tracked although it matches\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "add", "-f", "kept.log"],
                   check=True)
    give(cli, ws)
    r = cli("run", "-C", str(ws), "--session", "b", "--", "sh", "-c",
            BUILD + "; echo more >> kept.log", check=True)
    err = r.stderr.decode()
    assert "4 ignored files (0.0 MB) not proposed" in err, err
    assert "forbidden" not in err.lower() and "refused" not in err, err
    # git ignores untracked files only: an edit to a tracked one is proposed
    assert _paths(cli, "b") == {"README.md", "tool", "certs", "certs/cacert.pem", "kept.log"}
    show = cli("show", "b", check=True).stdout.decode()
    assert "tool [symlink]  (protected)" in show and "4 ignored files" in show
    cli("approve", "b", "--include-protected", check=True)
    assert (ws / "tool").is_symlink() and (ws / "certs/cacert.pem").exists()
    assert not (ws / "build").exists() and not (ws / "venv").exists()
    assert json.loads(cli("show", "b", "--json", check=True).stdout)["state"] == "committed"
    # the session is closed: its ignored output went with it
    show = cli("show", "b", check=True).stdout.decode()
    assert "ignored files" not in show and "nothing pending" in show


def test_ignored_output_on_request_and_system_links_at_level4(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    r = cli("run", "-C", str(ws), "--level", "4", "--session", "v", "--", "sh", "-c", BUILD,
            check=True)
    assert b"refused tool: symlink into the system view (/usr/bin/python3)" in r.stderr, r.stderr
    assert (ws / "README.md").read_text() == "hello\nedit\n" and not (ws / "tool").exists()
    assert _paths(cli, "v") == {"tool"}
    cli("approve", "v", "--include-ignored", "--include-protected", check=True)
    assert (ws / "venv/bin/python3").is_symlink() and (ws / "node_modules/p/index.js").exists()


def test_hide_except_from_the_person_only(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    for name in (".env", ".env.example", "tests/fixtures/server.key"):
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(f"{name}\n")
    give(cli, ws)
    show = "cat .env.example tests/fixtures/server.key; cat .env || echo HIDDEN"
    out = cli("run", "-C", str(ws), "--", "sh", "-c", show, check=True).stdout.decode()
    assert "HIDDEN" in out and ".env.example" not in out  # hidden by default
    (ws / "sandbox.toml").write_text('[hide]\nexcept = ["**/.env.example"]\n')
    give(cli, ws / "sandbox.toml")
    r = cli("run", "-C", str(ws), "--", "sh", "-c", show)
    assert r.returncode == 2 and b"hide.except" in r.stderr, r.stderr
    (ws / "sandbox.toml").unlink()
    config = cli.home.parent / ".config" / "sandbox"
    config.mkdir(parents=True)
    (config / "policy.toml").write_text(
        '[hide]\nexcept = ["**/.env.example", "tests/fixtures/**"]\n')
    give(cli, cli.home.parent / ".config")
    r = cli("run", "-C", str(ws), "--", "sh", "-c", show + "; echo new > .env.example",
            check=True)
    out = r.stdout.decode()
    assert ".env.example\n" in out and "tests/fixtures/server.key\n" in out, out
    assert "HIDDEN" in out and "SECRET" not in out
    assert b"forbidden" not in r.stderr.lower()  # an un-hidden file may be changed
