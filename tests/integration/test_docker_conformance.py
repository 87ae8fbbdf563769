"""The conformance suite on Docker: the escape suite, the seccomp probes and the CLI contract
tests (diff, commit, levels, exit codes, limits), unchanged, with the org policy choosing
`backend = "docker"`.

The test functions are the very ones of tests/security/test_escape.py, test_seccomp_probes.py,
tests/integration/test_run_cli.py and test_cli_misc.py (imported, not copied); only the `cli`
and `sbx` fixtures differ, so a test added there runs here too. Left out, each for a stated
reason: see _NOT_ON_DOCKER.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import Cli, require_nsjail
from tests.integration import test_cli_misc as _misc_suite
from tests.integration import test_run_cli as _cli_suite
from tests.integration.test_docker_backend import docker_org_policy, require_docker
from tests.security import test_escape as _escape_suite
from tests.security import test_seccomp_probes as _seccomp_suite

_NOT_ON_DOCKER = {
    # The docker backend stages the workspace overlay on the host, which needs root (a user
    # in the docker group is root-equivalent anyway); it refuses non-root callers with 125
    # (test_non_root_caller_is_refused_with_125 below). For the same reason `sbx` is root only.
    "test_unprivileged_user_run",
    # About the host and the nsjail binary, not about what a backend enforces.
    "test_doctor_reports_each_prerequisite",
    "test_missing_nsjail_fails_closed_with_125",
    # About nsjail's mechanism (RLIMIT_NPROC per user namespace, where the pids cgroup was) and
    # it watches the run's processes as children of `sandbox run`; a container's are the shim's.
    # Docker's limit is the container's own pids cgroup (PidsLimit), tested by the fork tests.
    "test_the_pids_limit_is_the_run_s_own_and_cannot_be_raised",
    # Replaced below by a version that also covers daemons older than Docker 23.
    "test_denied_inside_and_reached_outside",
}


@pytest.fixture
def cli(base_dir: Path) -> Cli:
    require_nsjail()  # seccomp profiles are compiled with the same tools on both backends
    require_docker()
    home = base_dir / "home" / "state"
    home.parent.mkdir()
    docker_org_policy(home)
    return Cli(home=home)


@pytest.fixture(params=["root"])
def sbx(request: pytest.FixtureRequest, cli: Cli, workspace: Path) -> tuple[Cli, Path]:
    """The suites' root/user pair, root only: the docker backend stages the workspace overlay
    on the host as root and refuses other callers (exit 125, tested below)."""
    return cli, workspace


def _adopt(module: ModuleType) -> None:
    """Collect the module's tests (and its fixtures) here, under this module's `cli`."""
    for name, obj in vars(module).items():
        if name in _NOT_ON_DOCKER:
            continue
        is_test = name.startswith("test_") and callable(obj)
        is_fixture = hasattr(obj, "_fixture_function_marker")  # module-level ones (canary)
        if is_test or is_fixture:
            globals()[name] = obj


_adopt(_escape_suite)
_adopt(_seccomp_suite)
_adopt(_cli_suite)
_adopt(_misc_suite)


@pytest.fixture(params=["run"])
def entry(request: pytest.FixtureRequest) -> str:
    """The escape suite's entries, `run` only: `profile test` and `profile record` trace the
    command with ptrace in front of nsjail, so under a docker-backend policy they refuse with
    125 and a hint (test_profile_tools_refuse_the_docker_backend below)."""
    value: str = request.param
    return value


def test_profile_tools_refuse_the_docker_backend(cli: Cli, workspace: Path) -> None:
    for argv in (["profile", "test", "-C", str(workspace), "default"],
                 ["profile", "record", "-C", str(workspace)]):
        r = cli(*argv, "--", "sh", "-c", "echo RAN")
        assert r.returncode == 125, (argv, r.returncode, r.stderr)
        assert b"RAN" not in r.stdout
        assert b"nsjail backend" in r.stderr, r.stderr


def _daemon_honours_default_errno() -> bool:
    from sandbox.backends._docker_client import connect, daemon_info

    return daemon_info(connect()).honours_default_errno


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_denied_inside_and_reached_outside(cli: Cli, workspace: Path, base_dir: Path,
                                           probe: Path, profile: str) -> None:
    """The marked-profile probe (a denial answers the profile's own errno, so it is provably
    the filter's) where the daemon can express it; on Docker < 23, which drops
    `defaultErrnoRet`, the marked profile must be refused (125) instead of running degraded,
    and the real profile must still deny every call that succeeds outside."""
    if _daemon_honours_default_errno():
        _seccomp_suite.test_denied_inside_and_reached_outside(cli, workspace, base_dir, probe,
                                                              profile)
        return
    s = _seccomp_suite
    marked = s.marked(base_dir, profile, defaultErrnoRet=s.MARK)
    r = cli("run", "-C", str(workspace), "--profile", str(marked), "--", "./probe", "unshare")
    assert r.returncode == 125, r.stderr
    assert b"defaultErrnoRet" in r.stderr and b"nsjail" in r.stderr
    got_out = s.outside(probe, "all")
    got_in = s.inside(cli, workspace, profile, "all")
    for name in s.DENIED:
        assert got_in.get(name) in ("errno=1", "errno=38"), (name, got_in.get(name))
        if name in s.MUST_SUCCEED_OUTSIDE:
            assert got_out[name] == "ok", (name, got_out[name])
    for name in s.CONTROLS:
        assert got_in[name] == "ok" == got_out[name], name


def test_the_suite_really_runs_on_docker(cli: Cli, workspace: Path) -> None:
    """Guard against the fixture override silently not applying: the run's record names the
    docker backend, and the container's hostname file is docker's."""
    r = cli("run", "-C", str(workspace), "--json", "--", "cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert b"/docker/" in r.stdout
    show = cli("show", "last", "--json", check=True)
    assert b'"docker"' in show.stdout


def test_non_root_caller_is_refused_with_125(user_cli: tuple[Cli, Path]) -> None:
    ucli, ws = user_cli
    docker_org_policy(ucli.home)
    require_docker()
    r = ucli("run", "-C", str(ws), "--", "true")
    assert r.returncode == 125, r.stderr
    assert b"root" in r.stderr and b"nsjail" in r.stderr  # says what to do instead
