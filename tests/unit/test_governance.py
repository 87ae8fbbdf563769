"""decide(): what each level does with a changeset, as values (pure logic)."""

from __future__ import annotations

from sandbox.fs import Change, ChangeKind, ChangeSet, FileType
from sandbox.governance import AskPerson, AutoCommit, Hold, NothingToDo, Risk, classify, decide
from sandbox.policy import Layer, Policy, merge


def _policy(level: int, **review: object) -> Policy:
    layers = [Layer("flags", "--level", {"level": level})]
    if review:
        layers.insert(0, Layer("org", "org", {"review": {"auto": review}}))
    return merge(layers).policy


def added(path: str, lines: int = 1, **kw: object) -> Change:
    return Change(path=path, kind=ChangeKind.ADDED, new_type=FileType.FILE, new_mode=0o100644,
                  added_lines=lines, removed_lines=0, **kw)  # type: ignore[arg-type]


def test_empty_changeset_needs_nothing() -> None:
    assert isinstance(decide(ChangeSet(()), _policy(4), interactive=False), NothingToDo)


def test_levels_1_2_ask_or_hold() -> None:
    cs = ChangeSet((added("a.py"),))
    assert isinstance(decide(cs, _policy(2), interactive=True), AskPerson)
    held = decide(cs, _policy(1), interactive=False)
    assert isinstance(held, Hold) and "wait for a person" in held.reasons[0]


def test_level3_low_risk_commits_rest_held_with_reasons() -> None:
    ok = decide(ChangeSet((added("a.py"),)), _policy(3), interactive=False)
    assert isinstance(ok, AutoCommit) and ok.paths == ("a.py",)
    big = decide(ChangeSet((added("a.py", 900),)), _policy(3), interactive=False)
    assert isinstance(big, Hold) and any("max_lines" in r for r in big.reasons)
    binary = decide(ChangeSet((added("x.bin", binary=True),)), _policy(3), interactive=False)
    assert isinstance(binary, Hold) and any("binary file x.bin" in r for r in binary.reasons)
    deny = decide(ChangeSet((added("migrations/1.sql"),)),
                  _policy(3, deny_paths=["migrations/**"]), interactive=False)
    assert isinstance(deny, Hold) and any("deny_paths" in r for r in deny.reasons)


def test_level3_protected_is_held_for_a_person_not_committed() -> None:
    cs = ChangeSet((added("a.py"), added(".github/workflows/ci.yml")))
    d = decide(cs, _policy(3), interactive=False)
    assert isinstance(d, AutoCommit) and d.paths == ("a.py",)
    assert d.held and "held: touches .github/workflows/ci.yml (protected" in d.held[0].reason


def test_level4_refuses_protected_unless_named_and_forbidden_always() -> None:
    bad = added("evil", forbidden=("device: a device node",))
    cs = ChangeSet((added("a.py"), added(".git/hooks/pre-push"), bad))
    d = decide(cs, _policy(4), interactive=False)
    assert isinstance(d, AutoCommit) and d.paths == ("a.py",)
    assert {v.path for v in d.refused} == {".git/hooks/pre-push", "evil"}
    allow = merge([Layer("org", "org", {"protect": {"allow_at_level4": [".git/hooks/*"]}}),
                   Layer("flags", "--level", {"level": 4})]).policy
    d = decide(cs, allow, interactive=False)
    assert isinstance(d, AutoCommit) and ".git/hooks/pre-push" in d.paths
    assert classify(bad, allow).risk is Risk.FORBIDDEN
