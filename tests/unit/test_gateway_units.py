"""Gateway logic without a network: usage as billed, SSE framing, the ledger, secrets, config."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sandbox.gateway._budget import Ledger, Refusal, Reservation, Scope
from sandbox.gateway._config import ConfigError, parse_config
from sandbox.gateway._content import Scanner
from sandbox.gateway._usage import Api, SseSplitter, StreamTracker, Usage


def _events(api: Api, *datas: Mapping[str, object]) -> StreamTracker:
    tracker = StreamTracker(api)
    raw = b"".join(f"event: x\ndata: {json.dumps(d)}\n\n".encode() for d in datas)
    splitter = SseSplitter()
    for i in range(0, len(raw), 7):  # arbitrary chunk boundaries
        for event in splitter.feed(raw[i : i + 7]):
            tracker.feed(event)
    return tracker


def test_anthropic_stream_usage_is_cumulative_overwrite_not_add() -> None:
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "output_tokens": 1,
                "cache_read_input_tokens": 500,
                "cache_creation_input_tokens": 40,
            }
        },
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 90}}
    t = _events(Api.MESSAGES, start, delta)
    assert t.complete and t.usage == Usage(input=10, output=90, cache_read=500, cache_write=40)
    # A delta that repeats every cumulative figure must not double them.
    full = {
        "type": "message_delta",
        "usage": {"input_tokens": 10, "output_tokens": 90, "cache_read_input_tokens": 500},
    }
    assert _events(Api.MESSAGES, start, full).usage == Usage(10, 90, 500, 40)


def test_cache_tokens_priced_at_their_own_rates() -> None:
    from sandbox.gateway._config import Price

    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    assert Usage(10, 90, 500, 40).cost(price) == pytest.approx((30 + 1350 + 150 + 150) / 1e6)


def test_responses_and_chat_usage() -> None:
    done = {
        "type": "response.completed",
        "response": {
            "usage": {"input_tokens": 100, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 60}}
        },
    }
    assert _events(Api.RESPONSES, done).usage == Usage(input=40, output=7, cache_read=60)
    tracker = StreamTracker(Api.CHAT, hide_usage_chunk=True)
    chunk = SseSplitter().feed(
        b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}\n\n'
    )
    assert tracker.feed(chunk[0]) is False and tracker.usage == Usage(5, 2)


def test_ledger_refuses_rather_than_shrinks() -> None:
    ledger = Ledger(load=lambda s: 0.5 if s == "key:a" else 0.0)
    scopes = [Scope("key:a", 1.0), Scope("day:x", None)]
    first = ledger.reserve(scopes, 0.3)
    assert isinstance(first, Reservation)
    refused = ledger.reserve(scopes, 0.3)
    assert isinstance(refused, Refusal) and refused.left == pytest.approx(0.2)
    assert "budget exceeded" in refused.message() and "$1.000000 limit" in refused.message()
    persisted = ledger.settle(first, 0.1)
    assert ledger.settle(first, 0.1) == ()  # idempotent
    assert ledger.committed("key:a") == pytest.approx(0.6) and ledger.reserved("key:a") == 0
    assert persisted == (("key:a", 0.1), ("day:x", 0.1))


def test_scanner_redacts_without_echoing() -> None:
    s = Scanner(["sk-upstream-123456789"])
    text, rules = s.redact("a sk-upstream-123456789 b AKIAIOSFODNN7EXAMPLE c API_KEY=abc")
    assert text == "a [REDACTED:upstream_credential] b [REDACTED:aws_access_key_id] c API_KEY=abc"
    assert rules == ["aws_access_key_id", "upstream_credential"]
    assert s.scan("MAX_TOKENS=aaaaaaaaaaaaaaaaaaaa") == []  # low entropy: not a secret


@pytest.mark.parametrize(
    "raw,needle",
    [
        ({"gateway": {"listne": "x"}}, "unknown key 'listne'"),
        (
            {"providers": {"z": {"type": "azure-openai", "base_url": "https://z", "api_key_env": "K"}}},
            "api_version: required",
        ),
        ({"gateway": {"content": "maybe"}}, "expected block, redact or off"),
        ({"prices": {"m": {"input": 1}}}, "input and output prices are required"),
        ({"providers": {"z": {"type": "openai", "base_url": "ftp://z", "api_key_env": "K"}}}, "http://"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, None, {"K": "v"})
    assert needle in str(exc.value) and exc.value.exit_code == 2


def test_key_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_text("secret-value\n")
    f.chmod(0o644)
    raw = {"providers": {"a": {"type": "anthropic", "base_url": "https://a", "api_key_file": str(f)}}}
    with pytest.raises(ConfigError, match="readable by others"):
        parse_config(raw, None, {})
    f.chmod(0o600)
    cfg = parse_config(raw, None, {})
    assert cfg.secrets() == ("secret-value",) and "secret-value" not in repr(cfg)


def test_run_path_does_not_import_the_gateway() -> None:
    code = (
        "import sys, sandbox.cli.main, sandbox.cli._commands, sandbox._runner; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'starlette', 'uvicorn', "
        "'prometheus_client', 'tenacity') or m.startswith('sandbox.gateway')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_llm_policy_layers_only_tighten() -> None:
    from sandbox.errors import CeilingError, PolicyError
    from sandbox.policy import Layer, merge

    org = Layer("org", "/etc/sandbox/policy.toml",
                {"llm": {"budget": "5usd", "models": ["claude-*"], "gateway": "http://gw:8787"}})
    ok = merge([org, Layer("flags", "--policy", {"llm": {"budget": 2, "models": ["claude-sonnet-*"]}}),
                Layer("flags", "--llm", {"llm": {"enabled": True}})]).policy
    assert (ok.llm_enabled, ok.llm_budget_usd, ok.llm_models, ok.llm_gateway) == (
        True, 2.0, ("claude-sonnet-*",), "http://gw:8787")
    for loosen in ({"budget": "$10"}, {"models": ["gpt-*"]}, {"gateway": "http://elsewhere"}):
        with pytest.raises(CeilingError):
            merge([org, Layer("flags", "--policy", {"llm": loosen})])
    off = Layer("org", "/etc/sandbox/policy.toml", {"llm": {"enabled": False}})
    with pytest.raises(CeilingError, match=r"llm\.enabled"):
        merge([off, Layer("flags", "--llm", {"llm": {"enabled": True}})])
    with pytest.raises(PolicyError, match="amount in USD"):
        merge([Layer("flags", "--policy", {"llm": {"budget": "lots"}})])


def test_scanner_rules_over_many_strings_match_each_string_alone() -> None:
    """The request's strings are searched joined (one pass): a secret in any one still fires,
    and nothing fires across two strings that would not fire in either alone."""
    cred = "sk-upstream-REAL-7f3c9a1b2d4e6f80"
    s = Scanner([cred])
    assert s.rules(["hello", "world"]) == set()
    # A name in one string and a random-looking value in the next: neither is an assignment.
    assert s.rules(["MY_API_KEY", "= Zx9qL2mW8vR4tY7uP3sK"]) == set()
    assert s.rules(["MY_API_KEY=", "Zx9qL2mW8vR4tY7uP3sK"]) == set()
    assert s.rules(["AKIA", "ABCDEFGHIJKLMNOP"]) == set()
    assert s.rules(["ok", "MY_API_KEY = Zx9qL2mW8vR4tY7uP3sK"]) == {"high_entropy_assignment"}
    assert s.rules(["a", "id AKIAABCDEFGHIJKLMNOP", "b"]) == {"aws_access_key_id"}
    assert s.rules(["x", f"use {cred} please"]) == {"upstream_credential"}
    assert s.rules([cred[:10], cred[10:]]) == set()
    assert s.rules(iter(["gen", "AKIAABCDEFGHIJKLMNOP"])) == {"aws_access_key_id"}


_SECRETISH = st.lists(
    st.sampled_from(
        ["KEY", "TOKEN", "SECRET", "_", "=", ":", " ", "\n", '"', "'", "/", "+", "-", ".", "é", "ß", "٣",
         "KEY=", "MY_TOKEN: '", "éKEY=", "/API_KEY=", "_SECRET =", "aKEY:",
         "a", "Z", "9", "x7Qp", "Zx9qL2mW8vR4tY7uP3sK", "AKIA", "ABCDEFGHIJKLMNOP", "ghp_", "eyJ", "xoxb-",
         "glpat-", "-----BEGIN ", "RSA ", "PRIVATE KEY-----", "\x00"]
    ),
    max_size=40,
).map("".join)


_TRICKY = (
    "éKEY=abc/MY_KEY=Zx9qL2mW8vR4tY7uP3sK",  # a name inside another tail's value
    "٣KEY=Zx9qL2mW8vR4tY7uP3sK KEY=Zx9qL2mW8vR4tY7uP3sK",  # no \b after a Unicode digit
    "KEYKEY = 'Zx9qL2mW8vR4tY7uP3sK' TOKENS=Zx9qL2mW8vR4tY7uP3sK",
)


@given(_SECRETISH)
@example(_TRICKY[0])
@example(_TRICKY[1])
@example(_TRICKY[2])
@settings(max_examples=400, deadline=None)
def test_assignments_found_from_the_name_match_the_full_pattern(text: str) -> None:
    """The assignment rule is searched from its KEY/TOKEN/SECRET (not at every position): the
    same matches as the rule's full pattern, whatever surrounds the name."""
    from sandbox.gateway._content import _ASSIGN, _assignments

    assert [m.span(1) for m in _assignments(text)] == [m.span(1) for m in _ASSIGN.finditer(text)]
    if text in _TRICKY:  # each has matches to compare
        assert [m.span(1) for m in _ASSIGN.finditer(text)]


@given(_SECRETISH)
@settings(max_examples=400, deadline=None)
def test_scan_skipping_rules_without_their_literal_finds_what_every_pattern_finds(text: str) -> None:
    from sandbox.gateway._content import _ASSIGN, _MIN_ENTROPY, _PATTERNS, Finding, _entropy

    every = [Finding(rule, m.start(), m.end()) for rule, p, _ in _PATTERNS for m in p.finditer(text)]
    every += [Finding("high_entropy_assignment", *m.span(1)) for m in _ASSIGN.finditer(text)
              if _entropy(m.group(1)) >= _MIN_ENTROPY]
    assert Scanner().scan(text) == every
    assert Scanner().rules([text, text]) == {f.rule for f in every}


def test_scanning_a_large_clean_request_runs_no_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large request holding no rule's literal runs no regular expression over it (the one
    alternation of every rule cost ~0.5 us a character: 80 ms for a 170 KB agent request, on
    the event loop, per call)."""
    import re

    import sandbox.gateway._content as content

    tried: list[str] = []

    class Spy:
        def __init__(self, pattern: re.Pattern[str]) -> None:
            self.pattern = pattern

        def finditer(self, s: str) -> Iterator[re.Match[str]]:
            tried.append(self.pattern.pattern)
            return self.pattern.finditer(s)

        def search(self, s: str, pos: int = 0) -> re.Match[str] | None:
            tried.append(self.pattern.pattern)
            return self.pattern.search(s, pos)

    monkeypatch.setattr(content, "_PATTERNS", tuple((r, Spy(p), n) for r, p, n in content._PATTERNS))
    tail = content._ASSIGN_TAIL.pattern
    monkeypatch.setattr(content, "_ASSIGN_TAIL", Spy(content._ASSIGN_TAIL))
    text = "def handler(request):\n    return compute(request.body, limit=4096)  # ok\n" * 2500
    scanner = Scanner(["sk-upstream-REAL-7f3c9a1b2d4e6f80"])
    assert scanner.scan(text) == [] and scanner.rules([text, "hi"]) == set()
    assert tried == []
    found = scanner.scan(text + "API_KEY=Zx9qL2mW8vR4tY7uP3sK")
    assert [f.rule for f in found] == ["high_entropy_assignment"]
    assert tried == [tail] * 2  # found, then the search past it
