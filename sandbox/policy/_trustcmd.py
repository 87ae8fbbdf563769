"""`sandbox trust [PATH] [--revoke]`: trust (or stop trusting) a repository's policy file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.errors import PolicyError
from sandbox.policy._load import (
    Untrusted,
    merge,
    org_forbids_trust,
    read_layer,
    standard_layers,
)
from sandbox.policy._model import Loosening
from sandbox.policy._trust import Trust, revoke, trust


@dataclass(frozen=True)
class TrustResult:
    path: Path
    digest: str | None  # None: revoked (or was not trusted)
    was_trusted: bool
    loosens: tuple[Loosening, ...]  # what the file loosens (applies only while trusted)


def policy_file_of(path: Path | None, workspace: Path) -> Path:
    """PATH as given (a file, or a directory's sandbox.toml); default the workspace's."""
    target = workspace if path is None else path
    if target.is_dir():
        target = target / "sandbox.toml"
    if not target.is_file():
        raise PolicyError(f"{target}: no policy file to trust",
                          hint="sandbox trust [PATH]: PATH is a policy file or a workspace "
                               "directory holding sandbox.toml")
    return target.resolve()


def trust_command(path: Path | None, workspace: Path, env: Mapping[str, str], *,
                  revoke_it: bool = False, trust_home: Path | None = None) -> TrustResult:
    from sandbox._home import ensure_home, sandbox_home

    home = trust_home or sandbox_home(env)
    target = policy_file_of(path, workspace)
    if revoke_it:
        return TrustResult(target, None, revoke(home, target), ())
    person = standard_layers(None, env, None, home)  # org and user: the person's layers
    forbidding = org_forbids_trust(person)
    if forbidding:
        raise PolicyError(f"{forbidding}: the org policy forbids trusting workspace policy "
                          "files (trust.workspaces = false)",
                          hint="ask for what the workspace needs in the org policy")
    # What the file would loosen, judged as if untrusted, so the person sees what they allow.
    repo = replace(read_layer("workspace", target), trust=Trust.UNTRUSTED)
    eff = merge([*person, repo], untrusted=Untrusted.IGNORE)
    ensure_home(home)
    digest = trust(home, target)
    return TrustResult(target, digest, True, eff.not_applied)
