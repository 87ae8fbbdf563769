"""`load_for_run`: resolution of names and paths, exit-2 errors, the digest-keyed cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.errors import ProfileError
from sandbox.seccomp import Target, _load, load_for_run, shipped_names
from sandbox.seccomp._model import digest_of

REPO = Path(__file__).resolve().parents[2]


def test_default_when_none_and_shipped_names() -> None:
    sc = load_for_run(None, cache_dir=None)
    assert sc.name == "default"
    obj = json.loads((REPO / "profiles" / "default.json").read_text())
    assert sc.digest == digest_of(obj)
    assert json.loads(sc.oci_json) == obj
    assert "POLICY sandbox_profile" in sc.kafel
    assert {"default", "strict"} <= set(shipped_names())
    assert load_for_run("strict", cache_dir=None).digest != sc.digest


def test_path_profiles(tmp_path: Path) -> None:
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                             "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}]}))
    sc = load_for_run(str(p), cache_dir=None)
    assert sc.name == str(p)
    assert "execve" in sc.kafel


@pytest.mark.parametrize("ref", ["no-such-profile", "/no/such/file.json", "./nope.json"])
def test_missing_profiles_exit_2(ref: str) -> None:
    with pytest.raises(ProfileError) as ei:
        load_for_run(ref, cache_dir=None)
    assert ei.value.exit_code == 2


def test_bad_profile_names_the_path_and_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["execve"], '
                 '"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}')
    with pytest.raises(ProfileError, match=r"bad.json: \$\.syscalls\[0\]\.args\[0\]\.op") as ei:
        load_for_run(str(p), cache_dir=None)
    assert ei.value.exit_code == 2


def test_disk_cache_is_keyed_by_content_and_survives_the_process(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    cache = tmp_path / "cache"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                "syscalls": [{"names": ["execve", "read"],
                                              "action": "SCMP_ACT_ALLOW"}]}))
    first = load_for_run(str(prof), cache_dir=cache)
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    # A fresh process hits the disk entry: prove it by planting a marker in the cached Kafel.
    data = json.loads(files[0].read_text())
    data["kafel"] += "// from-disk-cache\n"
    files[0].write_text(json.dumps(data))
    code = ("import sys; from pathlib import Path; from sandbox.seccomp import load_for_run; "
            "print(load_for_run(sys.argv[1], cache_dir=Path(sys.argv[2])).kafel)")
    out = subprocess.run([sys.executable, "-c", code, str(prof), str(cache)],
                         capture_output=True, text=True, check=True).stdout
    assert "from-disk-cache" in out
    # Changing the profile changes the key: the stale entry is never served.
    prof.write_text(prof.read_text().replace('"read"', '"write"'))
    second = load_for_run(str(prof), cache_dir=cache)
    assert second.digest != first.digest
    assert "write" in second.kafel and "from-disk-cache" not in second.kafel
    assert len(list(cache.glob("*.json"))) == 2


def test_corrupt_cache_entry_is_recomputed(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["execve"], '
                    '"action": "SCMP_ACT_ALLOW"}]}')
    target = Target.host()
    key = _load.cache_key(prof.read_bytes(), str(prof), target)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{key}.json").write_text("{not json")
    _load._memo.cache_clear()
    sc = load_for_run(str(prof), cache_dir=cache)
    assert "execve" in sc.kafel
    assert json.loads((cache / f"{key}.json").read_text())["kafel"] == sc.kafel


def test_unwritable_cache_dir_does_not_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _load._memo.cache_clear()
    assert load_for_run("default", cache_dir=blocker / "sub").kafel


def test_hot_path_imports_no_validator_or_libseccomp() -> None:
    code = ("import sys; from sandbox.seccomp import load_for_run; "
            "load_for_run('default', cache_dir=None); "
            "print(sorted(m for m in ('jsonschema', 'pyseccomp', 'sandbox.seccomp._lint', "
            "'sandbox.seccomp._libseccomp', 'sandbox.seccomp._ptrace') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_denial_note_for_the_run_summary() -> None:
    from sandbox.seccomp import denial_note

    note = denial_note(159, profile="default")
    assert note is not None and "killed by the seccomp profile default" in note
    assert "sandbox profile test default" in note
    assert denial_note(0, profile="default", signal_no=31) is not None
    assert denial_note(1, profile="x", backend_log="pid=3 committed a syscall/seccomp violation")
    assert denial_note(0, profile="default") is None
    assert denial_note(137, profile="default", signal_no=9) is None
