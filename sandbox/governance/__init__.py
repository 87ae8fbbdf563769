"""Governance: per-change risk, the decision each level takes, and applying it."""

from sandbox.governance._apply import commit_paths, reject_paths
from sandbox.governance._decide import (
    AskPerson,
    AutoCommit,
    Concern,
    Decision,
    Hold,
    NothingToDo,
    Risk,
    Verdict,
    by_risk,
    classify,
    concern,
    decide,
    kind_counts,
    low_risk_failures,
    split_conflicts,
    with_concerns,
)

__all__ = [
    "AskPerson",
    "AutoCommit",
    "Concern",
    "Decision",
    "Hold",
    "NothingToDo",
    "Risk",
    "Verdict",
    "by_risk",
    "classify",
    "commit_paths",
    "concern",
    "decide",
    "kind_counts",
    "low_risk_failures",
    "reject_paths",
    "split_conflicts",
    "with_concerns",
]
