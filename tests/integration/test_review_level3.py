"""Level 3 (`[review.auto]` rules): each rule holds the changesets it should and passes the
ones it should, through real runs; `sandbox show` says why in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

POLICY = """\
level = 3
[review.auto]
max_files = 3
max_lines = 20
deny_paths = ["secrets/**"]
allow_paths = ["src/**", "docs/**", "*.md"]
"""


def _run(cli: Cli, workspace: Path, script: str, policy: str = POLICY) -> dict[str, object]:
    (workspace / "sandbox.toml").write_text(policy)
    cli("trust", str(workspace), check=True)  # level 3 loosens the default: the person trusts it
    r = cli("run", "-C", str(workspace), "--json", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    data: dict[str, object] = json.loads(r.stdout)
    return data


def _show(cli: Cli) -> str:
    return cli("show", "last", check=True).stdout.decode()


def test_small_change_inside_the_allowed_paths_commits(cli: Cli, workspace: Path) -> None:
    out = _run(cli, workspace, "echo 'x = 1' >> src/app.py; echo more >> README.md")
    assert out["state"] == "open"  # all committed: the session stays open for the next run
    assert (workspace / "src" / "app.py").read_text() == "print('hi')\nx = 1\n"
    assert "auto-commits" in cli("audit", "last", check=True).stdout.decode()


@pytest.mark.parametrize(("script", "held"), [
    ("for i in 1 2 3 4; do echo $i > src/f$i.py; done",
     "held: 4 files changed (review.auto.max_files = 3)"),
    ("seq 1 30 > src/big.py", "held: 30 lines changed (review.auto.max_lines = 20)"),
    ("mkdir -p src/secrets; echo k > src/secrets/x; mkdir secrets; echo k > secrets/y",
     "held: touches secrets/y (review.auto.deny_paths 'secrets/**')"),
    ("echo x > setup.py",
     "held: touches setup.py, outside review.auto.allow_paths ['src/**', 'docs/**', '*.md']"),
    ("printf '#!/bin/sh\\n' > src/run.sh; chmod +x src/run.sh",
     "held: new executable src/run.sh (review.auto.new_executables = false)"),
    ("printf 'a\\0b' > src/blob.bin", "held: binary file src/blob.bin "
     "(review.auto.binaries = false)"),
], ids=["max_files", "max_lines", "deny_paths", "allow_paths", "new_executables", "binaries"])
def test_each_rule_holds_and_show_says_why(cli: Cli, workspace: Path, script: str,
                                          held: str) -> None:
    before = sorted(p.name for p in (workspace / "src").iterdir())
    out = _run(cli, workspace, script)
    assert out["state"] == "pending"
    assert sorted(p.name for p in (workspace / "src").iterdir()) == before
    assert held in _show(cli)


def test_deletions_rule(cli: Cli, workspace: Path) -> None:
    allow_del = POLICY + "deletions = true\n"
    (workspace / "docs").mkdir()
    (workspace / "docs" / "a.md").write_text("a\n")
    (workspace / "docs" / "b.md").write_text("b\n")
    assert _run(cli, workspace, "rm docs/a.md", allow_del)["state"] == "open"
    assert not (workspace / "docs" / "a.md").exists()
    no_del = POLICY + "deletions = false\n"
    assert _run(cli, workspace, "rm docs/b.md", no_del)["state"] == "pending"
    assert (workspace / "docs" / "b.md").exists()
    assert "held: deletes docs/b.md (review.auto.deletions = false)" in _show(cli)


def test_protected_change_is_held_while_the_rest_commits(cli: Cli, workspace: Path) -> None:
    policy = POLICY.replace('"*.md"]', '"*.md", ".github/**"]')
    (workspace / ".github" / "workflows").mkdir(parents=True)
    out = _run(cli, workspace, "echo evil > .github/workflows/ci.yml; echo more >> README.md",
               policy)
    assert (workspace / "README.md").read_text() == "hello\nmore\n"
    assert not (workspace / ".github" / "workflows" / "ci.yml").exists()
    assert out["state"] == "partial"  # README.md committed, the protected file still pending
    assert "held: touches .github/workflows/ci.yml (protected path" in _show(cli)
    pending = json.loads(cli("diff", "last", "--json", check=True).stdout)["changes"]
    assert ".github/workflows/ci.yml" in {c["path"] for c in pending}


def test_new_directory_for_allowed_files_does_not_hold(cli: Cli, workspace: Path) -> None:
    out = _run(cli, workspace, "mkdir docs; echo a > docs/a.md")
    assert out["state"] == "open"  # all committed: the session stays open for the next run
