"""The policy a session's changes are judged by, kept with the session.

`approve`, `review`, `export` and the level-3 rules judge a session's changes with the policy its
runs ran under, not with whatever the workspace's `sandbox.toml` says later (a run could not
change the policy it ran under; an edit after it must not change how its result is judged).
Only the deciding fields are kept, with the digest of the whole effective policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

from sandbox.policy import Level, Policy, ReviewAuto

__all__ = ["DECIDING", "policy_from_record", "policy_record"]

# The fields that decide what happens to changes (everything else shapes the run itself).
DECIDING = ("level", "hide", "protected", "allow_at_level4", "review_auto", "hide_except",
            "changes_ignore")


def policy_record(policy: Policy) -> dict[str, Any]:
    data: dict[str, Any] = {"digest": policy.digest(), "level": int(policy.level)}
    for name in DECIDING[1:]:
        value = getattr(policy, name)
        data[name] = asdict(value) if name == "review_auto" else list(value)
    return data


def policy_from_record(data: Mapping[str, object]) -> Policy | None:
    """The recorded deciding fields over the built-in defaults; None for sessions recorded
    before policies were kept (the caller falls back to the workspace's current policy)."""
    if "level" not in data:
        return None
    auto = data.get("review_auto")
    review_auto = ReviewAuto()
    if isinstance(auto, Mapping):
        fields: dict[str, Any] = {}
        for key, value in auto.items():
            if key == "allow_paths" and isinstance(value, list):
                fields[key] = tuple(tuple(group) for group in value)
            elif key == "deny_paths" and isinstance(value, list):
                fields[key] = tuple(value)
            elif key in ReviewAuto.__dataclass_fields__:
                fields[key] = value
        review_auto = replace(review_auto, **fields)
    return replace(
        Policy(),
        level=Level(int(str(data["level"]))),
        hide=_strings(data.get("hide"), Policy().hide),
        protected=_strings(data.get("protected"), Policy().protected),
        allow_at_level4=_strings(data.get("allow_at_level4"), ()),
        review_auto=review_auto,
        hide_except=_strings(data.get("hide_except"), ()),
        changes_ignore=_strings(data.get("changes_ignore"), Policy().changes_ignore),
    )


def _strings(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else default
