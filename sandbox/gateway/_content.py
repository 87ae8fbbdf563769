"""Content policy: find secrets in what a request would send upstream; block or redact.

Rules are named so a block can say which rule fired without repeating the secret. The exact
values of the gateway's own upstream credentials are a rule of their own: a prompt must never
carry a provider key anywhere, whatever it looks like.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Finding", "Scanner"]

# Each rule with the literals of which every match holds one: text holding none of them cannot
# match. `in` finds a literal at memory speed, where the regex engine tries every pattern at
# every position (~0.5 us a character for these rules: 80 ms for a 170 KB agent request, on the
# event loop, and again in the audit writer for the response).
_PATTERNS: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), ("PRIVATE KEY-----",)),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
     ("AKIA", "ASIA", "ABIA", "ACCA")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
     ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), ("glpat-",)),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyJ",)),
)
# NAME_KEY=value / NAME_TOKEN: "value": flagged only when the value looks random (entropy).
_ASSIGN = re.compile(r"\b[A-Za-z0-9_]*(?:KEY|TOKEN|SECRET)\s*[=:]\s*[\"']?([A-Za-z0-9+/_\-.=]{16,})")
_ASSIGN_NAMES = ("KEY", "TOKEN", "SECRET")
# _ASSIGN from its KEY/TOKEN/SECRET on: the same matches, without trying every position.
_ASSIGN_TAIL = re.compile(r"(?:KEY|TOKEN|SECRET)\s*[=:]\s*[\"']?([A-Za-z0-9+/_\-.=]{16,})")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_MIN_ENTROPY = 3.5  # bits per character: English words and placeholders stay below
_NEEDLES = tuple(n for _, _, needles in _PATTERNS for n in needles) + _ASSIGN_NAMES


def _assignments(text: str) -> Iterator[re.Match[str]]:
    """The matches of `_ASSIGN.finditer(text)`, group 1 alike. The name before KEY/TOKEN/SECRET
    can only be the run of name characters ending there (`=`, `:` and spaces are none), so a
    match is a tail whose run starts at a word boundary: not after a letter, digit or
    underscore, Unicode ones included, as `re`'s \\b has it."""
    pos = 0
    while (m := _ASSIGN_TAIL.search(text, pos)) is not None:
        start = m.start()
        while start > 0 and text[start - 1] in _NAME_CHARS:
            start -= 1
        if start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_"):
            yield m
            pos = m.end()
        else:  # no match here; a name may start inside this tail's value (after a / or =)
            pos = m.start() + 1


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


@dataclass(frozen=True)
class Finding:
    rule: str
    start: int
    end: int


class Scanner:
    def __init__(self, credentials: Iterable[str] = ()) -> None:
        # Short values would match by accident; real provider keys are long.
        self._credentials = tuple(c for c in credentials if len(c) >= 8)
        self._needles = _NEEDLES + self._credentials
        # No needle holds a NUL, so texts joined by one hold a needle only where a text does.
        self._joinable = not any("\x00" in c for c in self._credentials)

    def _maybe(self, text: str) -> bool:
        """Whether `text` could hold a finding (it holds a rule's literal or a credential)."""
        return any(n in text for n in self._needles)

    def rules(self, texts: Iterable[str]) -> set[str]:
        """The rules that fire in any of `texts`. A request's strings are searched in one pass
        when they hold no secret (the common case), not one search per string."""
        texts = list(texts)
        if self._joinable and not self._maybe("\x00".join(texts)):
            return set()
        return {f.rule for text in texts for f in self.scan(text)}

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for cred in self._credentials:
            start = text.find(cred)
            while start >= 0:
                found.append(Finding("upstream_credential", start, start + len(cred)))
                start = text.find(cred, start + 1)
        for rule, pattern, needles in _PATTERNS:
            if any(n in text for n in needles):
                found += [Finding(rule, m.start(), m.end()) for m in pattern.finditer(text)]
        if any(n in text for n in _ASSIGN_NAMES):
            for m in _assignments(text):
                if _entropy(m.group(1)) >= _MIN_ENTROPY:
                    found.append(Finding("high_entropy_assignment", m.start(1), m.end(1)))
        return found

    def redact(self, text: str) -> tuple[str, list[str]]:
        """`text` with every finding replaced by [REDACTED:rule]; the rules that fired."""
        findings = sorted(self.scan(text), key=lambda f: (f.start, -f.end))
        if not findings:
            return text, []
        out: list[str] = []
        pos = 0
        for f in findings:
            if f.start < pos:  # overlaps an earlier finding, already covered
                continue
            out += [text[pos : f.start], f"[REDACTED:{f.rule}]"]
            pos = f.end
        out.append(text[pos:])
        return "".join(out), sorted({f.rule for f in findings})


def strings(obj: object) -> Iterable[str]:
    """Every string in a parsed JSON value (keys too)."""
    match obj:
        case str():
            yield obj
        case dict():
            for k, v in obj.items():
                yield k
                yield from strings(v)
        case list():
            for v in obj:
                yield from strings(v)
        case _:
            return


def redact_json(scanner: Scanner, obj: object, rules: set[str]) -> object:
    """A copy of `obj` with secrets in its strings redacted; fired rules are added to `rules`."""
    match obj:
        case str():
            text, fired = scanner.redact(obj)
            rules.update(fired)
            return text
        case dict():
            return {k: redact_json(scanner, v, rules) for k, v in obj.items()}
        case list():
            return [redact_json(scanner, v, rules) for v in obj]
        case _:
            return obj
