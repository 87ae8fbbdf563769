"""Typed, validated policy with TOML layering (later layers only tighten) and provenance."""

from sandbox.policy._load import (
    Layer,
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
    DEFAULT_PROTECTED,
    EffectivePolicy,
    Level,
    Limits,
    Policy,
    ReviewAuto,
)

__all__ = [
    "DEFAULT_ENV_PASS",
    "DEFAULT_HIDE",
    "DEFAULT_PROTECTED",
    "EffectivePolicy",
    "Layer",
    "Level",
    "Limits",
    "Policy",
    "ReviewAuto",
    "load_policy",
    "merge",
    "parse_duration",
    "parse_size",
    "read_layer",
    "secret_env_name",
    "standard_layers",
]
