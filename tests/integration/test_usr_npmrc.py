"""npm's global config under /usr (/usr/etc/npmrc, /usr/local/etc/npmrc: npm's `globalconfig`
when its prefix is /usr or /usr/local) lies inside the /usr bind every sandbox gets, so an
`_authToken` a machine keeps there was shown to every run. The real file on the host, a real
`cat` in a sandbox on both backends: the token must not appear."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.backends._base import USR_NPMRC
from tests.conftest import Cli, require_nsjail, require_root
from tests.integration.test_docker_backend import docker_org_policy, require_docker

TOKEN = "npm_sandboxtesttoken0123456789abcdef"


@pytest.fixture
def host_npmrc() -> Iterator[None]:
    """Both files hold a token for the test's duration; what the host had is put back."""
    require_root()
    saved: list[tuple[Path, bytes | None, os.stat_result | None, bool]] = []
    try:
        for dst in USR_NPMRC:
            p = Path(dst)
            made_dir = not p.parent.exists()
            old = p.read_bytes() if p.exists() else None
            st = p.stat() if p.exists() else None
            saved.append((p, old, st, made_dir))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"//registry.npmjs.org/:_authToken={TOKEN}\n")
        yield
    finally:
        for p, old, st, made_dir in saved:
            if old is None or st is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(old)
                os.chmod(p, st.st_mode & 0o7777)
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
            if made_dir:
                p.parent.rmdir()


def _cat_shows_no_token(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--", "sh", "-c",
            f"cat {' '.join(USR_NPMRC)} && ls /usr/bin/env && echo RAN")
    assert r.returncode == 0, r.stderr  # both files are there to read, and were read
    assert r.stdout.rstrip().endswith(b"RAN")
    assert TOKEN.encode() not in r.stdout + r.stderr


def test_usr_npmrc_token_reaches_no_nsjail_sandbox(sbx: tuple[Cli, Path],
                                                   host_npmrc: None) -> None:
    _cat_shows_no_token(*sbx)


def test_usr_npmrc_token_reaches_no_docker_sandbox(base_dir: Path, workspace: Path,
                                                   host_npmrc: None) -> None:
    require_nsjail()  # seccomp compilation and the CLI's own checks still use it
    require_docker()
    home = base_dir / "home" / "state"
    home.parent.mkdir()
    docker_org_policy(home)
    _cat_shows_no_token(Cli(home=home), workspace)
