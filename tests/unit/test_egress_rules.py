"""Egress rules: syntax, matching, ceilings and the anti-rebinding address checks."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.egress import Allow, Deny, DenyReason, EgressPolicy, EgressRule, RuleKind, classify
from sandbox.errors import CeilingError, PolicyError


@pytest.mark.parametrize(
    ("text", "kind", "shown"),
    [
        ("Example.COM", RuleKind.HOST, "example.com"),
        ("example.com.", RuleKind.HOST, "example.com"),
        ("example.com:8443", RuleKind.HOST, "example.com:8443"),
        ("example.com:*", RuleKind.HOST, "example.com:*"),
        ("example.com:8000-8100", RuleKind.HOST, "example.com:8000-8100"),
        ("*.example.com", RuleKind.WILDCARD, "*.example.com"),
        ("10.1.2.3", RuleKind.ADDRESS, "10.1.2.3"),
        ("10.0.0.0/8:443", RuleKind.ADDRESS, "10.0.0.0/8:443"),
        ("[::1]:8080", RuleKind.ADDRESS, "[::1]:8080"),
        ("fd00::/8", RuleKind.ADDRESS, "[fd00::/8]"),
        ("[fd00::/8]:443", RuleKind.ADDRESS, "[fd00::/8]:443"),
    ],
)
def test_rule_syntax_round_trips(text: str, kind: RuleKind, shown: str) -> None:
    rule = EgressRule.parse(text)
    assert rule.kind is kind
    assert str(rule) == shown
    assert EgressRule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    "text",
    ["", "*", "*.com", "exa mple.com", "example.com:0", "example.com:70000", "example.com:x",
     "10.0.0.1/8", "127.1", "0x7f.0.0.1", "2130706433", "-bad.example", "[::1", "[::1]x",
     "example.com:9-3", "a..b"],
)  # fmt: skip
def test_bad_rules_are_policy_errors(text: str) -> None:
    with pytest.raises(PolicyError):
        EgressRule.parse(text)


def test_default_ports_are_80_and_443_only() -> None:
    policy = EgressPolicy.from_strings(["pypi.org"])
    assert isinstance(policy.decide("pypi.org", 443), Allow)
    assert isinstance(policy.decide("PyPI.org.", 80), Allow)
    denied = policy.decide("pypi.org", 22)
    assert isinstance(denied, Deny) and denied.reason is DenyReason.NOT_IN_ALLOWLIST


def test_wildcard_matches_below_the_domain_only() -> None:
    policy = EgressPolicy.from_strings(["*.example.com"])
    assert isinstance(policy.decide("a.example.com", 443), Allow)
    assert isinstance(policy.decide("a.b.example.com", 443), Allow)
    for host in ("example.com", "badexample.com", "example.com.evil.test", "a.example.co"):
        assert isinstance(policy.decide(host, 443), Deny), host


def test_ip_literals_only_when_named() -> None:
    policy = EgressPolicy.from_strings(["example.com", "203.0.113.7:443", "198.51.100.0/24:*"])
    assert isinstance(policy.decide("203.0.113.7", 443), Allow)
    assert isinstance(policy.decide("203.0.113.7", 80), Deny)
    assert isinstance(policy.decide("198.51.100.99", 5432), Allow)
    assert isinstance(policy.decide("93.184.216.34", 443), Deny)  # not named, though public
    # a name rule never matches a literal, and a literal rule never matches a name
    assert not EgressRule.parse("example.com").matches(ipaddress.ip_address("1.2.3.4"), 443)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", DenyReason.LOOPBACK),
        ("[::1]", DenyReason.LOOPBACK),
        ("169.254.169.254", DenyReason.LINK_LOCAL),
        ("[::ffff:169.254.169.254]", DenyReason.LINK_LOCAL),
        ("10.0.0.1", DenyReason.PRIVATE),
        ("192.168.1.1", DenyReason.PRIVATE),
        ("0.0.0.0", DenyReason.RESERVED),
        ("224.0.0.1", DenyReason.RESERVED),
    ],
)
def test_special_literals_say_why(host: str, reason: DenyReason) -> None:
    decision = EgressPolicy.from_strings(["example.com"]).decide(host, 443)
    assert decision == Deny(reason, decision.detail) if isinstance(decision, Deny) else False


@pytest.mark.parametrize("host", ["127.1", "0x7f000001", "2130706433", "evil test", "a" * 300])
def test_numeric_and_malformed_names_refused(host: str) -> None:
    decision = EgressPolicy.from_strings(["*.example.com"]).decide(host, 443)
    assert isinstance(decision, Deny) and decision.reason is DenyReason.MALFORMED


def test_rebinding_addresses_refused_unless_named() -> None:
    policy = EgressPolicy.from_strings(["allowed.test"])
    ip = ipaddress.ip_address
    assert policy.check_address(ip("127.0.0.1")) is DenyReason.LOOPBACK
    assert policy.check_address(ip("::ffff:127.0.0.1")) is DenyReason.LOOPBACK
    assert policy.check_address(ip("64:ff9b::a9fe:a9fe")) is DenyReason.LINK_LOCAL  # NAT64
    assert policy.check_address(ip("2002:a00:1::")) is DenyReason.PRIVATE  # 6to4 of 10.0.0.1
    assert policy.check_address(ip("172.16.5.4")) is DenyReason.PRIVATE
    assert policy.check_address(ip("100.64.0.1")) is DenyReason.RESERVED  # shared CGNAT
    assert policy.check_address(ip("8.8.8.8")) is None
    own = frozenset({ip("8.8.4.4")})
    assert policy.check_address(ip("8.8.4.4"), own) is DenyReason.HOST_ADDRESS
    named = EgressPolicy.from_strings(["allowed.test"], allow_addresses=["127.0.0.1"])
    assert named.check_address(ip("127.0.0.1")) is None
    assert named.check_address(ip("127.0.0.2")) is DenyReason.LOOPBACK
    # allow_addresses lets names resolve there; it does not allow the literal itself
    assert isinstance(named.decide("127.0.0.1", 443), Deny)
    by_rule = EgressPolicy.from_strings(["10.0.0.0/8:*"])
    assert by_rule.check_address(ip("10.9.9.9")) is None


def test_ceiling_containment() -> None:
    ceiling = tuple(EgressRule.parse(r) for r in ("*.corp.example", "pypi.org", "10.0.0.0/8:*"))
    inside = ["pypi.org", "a.corp.example:443", "*.b.corp.example", "10.1.0.0/16:5432", "10.2.3.4"]
    for text in inside:
        assert EgressRule.parse(text).within(ceiling), text
    outside = [
        "pypi.org:8080",
        "corp.example",
        "*.other.example",
        "evil.test",
        "11.0.0.1",
        "10.0.0.0/7",
    ]
    for text in outside:
        assert not EgressRule.parse(text).within(ceiling), text


def test_check_ceiling_names_the_ceiling_and_the_offender() -> None:
    policy = EgressPolicy.from_strings(["pypi.org", "evil.test"], ceiling=["pypi.org", "*.corp.example"])
    assert policy.outside() == ("evil.test",)
    assert not policy.within()
    with pytest.raises(CeilingError) as err:
        policy.check_ceiling("/etc/sandbox/policy.toml")
    assert err.value.exit_code == 2
    assert "evil.test" in str(err.value) and "*.corp.example" in str(err.value)
    assert "/etc/sandbox/policy.toml" in str(err.value)
    # the proxy enforces the ceiling too, should a policy slip past the loader
    assert policy.decide("evil.test", 443) == Deny(
        DenyReason.OUTSIDE_CEILING, "evil.test:443 is outside the org egress ceiling"
    )
    ok = EgressPolicy.from_strings(["pypi.org"], ceiling=["pypi.org"], allow_addresses=["10.0.0.1"])
    assert ok.outside() == ("10.0.0.1/32",)  # resolving into private space needs the ceiling too


def test_classify_is_none_only_for_public_addresses() -> None:
    assert classify(ipaddress.ip_address("1.1.1.1")) is None
    assert classify(ipaddress.ip_address("2606:4700::1111")) is None
    assert classify(ipaddress.ip_address("fe80::1")) is DenyReason.LINK_LOCAL
    assert classify(ipaddress.ip_address("fc00::1")) is DenyReason.PRIVATE


_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)


@given(sub=st.lists(_label, min_size=1, max_size=3), port=st.integers(1, 65535))
def test_wildcard_never_matches_apex_and_always_matches_below(sub: list[str], port: int) -> None:
    rule = EgressRule.parse("*.example.com:*")
    assert rule.matches(".".join([*sub, "example.com"]), port)
    assert not rule.matches("example.com", port)
    assert not rule.matches(".".join([*sub, "example.org"]), port)


@given(st.ip_addresses(v=4))
def test_ipv4_mapped_forms_judged_like_ipv4(addr: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{addr}")
    assert classify(mapped) == classify(addr)
