"""The library entry point: what `sandbox run` does, without the CLI.

    from sandbox.api import Runtime
    with Runtime() as rt:
        outcome = rt.run(["pytest", "-q"], workspace="/src/project", level=2)
        print(outcome.exit_code, outcome.state, [c.path for c in outcome.changeset])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from sandbox._home import HomeLayout
from sandbox._runner import Interaction, Runner, RunOutcome, RunRequest, check_workspace
from sandbox.audit import AuditLog
from sandbox.backends import Backend, get_backend
from sandbox.policy import Layer, load_policy
from sandbox.store import Store

__all__ = ["RunOutcome", "Runtime"]


class Runtime:
    """State dir, store, audit log and backend, opened once and reused across runs."""

    def __init__(self, home: Path | None = None, *, backend: Backend | None = None,
                 person: Interaction | None = None) -> None:
        self.layout = (HomeLayout(home) if home else HomeLayout.from_env()).ensure()
        from sandbox.fs import recover_interrupted

        recover_interrupted(self.layout.journal_dir)
        self.store = Store(self.layout)
        self.audit = AuditLog(self.layout.audit)
        self._backend = backend
        self._person = person

    def run(self, argv: Sequence[str], *, workspace: str | os.PathLike[str] = ".",
            level: int | None = None, session: str | None = None,
            env: Mapping[str, str | None] | None = None,
            policy_file: Path | None = None) -> RunOutcome:
        ws = check_workspace(Path(workspace))
        flags = Layer("api", "level=", {"level": level}) if level is not None else None
        effective = load_policy(ws, flags=flags, policy_file=policy_file)
        backend = self._backend or get_backend(effective.policy.backend)
        runner = Runner(self.layout, self.store, self.audit, backend, self._person)
        return runner.run(RunRequest(argv=tuple(argv), workspace=ws, policy=effective,
                                     session=session, env=dict(env or {})))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
