"""`profile test` and `profile record`, confined exactly like `sandbox run`.

The command runs through the runtime's own launch (sandbox._launch + the policy's backend): the
same user-namespace mapping, the snapshot with the hide list, the same mounts (no /root, /home,
Docker socket or $SANDBOX_HOME), the same network rules and limits. Two things differ: the
seccomp profile is the tracing variant of the profile under test, and a host-side tracer sits in
front of the backend's launcher to count and answer denials (sandbox.seccomp._trace). Nothing
the command writes reaches the workspace: its snapshot is thrown away, and the caller is told.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox._home import HomeLayout, SessionDirs
from sandbox._launch import attach_egress, image, launch_spec, prepare_snapshot, sandbox_env
from sandbox.errors import EnforcementError

if TYPE_CHECKING:
    from sandbox.backends import Seccomp
    from sandbox.policy import Policy
    from sandbox.seccomp import Profile, Recording, TestReport


@dataclass
class ConfinedLaunch:
    """A `Launch` for the profile tools: runs `argv` in `workspace` under `policy` and discards
    what it changed. Mutable on purpose: it collects notes and the discarded count while it
    runs, for the caller to report (one object per command)."""

    layout: HomeLayout
    workspace: Path
    policy: Policy
    argv: tuple[str, ...]
    timeout_s: float | None = None
    notes: list[str] = field(default_factory=list)
    discarded: int = 0

    def __call__(self, seccomp: Seccomp, tracer: tuple[str, ...]) -> int:
        from sandbox.backends import get_backend
        from sandbox.fs import compute_changeset

        scratch_root = self.layout.root / "profile-runs"
        scratch_root.mkdir(mode=0o700, exist_ok=True)
        dirs = SessionDirs(Path(tempfile.mkdtemp(prefix="p", dir=scratch_root)))
        try:
            snapshot, hidden = prepare_snapshot(self.layout, dirs, self.workspace, self.policy)
            image_root, _ = image(self.policy.image)
            env = sandbox_env(self.policy, {}, os.environ)
            spec = launch_spec(self.argv, snapshot, env, seccomp, dirs.root / "run",
                               self.policy, image_root)
            limit = _tighter(spec.limits.timeout_s, self.timeout_s)
            spec = replace(spec, tracer=tracer, limits=replace(spec.limits, timeout_s=limit))
            backend = get_backend(self.policy.backend)
            with contextlib.ExitStack() as stack:
                if self.policy.egress_allow:
                    from sandbox.egress import EgressPolicy

                    rules = EgressPolicy.from_strings(
                        self.policy.egress_allow, ceiling=self.policy.egress_ceiling,
                        allow_addresses=self.policy.egress_allow_addresses)
                    spec = attach_egress(stack, spec, rules, run_id=dirs.root.name,
                                         notes=self.notes)
                result = backend.launch(spec)
            if result.backend_error:
                raise EnforcementError(f"sandbox failed: {result.backend_error}",
                                       hint="`sandbox doctor` checks this host's prerequisites")
            if result.timed_out:
                self.notes.append(f"timed out after {limit:g}s" if limit else "timed out")
            self.discarded = len(compute_changeset(snapshot.upper, self.workspace,
                                                   hidden=hidden).changes)
            return result.exit_code
        finally:
            remove_tree(dirs.root)

    def discard_note(self) -> str:
        what = (f"the command's {self.discarded} change(s) to the workspace were discarded"
                if self.discarded else "the command changed nothing in the workspace")
        return f"{what} (profile test and record never change the workspace)"


def _tighter(a: float | None, b: float | None) -> float | None:
    given = [x for x in (a, b) if x]
    return min(given) if given else None


def remove_tree(root: Path) -> None:
    """Remove a throw-away snapshot, including overlayfs' mode-000 work dirs."""

    def onexc(func: object, path: str, exc: BaseException) -> None:
        parent = os.path.dirname(path)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            os.chmod(path, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    shutil.rmtree(root, onexc=onexc)


def test_profile(launch: ConfinedLaunch, profile: Profile, *, name: str,
                 stdout_to_stderr: bool = False) -> TestReport:
    from sandbox import seccomp

    with tempfile.TemporaryDirectory(prefix="sandbox-trace-") as io_dir:
        return seccomp.test_profile(profile, launch, Path(io_dir), name=name,
                                    stdout_to_stderr=stdout_to_stderr)


test_profile.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def record(launch: ConfinedLaunch, base: Profile, *, base_name: str) -> Recording:
    from sandbox import seccomp

    with tempfile.TemporaryDirectory(prefix="sandbox-trace-") as io_dir:
        return seccomp.record(launch, Path(io_dir), base=base, base_name=base_name)
