"""The egress contract with the real nsjail backend: `LaunchSpec(network=EGRESS, extra_mounts=
handle.mounts, wrapper=handle.wrapper, env=... | handle.env)` is all the run flow passes.

As root the backend maps the sandbox to an unprivileged outside uid and stages the workspace
through an idmapped overlay; the egress dir must still be reachable by that uid.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.backends import LaunchSpec, Network, Snapshot, get_backend
from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.egress import EgressPolicy, EgressRule, mapped_resolver, start
from tests.conftest import require_nsjail, require_root
from tests.support.egress_env import origin


def _spec(state: Path, argv: tuple[str, ...], **kw: object) -> LaunchSpec:
    from sandbox.seccomp import load_for_run

    ws = state / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello\n")
    for name in ("upper", "work", "cache"):
        (state / name).mkdir()
    return LaunchSpec(
        argv=argv,
        snapshot=Snapshot(lower=ws, upper=state / "upper", work=state / "work"),
        env={"PATH": "/usr/bin:/bin", **kw.pop("env", {})},  # type: ignore[dict-item]
        seccomp=load_for_run("default", cache_dir=state / "cache"),
        scratch=state / "scratch",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    require_nsjail()
    require_root()
    tmp_path.chmod(0o700)  # like $SANDBOX_HOME: nobody else may enter
    return tmp_path


@pytest.mark.parametrize("backend_name", ["nsjail", "docker"])
def test_egress_through_the_backend(state: Path, backend_name: str) -> None:
    if backend_name == "docker":
        from tests.integration.test_docker_backend import require_docker

        require_docker()
    with origin("plain") as port:
        policy = EgressPolicy.from_strings([f"allowed.test:{port}"], allow_addresses=["127.0.0.1"])
        resolver = mapped_resolver({"allowed.test": ["127.0.0.1"]}, None)
        with start(policy, run_id="r-b", run_dir=state / "scratch", resolver=resolver) as handle:
            script = f"curl -sS http://allowed.test:{port}/x; curl -sS -m 3 http://evil.test/ | head -c 37"
            spec = _spec(
                state,
                ("/bin/sh", "-c", script),
                env=handle.env,
                network=Network.EGRESS,
                extra_mounts=handle.mounts,
                wrapper=handle.wrapper,
            )
            backend = get_backend(backend_name, capture=True)
            result = backend.launch(spec)
            verdicts = [(e.host, e.verdict.value) for e in handle.events()]
        egress_dir = handle.dir
    assert result.exit_code == 0, result.backend_error
    got = backend.captured.stdout.decode()  # type: ignore[attr-defined]
    assert got == f"plain /x host=allowed.test:{port}\nsandbox egress proxy refused this GET"
    assert verdicts == [("allowed.test", "allowed"), ("evil.test", "denied")]
    assert not egress_dir.exists()


def test_no_egress_means_no_network_at_all(state: Path) -> None:
    spec = _spec(
        state,
        ("/bin/sh", "-c", "curl -sS -m 3 http://1.1.1.1/; echo rc=$?; ls /run/sandbox-egress"),
    )
    backend = get_backend("nsjail", capture=True)
    result = backend.launch(spec)
    captured = backend.captured  # type: ignore[attr-defined]
    assert result.exit_code != 0
    assert b"rc=7" in captured.stdout  # couldn't connect: no route
    assert b"No such file" in captured.stderr


def test_egress_dir_is_not_listable_by_others(state: Path) -> None:
    policy = EgressPolicy((EgressRule.parse("a.test"),))
    with start(policy, run_id="r-perm", run_dir=state / "scratch") as handle:
        base = handle.dir.parent
        assert oct(base.stat().st_mode & 0o777) == "0o711"
        assert base.stat().st_uid == 0
        assert handle.dir.name.startswith("r-perm-") and len(handle.dir.name) == len("r-perm-") + 16
        # the sandbox's outside uid alone may connect (tests/security/test_agent_socket.py)
        sock = os.stat(handle.dir / "proxy.sock")
        assert oct(sock.st_mode & 0o777) == "0o600" and sock.st_uid == MAPPED_ROOT_ID
