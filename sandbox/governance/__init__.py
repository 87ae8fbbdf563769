"""Governance: per-change risk, the decision each level takes, and applying it."""

from sandbox.governance._apply import commit_paths, reject_paths
from sandbox.governance._decide import (
    AskPerson,
    AutoCommit,
    Decision,
    Hold,
    NothingToDo,
    Risk,
    Verdict,
    classify,
    decide,
    low_risk_failures,
    split_conflicts,
)

__all__ = [
    "AskPerson",
    "AutoCommit",
    "Decision",
    "Hold",
    "NothingToDo",
    "Risk",
    "Verdict",
    "classify",
    "commit_paths",
    "decide",
    "low_risk_failures",
    "reject_paths",
    "split_conflicts",
]
