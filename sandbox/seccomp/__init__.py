"""Seccomp profiles: Docker/OCI JSON, enforced on every run through nsjail's Kafel.

`load_for_run` is the runtime's per-call entry point (cached, light to import). The authoring
tools (lint, show, compile, test, record) live behind the same package; they import their heavy
dependencies (jsonschema, libseccomp) only when called.
"""

from sandbox.seccomp._load import DEFAULT_PROFILE, find_profile, load_for_run, shipped_names
from sandbox.seccomp._model import Action, Op, Profile, loads, parse
from sandbox.seccomp._resolve import Resolved, Target, resolve

__all__ = [
    "DEFAULT_PROFILE",
    "Action",
    "Op",
    "Profile",
    "Resolved",
    "Target",
    "find_profile",
    "load_for_run",
    "loads",
    "parse",
    "resolve",
    "shipped_names",
]
