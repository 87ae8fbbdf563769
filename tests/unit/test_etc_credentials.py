"""The host's /etc/gitconfig, /etc/npmrc and /etc/environment are shown to every sandbox (nsjail
and Docker alike), and CI machines keep tokens there (`git config --system url."https://x:TOKEN@
host/".insteadOf ...`, an npm `_authToken`, a TOKEN= line). One that might hold a credential is
shown to none; one without stays (programs in the sandbox use it)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sandbox.backends._base import LaunchSpec, Limits, Seccomp, Snapshot
from sandbox.backends._docker_config import host_view_mounts, host_view_tar
from sandbox.backends._limits import Enforcer, LimitPlan
from sandbox.backends._nsjail_config import build_config

TOKEN = "ghs_sandboxtesttoken0123456789"


def _seen(root: Path) -> tuple[set[str], set[str], set[str]]:
    """/etc entries each view shows: nsjail's mounts, Docker's binds and its skeleton."""
    spec = LaunchSpec(argv=("true",), snapshot=Snapshot(root, root, root), scratch=root, env={},
                      seccomp=Seccomp("default", "d", "ALLOW {}"), limits=Limits())
    plan = LimitPlan(Enforcer.FALLBACK, Enforcer.FALLBACK, Enforcer.FALLBACK)
    cfg = build_config(spec, outside_uid=1000, outside_gid=1000, rootless_overlay=True,
                       limits=plan, host_root=root)
    nsjail = {m.dst for m in cfg.mount if m.dst.startswith("/etc/") and m.src}
    docker = {str(m["Target"]) for m in host_view_mounts(root) if str(m["Target"]).startswith("/etc/")}
    with tarfile.open(fileobj=io.BytesIO(host_view_tar(root))) as tar:
        skeleton = {"/" + n for n in tar.getnames() if n.startswith("etc/")}
    return nsjail, docker, skeleton


@pytest.mark.parametrize("config", [
    f'[url "https://x-access-token:{TOKEN}@github.com/"]\n\tinsteadOf = https://github.com/\n',
    f"[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic {TOKEN}\n",
    "[credential]\n\thelper = store\n",
])
def test_a_system_gitconfig_with_a_credential_reaches_no_sandbox(tmp_path: Path,
                                                                 config: str) -> None:
    (tmp_path / "etc" / "ssl").mkdir(parents=True)
    (tmp_path / "etc" / "gitconfig").write_text(config)
    for view in _seen(tmp_path):
        assert "/etc/ssl" in view  # the host's /etc is shown at all
        assert "/etc/gitconfig" not in view, view


def test_a_system_gitconfig_without_one_is_still_shown(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "gitconfig").write_text("[safe]\n\tdirectory = *\n")
    for view in _seen(tmp_path):
        assert "/etc/gitconfig" in view, view


@pytest.mark.parametrize(("name", "content"), [
    ("npmrc", f"//registry.npmjs.org/:_authToken={TOKEN}\n"),
    ("npmrc", "_auth=dXNlcjpwYXNz\n"),
    ("environment", f'PATH="/usr/bin:/bin"\nGITHUB_TOKEN={TOKEN}\n'),
    ("environment", f"http_proxy=http://ci:{TOKEN}@proxy.corp:3128\n"),
    ("xdg/pip/pip.conf", f"[global]\nindex-url = https://ci:{TOKEN}@pypi.corp/simple\n"),
])
def test_npmrc_environment_and_pip_conf_with_a_credential_reach_no_sandbox(tmp_path: Path, name: str,
                                                                  content: str) -> None:
    (tmp_path / "etc" / "ssl").mkdir(parents=True)
    (tmp_path / "etc" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / name).write_text(content)
    top = name.split("/")[0]
    for view in _seen(tmp_path):
        assert "/etc/ssl" in view
        assert f"/etc/{top}" not in view, view


def test_plain_npmrc_and_environment_are_still_shown(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "npmrc").write_text("cafile=/etc/ssl/certs/ca-certificates.crt\n")
    (tmp_path / "etc" / "environment").write_text('PATH="/usr/local/bin:/usr/bin:/bin"\n')
    (tmp_path / "etc" / "xdg" / "pip").mkdir(parents=True)
    (tmp_path / "etc" / "xdg" / "pip" / "pip.conf").write_text("[global]\nconstraint = c.txt\n")
    for view in _seen(tmp_path):
        assert {"/etc/npmrc", "/etc/environment", "/etc/xdg"} <= view, view


@pytest.mark.parametrize(("content", "hidden"), [
    (f"//registry.npmjs.org/:_authToken={TOKEN}\n", True),
    ("prefix=/usr/local\n", False),
])
def test_npm_global_config_under_usr(tmp_path: Path, content: str, hidden: bool) -> None:
    """/usr/etc/npmrc and /usr/local/etc/npmrc lie inside the /usr bind: one that might hold a
    credential is covered (nsjail: a file over it; Docker: a read-only bind over it), a plain
    one is left to show, and one the host lacks gets no mount (it would need a mount point)."""
    (tmp_path / "usr" / "etc").mkdir(parents=True)
    (tmp_path / "usr" / "etc" / "npmrc").write_text(content)
    spec = LaunchSpec(argv=("true",), snapshot=Snapshot(tmp_path, tmp_path, tmp_path),
                      scratch=tmp_path, env={}, seccomp=Seccomp("default", "d", "ALLOW {}"),
                      limits=Limits())
    plan = LimitPlan(Enforcer.FALLBACK, Enforcer.FALLBACK, Enforcer.FALLBACK)
    cfg = build_config(spec, outside_uid=1000, outside_gid=1000, rootless_overlay=True,
                       limits=plan, host_root=tmp_path)
    dsts = [m.dst for m in cfg.mount]
    over = {"/usr/etc/npmrc"} if hidden else set()
    assert {d for d in dsts if d.endswith("npmrc")} == over
    if hidden:  # after the /usr bind, or the bind would cover it again
        assert dsts.index("/usr") < dsts.index("/usr/etc/npmrc")
    docker = {str(m["Target"]) for m in host_view_mounts(tmp_path)}
    assert {d for d in docker if d.endswith("npmrc")} == over
