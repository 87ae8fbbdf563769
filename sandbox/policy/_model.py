"""The typed policy: what one run is allowed to do, and how its changes are governed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class Level(IntEnum):
    """Governance maturity level. A lower number means more human involvement: tighter."""

    HUMAN_IN_THE_LOOP = 1
    HUMAN_ON_THE_LOOP = 2
    HUMAN_AS_ORCHESTRATOR = 3
    HUMAN_OUTSIDE_THE_LOOP = 4


# What the sandbox never sees, whatever the policy says: these are added to every hide list.
DEFAULT_HIDE = (
    ".env*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", ".netrc", ".npmrc",
    ".pypirc", ".aws/", ".ssh/", ".gnupg/", ".docker/config.json", ".git-credentials",
    ".git/credentials",
)

# Build output and caches: what these match is not proposed as a change ("N ignored files not
# proposed"), like what the workspace's .gitignore files ignore; `approve --include-ignored`.
DEFAULT_IGNORE = ("__pycache__/", "*.pyc", ".pytest_cache/", "node_modules/", ".venv/", "venv/")

# Changes here always need a person below level 4 and are refused at level 4 unless the
# policy allows them by name (`protect.allow_at_level4`).
DEFAULT_PROTECTED = (
    "sandbox.toml", ".sandbox/**", ".github/workflows/**", ".gitlab-ci.yml", ".circleci/**",
    "Jenkinsfile", ".git/hooks/**", ".git/config", ".git/**", ".bashrc", ".bash_profile",
    ".profile", ".zshrc", ".zprofile", ".envrc", ".gitattributes", ".gitmodules",
    ".pre-commit-config.yaml", ".husky/**", ".vscode/tasks.json", "Makefile", "*.mk",
)

# Host variables passed through by default (values from the host environment).
DEFAULT_ENV_PASS = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "COLORTERM", "NO_COLOR")

# Variables whose host value is never inherited, whatever the policy says (`-e NAME` without a
# value). An explicit `-e NAME=VALUE` is the caller's own decision and is audited by name.
SECRET_ENV_PATTERNS = (
    "*KEY*", "*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*", "AWS_*",
    "ANTHROPIC_*", "OPENAI_*", "GITHUB_*", "GH_*", "SSH_AUTH_SOCK", "DOCKER_*",
)


@dataclass(frozen=True)
class Limits:
    timeout_s: float | None = None
    memory_bytes: int | None = None
    cpus: float | None = None
    pids: int | None = 4096
    write_bytes: int | None = 2 << 30
    output_bytes: int | None = 8 << 20


@dataclass(frozen=True)
class ReviewAuto:
    """Level-3 rules: a changeset commits automatically only if every rule passes."""

    max_files: int = 20
    max_lines: int = 500
    # A path must match at least one glob of every layer that set allow_paths.
    allow_paths: tuple[tuple[str, ...], ...] = ()
    deny_paths: tuple[str, ...] = ()
    new_executables: bool = False
    binaries: bool = False
    deletions: bool = True


@dataclass(frozen=True)
class Policy:
    level: Level = Level.HUMAN_ON_THE_LOOP
    backend: str = "nsjail"
    profile: str = "default"
    image: str = "host"
    limits: Limits = field(default_factory=Limits)
    hide: tuple[str, ...] = DEFAULT_HIDE
    hide_git: bool = False  # [hide] git = true: .git hidden whole (adds ".git/" to `hide`)
    # [hide] except: shown although `hide` matches (`**/.env.example`, `tests/fixtures/**`);
    # a grant: a repository's file may add to it only when trusted.
    hide_except: tuple[str, ...] = ()
    changes_ignore: tuple[str, ...] = DEFAULT_IGNORE  # [changes] ignore
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    allow_at_level4: tuple[str, ...] = ()
    review_auto: ReviewAuto = field(default_factory=ReviewAuto)
    egress_allow: tuple[str, ...] = ()
    egress_ceiling: tuple[str, ...] | None = None
    # Addresses/ranges that allowed names may resolve into (private, loopback...) without
    # allowing the IP literal itself.
    egress_allow_addresses: tuple[str, ...] = ()
    env_pass: tuple[str, ...] = DEFAULT_ENV_PASS
    # [llm]: model access through the LLM gateway (`run --llm`); the run gets a virtual key.
    llm_enabled: bool = False
    llm_gateway: str | None = None  # None: $SANDBOX_GATEWAY_URL, else a gateway in-process
    llm_budget_usd: float | None = None  # per session
    llm_models: tuple[str, ...] = ()  # globs; empty: whatever the gateway routes
    # org only: false forbids trusting workspace policy files (`sandbox trust`)
    trust_workspaces: bool = True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = int(self.level)
        return data

    def digest(self) -> str:
        canon = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True)
class Loosening:
    """A field an untrusted repository policy file would loosen (not applied)."""

    field: str  # dotted TOML name, e.g. "egress.allow"
    change: str  # e.g. "= 4 (yours: 2)" or 'adds "localhost:8765"'
    where: str  # file:line
    ceiling: str  # the layer whose value it would loosen ("built-in" for the defaults)


@dataclass(frozen=True)
class EffectivePolicy:
    """The merged policy plus, for each field, the layer that set it ("built-in" if none)."""

    policy: Policy
    sources: Mapping[str, str]
    layers: tuple[str, ...]
    kinds: Mapping[str, str] = field(default_factory=dict)  # attr -> layer kind
    trust: Mapping[str, str] = field(default_factory=dict)  # attr -> Trust value
    not_applied: tuple[Loosening, ...] = ()  # untrusted loosening (Untrusted.IGNORE)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "built-in")

    def trust_of(self, name: str) -> str:
        """"yours" (built-in, org, user, flags), "trusted" or "untrusted" (a repository's)."""
        return self.trust.get(name, "yours")

    def from_repository(self, *names: str) -> list[str]:
        """Those of `names` that a repository's policy file set (trusted, or tightening)."""
        return [n for n in names if self.trust_of(n) != "yours"]
