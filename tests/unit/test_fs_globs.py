"""gitignore-like pattern semantics shared by hide list, protected paths and level-3 rules."""

from __future__ import annotations

import pytest

from sandbox.fs import PathMatcher, match_path


@pytest.mark.parametrize(
    ("path", "pattern", "is_dir", "expected"),
    [
        # no '/': basename at any depth
        (".env", ".env*", False, True),
        ("a/b/.env.local", ".env*", False, True),
        ("a/b/env", ".env*", False, False),
        ("keys/server.pem", "*.pem", False, True),
        ("server.pem.bak", "*.pem", False, False),
        ("home/.ssh/id_rsa.pub", "id_rsa*", False, True),
        # a matched directory covers what is below it
        (".env/inner", ".env*", False, True),
        # trailing '/': directories only, at any depth, and their contents
        (".ssh", ".ssh/", True, True),
        (".ssh", ".ssh/", False, False),
        ("x/.ssh/id_rsa", ".ssh/", False, True),
        ("x/.aws/credentials", ".aws/", False, True),
        # inner '/': may start at any depth unless anchored
        (".git/hooks/pre-commit", ".git/hooks/*", False, True),
        ("vendor/.git/hooks/pre-commit", ".git/hooks/*", False, True),
        (".git/hooksx/pre-commit", ".git/hooks/*", False, False),
        (".docker/config.json", ".docker/config.json", False, True),
        ("a/.docker/config.json", ".docker/config.json", False, True),
        # leading '/': anchored at the root
        ("Makefile", "/Makefile", False, True),
        ("sub/Makefile", "/Makefile", False, False),
        (".github/workflows/ci.yml", "/.github/workflows/**", False, True),
        (".github/workflows/deep/x.yml", ".github/workflows/**", False, True),
        # 'dir/**' is the contents of dir, not dir itself
        (".github/workflows", ".github/workflows/**", True, False),
        # '**' spans zero or more directories
        ("a/b/c/d.txt", "a/**/d.txt", False, True),
        ("a/d.txt", "a/**/d.txt", False, True),
        ("b/d.txt", "/a/**/d.txt", False, False),
        # '*' and '?' never cross '/'
        ("a/b", "a*b", False, False),
        ("axb", "a?b", False, True),
        ("a/b", "a?b", False, False),
        # case-sensitive, character classes
        (".ENV", ".env*", False, False),
        ("f1.txt", "f[0-9].txt", False, True),
    ],
)
def test_match_path(path: str, pattern: str, is_dir: bool, expected: bool) -> None:
    got = match_path(path, [pattern], is_dir=is_dir)
    assert (got == pattern) is expected


def test_first_matching_pattern_is_returned() -> None:
    assert match_path("a/.env", ["*.pem", ".env", ".env*"]) == ".env"
    assert match_path("a/readme", ["*.pem", ".env"]) is None


def test_trailing_slash_in_path_means_directory() -> None:
    assert match_path("x/.ssh/", [".ssh/"]) == ".ssh/"


def test_matcher_agrees_with_match_path() -> None:
    m = PathMatcher.of(["/top/", "*.key"])
    assert m.match("top/a") == "/top/"
    assert m.match("sub/top/a") is None
    assert m.match("sub/x.key") == "*.key"
    assert m.match_components(("top",), is_dir=True) == "/top/"
    assert m.match_components(("top",), is_dir=False) is None


def test_empty_and_degenerate_patterns_match_nothing() -> None:
    assert match_path("a", ["", "/", "./"]) is None
    assert match_path("", ["*"]) is None
