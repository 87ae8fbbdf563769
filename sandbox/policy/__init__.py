"""Typed, validated policy with TOML layering (later layers only tighten) and provenance."""

from sandbox.policy._load import (
    Layer,
    Untrusted,
    field_rows,
    load_policy,
    merge,
    parse_duration,
    parse_size,
    read_layer,
    secret_env_name,
    standard_layers,
)
from sandbox.policy._model import (
    DEFAULT_ENV_PASS,
    DEFAULT_HIDE,
    DEFAULT_IGNORE,
    DEFAULT_PROTECTED,
    EffectivePolicy,
    Level,
    Limits,
    Loosening,
    Policy,
    ReviewAuto,
)
from sandbox.policy._trust import Trust, content_digest, revoke, trust
from sandbox.policy._trustcmd import TrustResult, trust_command

__all__ = [
    "DEFAULT_ENV_PASS",
    "DEFAULT_HIDE",
    "DEFAULT_IGNORE",
    "DEFAULT_PROTECTED",
    "EffectivePolicy",
    "Layer",
    "Level",
    "Limits",
    "Loosening",
    "Policy",
    "ReviewAuto",
    "Trust",
    "TrustResult",
    "Untrusted",
    "content_digest",
    "field_rows",
    "load_policy",
    "merge",
    "parse_duration",
    "parse_size",
    "read_layer",
    "revoke",
    "secret_env_name",
    "standard_layers",
    "trust",
    "trust_command",
]
