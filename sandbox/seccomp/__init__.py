"""Seccomp profiles: Docker/OCI JSON, enforced on every run through nsjail's Kafel.

`load_for_run` is the runtime's per-call entry point (cached, light to import). The authoring
tools (lint, show, compile, test, record) live behind the same package; they import their heavy
dependencies (jsonschema, libseccomp, ptrace via ctypes) only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.seccomp._load import (
    DEFAULT_PROFILE,
    TRANSLATOR_VERSION,
    find_profile,
    load_for_run,
    shipped_names,
)
from sandbox.seccomp._summary import denial_note
from sandbox.seccomp._target import Target

if TYPE_CHECKING:
    from sandbox.seccomp._lint import LintReport, Severity
    from sandbox.seccomp._model import Action, Op, Profile, loads, parse
    from sandbox.seccomp._resolve import Resolved, resolve, resolve_or_raise
    from sandbox.seccomp._show import Format
    from sandbox.seccomp._trace import Launch, Recording, TestReport

__all__ = [
    "DEFAULT_PROFILE",
    "TRANSLATOR_VERSION",
    "Action",
    "Format",
    "LintReport",
    "Op",
    "Profile",
    "Recording",
    "Resolved",
    "Severity",
    "Target",
    "TestReport",
    "compile_profile",
    "denial_note",
    "find_profile",
    "lint_file",
    "load_for_run",
    "load_profile",
    "loads",
    "parse",
    "record",
    "resolve",
    "resolve_or_raise",
    "shipped_names",
    "show",
    "test_profile",
]


def load_profile(name_or_path: str) -> tuple[str, Profile]:
    """(display name, parsed profile) for a shipped name or a path; ProfileError if bad."""
    from sandbox.seccomp._show import load_file

    return load_file(name_or_path)


def lint_file(path: Path | str) -> LintReport:
    from sandbox.seccomp._lint import lint_file as _lint_file

    return _lint_file(path)


def show(name_or_path: Path | str) -> str:
    from sandbox.seccomp._show import show as _show

    return _show(name_or_path)


def compile_profile(name_or_path: Path | str, fmt: Format | str) -> str | bytes:
    from sandbox.seccomp._show import Format
    from sandbox.seccomp._show import compile_profile as _compile

    return _compile(name_or_path, Format(fmt))


def test_profile(profile: Profile, launch: Launch, io_dir: Path, *, name: str,
                 stdout_to_stderr: bool = False) -> TestReport:
    """Run a command under the profile's tracing variant through `launch` (the runtime's own
    confined launch: sandbox._profiling); report what the profile denied."""
    from sandbox.seccomp._trace import test_profile as _test

    return _test(profile, launch, io_dir, name=name, stdout_to_stderr=stdout_to_stderr)


test_profile.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def record(launch: Launch, io_dir: Path, *, base: Profile, base_name: str) -> Recording:
    from sandbox.seccomp._trace import record as _record

    return _record(launch, io_dir, base=base, base_name=base_name)


_LAZY = {
    "Action": "sandbox.seccomp._model", "Op": "sandbox.seccomp._model",
    "Profile": "sandbox.seccomp._model", "loads": "sandbox.seccomp._model",
    "parse": "sandbox.seccomp._model", "Resolved": "sandbox.seccomp._resolve",
    "resolve": "sandbox.seccomp._resolve", "resolve_or_raise": "sandbox.seccomp._resolve",
}


def __getattr__(name: str) -> object:
    # Lazy exports: the parser, resolver, lint and show modules stay off the run path (a run
    # only needs load_for_run's cache hit).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "Format":
        from sandbox.seccomp._show import Format

        return Format
    if name == "Severity":
        from sandbox.seccomp._lint import Severity

        return Severity
    raise AttributeError(name)
