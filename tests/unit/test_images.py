"""Image definitions, content digests, trimming and the image store (pure logic, no builds)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.errors import NotFoundError, StateError, UsageError
from sandbox.images import (
    ImageRecord,
    ImageStore,
    effective_mirror,
    find_definition,
    mirror_from_sources,
    parse_definition,
    record_for_rootfs,
    tree_digest,
    trim,
)

REPO = Path(__file__).resolve().parents[2]


def _defn(text: str, name: str = "x") -> object:
    return parse_definition(name, Path(f"{name}.toml"), text.encode())


def test_shipped_definitions_parse() -> None:
    py = find_definition("debian-python", REPO / "images")
    node = find_definition("debian-node", REPO / "images")
    assert py.packages == ("python3",) and py.variant == "minbase" and py.suite == "bookworm"
    assert node.packages == ("nodejs",)
    assert py.definition_hash("m") != node.definition_hash("m")


def test_definition_hash_tracks_what_changes_the_build() -> None:
    a = parse_definition("a", Path("a.toml"), b'packages = ["python3", "git"]\n')
    b = parse_definition("a", Path("a.toml"), b'packages = ["git", "python3"]\n')
    c = parse_definition("a", Path("a.toml"), b'packages = ["git"]\n')
    assert a.definition_hash("m") == b.definition_hash("m")  # order does not matter
    assert a.definition_hash("m") != c.definition_hash("m")
    assert a.definition_hash("m") != a.definition_hash("other-mirror")
    # the description is documentation: editing it does not force a rebuild
    d = parse_definition("a", Path("a.toml"),
                         b'description = "new words"\npackages = ["python3", "git"]\n')
    assert d.definition_hash("m") == a.definition_hash("m")


@pytest.mark.parametrize(("text", "needle"), [
    ('packages = ["python3; rm -rf /"]\n', "package"),
    ('packages = "python3"\n', "list"),
    ('variant = "fakechroot"\n', "variant"),
    ('suite = "../etc"\n', "suite"),
    ('mirror = "file:///etc"\n', "mirror"),
    ('pakages = ["x"]\n', "unknown field"),
    ("packages = [\n", "x.toml"),
])
def test_bad_definitions_are_usage_errors(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        _defn(text)
    assert needle in str(exc.value)


def test_unknown_and_invalid_names(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('packages = ["python3"]\n')
    with pytest.raises(NotFoundError) as exc:
        find_definition("two", tmp_path)
    assert "one" in str(exc.value)  # says which images exist
    with pytest.raises(UsageError):
        find_definition("host", tmp_path)
    with pytest.raises(UsageError):
        find_definition("Bad/..", tmp_path)


def test_mirror_from_apt_sources(tmp_path: Path) -> None:
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: x\n\n"
              "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n")
    assert mirror_from_sources(deb822) == "http://deb.debian.org/debian"
    one_line = "# c\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
    assert mirror_from_sources(one_line) == "http://mirror.example/debian"
    assert mirror_from_sources("deb-src http://x/debian bookworm main\n") is None
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(deb822)
    defn = _defn('packages = ["python3"]\n')
    assert effective_mirror(defn, tmp_path) == "http://deb.debian.org/debian"  # type: ignore[arg-type]
    pinned = _defn('mirror = "http://snapshot.debian.org/archive/debian/20250520T000000Z/"\n')
    assert effective_mirror(pinned, tmp_path).endswith("20250520T000000Z")  # type: ignore[arg-type]


def _tree(root: Path) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "usr/bin/tool", 0o755)
    (root / "etc").mkdir()
    (root / "etc/conf").write_text("a=1\n")
    os.symlink("usr/bin", root / "bin")
    return root


def test_digest_ignores_time_but_sees_content_mode_and_links(tmp_path: Path) -> None:
    a = tree_digest(_tree(tmp_path / "a"))
    b_root = _tree(tmp_path / "b")
    os.utime(b_root / "etc/conf", (1, 1))
    assert tree_digest(b_root).digest == a.digest  # timestamps are not content
    assert a.files == 2 and a.bytes == len(b"#!/bin/sh\necho hi\n") + 4
    (b_root / "etc/conf").write_text("a=2\n")
    assert tree_digest(b_root).digest != a.digest
    c_root = _tree(tmp_path / "c")
    os.chmod(c_root / "usr/bin/tool", 0o4755)
    assert tree_digest(c_root).digest != a.digest  # a setuid bit is a difference
    d_root = _tree(tmp_path / "d")
    os.unlink(d_root / "bin")
    os.symlink("usr/sbin", d_root / "bin")
    assert tree_digest(d_root).digest != a.digest
    e_root = _tree(tmp_path / "e")
    (e_root / "etc/empty").mkdir()
    assert tree_digest(e_root).digest != a.digest  # an extra empty dir counts


def test_digest_does_not_follow_symlinks_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("1")
    root = _tree(tmp_path / "r")
    os.symlink(str(outside), root / "escape")
    before = tree_digest(root).digest
    (outside / "secret").write_text("2")
    assert tree_digest(root).digest == before


def test_trim_removes_per_build_and_host_data(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    files = ["var/cache/apt/pkgcache.bin", "var/lib/apt/lists/deb_InRelease",
             "var/log/dpkg.log", "etc/resolv.conf", "usr/share/locale/de/x.mo",
             "usr/share/doc/python3/changelog.gz", "usr/share/doc/python3/copyright",
             "usr/bin/python3", "etc/machine-id"]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "etc/hostname").write_text("buildhost\n")
    trim(root)
    assert not (root / "var/log/dpkg.log").exists()
    assert not (root / "etc/resolv.conf").exists()  # names the build host's resolver
    assert not (root / "var/lib/apt/lists/deb_InRelease").exists()
    assert not (root / "usr/share/doc/python3/changelog.gz").exists()
    assert (root / "usr/share/doc/python3/copyright").exists()  # licences stay
    assert (root / "usr/bin/python3").exists()
    assert (root / "etc/hostname").read_text() == "sandbox\n"
    assert (root / "workspace").is_dir() and (root / "var/log").is_dir()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777


def _record(name: str = "img") -> ImageRecord:
    return ImageRecord(name=name, digest="sha256:" + "ab" * 32, definition_hash="h",
                       suite="bookworm", packages=("python3",), installed=("python3=3.11",),
                       files=3, bytes=10, built_at="2025-01-01T00:00:00+00:00",
                       build_seconds=1.5, mirror="http://m")


def test_store_round_trip_and_listing(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    assert store.list() == ()
    rec = _record()
    store.image_dir(rec.name).mkdir(parents=True)
    store.save(rec)
    assert store.load("img") is None  # a record without its rootfs is a half-done build
    store.rootfs("img").mkdir()
    assert store.load("img") == rec
    assert store.list() == (rec,)
    assert record_for_rootfs(store.rootfs("img")) == rec
    assert rec.docker_tag == "sandbox/img:" + "ab" * 32
    assert store.resolve("host") is None
    with pytest.raises(NotFoundError) as exc:
        store.resolve("other")
    assert "sandbox image build other" in str(exc.value)


def test_corrupt_record_is_a_state_error(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.rootfs("img").mkdir(parents=True)
    (store.image_dir("img") / "image.json").write_text(json.dumps({"name": "img"}))
    with pytest.raises(StateError) as exc:
        store.load("img")
    assert "--force" in str(exc.value)


def test_store_location_from_env(tmp_path: Path) -> None:
    assert ImageStore.from_env({"SANDBOX_IMAGES": str(tmp_path)}).root == tmp_path
    assert ImageStore.from_env({"SANDBOX_HOME": str(tmp_path)}).root == tmp_path / "images"
