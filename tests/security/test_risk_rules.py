"""Risk rules judge what a reviewer would, and `sandbox diff` never carries what approve
refuses.

The attacks a new user found: 4,000 random non-zero bytes were shown as a text change (`+17
-0`) and committed automatically at level 3 under `binaries = false` (the rule looked only for
NUL bytes); `sandbox diff RUN | git apply` wrote a symlink to `../../etc/passwd` that `approve`
refuses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, require

MAKE_BLOBS = (
    "python3 -c \"import os\n"
    "open('noise.dat', 'wb').write(bytes(b % 255 + 1 for b in os.urandom(4000)))\n"
    "open('latin1.txt', 'wb').write(b'caf\\xe9 cr\\xe8me\\n')\n"
    "open('ansi.txt', 'wb').write(b'ok \\x1b]0;title\\x07 \\x1b[2J\\n')\"; echo ATTACK-RAN"
)


def test_not_text_is_binary_for_level_3(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--level", "3", "--json", "--", "sh", "-c", MAKE_BLOBS)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and "ATTACK-RAN" in out["stdout"], r.stderr
    for name in ("noise.dat", "latin1.txt", "ansi.txt"):
        change = next(c for c in out["changes"]["changes"] if c["path"] == name)
        assert change["binary"] is True, change
        assert not (workspace / name).exists()
    assert out["state"] == "pending", out["decision"]
    assert "binary file" in json.dumps(out["decision"])


def test_diff_leaves_forbidden_changes_out(cli: Cli, workspace: Path, base_dir: Path) -> None:
    require(shutil.which("git") is not None, "git")
    r = cli("run", "-C", str(workspace), "--", "sh", "-c",
            "ln -s ../../etc/passwd pw; echo new > b.txt; echo ATTACK-RAN")
    assert r.returncode == 0 and b"ATTACK-RAN" in r.stdout, r.stderr
    copy = base_dir / "copy"
    shutil.copytree(workspace, copy, symlinks=True)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    diff = cli("diff", "last")
    assert diff.returncode == 0
    subprocess.run(["git", "-C", str(copy), "apply"], input=diff.stdout, check=True)
    assert (copy / "b.txt").read_text() == "new\n"  # the rest applies
    assert not os.path.lexists(copy / "pw")  # never what approve refuses
    assert b"pw: forbidden, left out of the patch (symlink-escape" in diff.stderr, diff.stderr
    approve = cli("approve", "last", "pw")
    assert approve.returncode != 0 and not os.path.lexists(workspace / "pw")
    forensic = cli("diff", "last", "--include-forbidden").stdout.decode()
    marker = forensic.index("# FORBIDDEN: pw: symlink-escape")
    assert forensic.index("diff --git a/pw b/pw") > marker
