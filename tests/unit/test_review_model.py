"""Review decisions as values: tree consistency, bulk choices, hunks, and the apply plan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sandbox.fs import Change, ChangeKind, ChangeSet, FileType
from sandbox.governance import Risk, Verdict
from sandbox.review import Choice, HunkedFile, ReviewState, build_state, make_plan, text_diff

A, D, M = ChangeKind.ADDED, ChangeKind.DELETED, ChangeKind.MODIFIED
F, DIR = FileType.FILE, FileType.DIR


def _cs(*changes: Change) -> ChangeSet:
    return ChangeSet(changes)


def _add(path: str, ftype: FileType = F) -> Change:
    return Change(path, A, new_type=ftype, new_mode=0o100644 if ftype is F else 0o40755,
                  new_size=1 if ftype is F else None, added_lines=1 if ftype is F else None,
                  removed_lines=0 if ftype is F else None)


def _del(path: str, ftype: FileType = F) -> Change:
    return Change(path, D, old_type=ftype, old_mode=0o100644 if ftype is F else 0o40755)


def _mod(path: str, old_mode: int = 0o100644, new_mode: int = 0o100644) -> Change:
    return Change(path, M, old_type=F, new_type=F, old_mode=old_mode, new_mode=new_mode,
                  old_size=10, new_size=10, added_lines=2, removed_lines=2)


def _index(state: ReviewState, path: str) -> int:
    return next(i for i, it in enumerate(state.items) if it.path == path)


def test_accepting_a_file_in_a_new_directory_accepts_the_directory() -> None:
    s = build_state(_cs(_add("pkg", DIR), _add("pkg/a.py"), _add("pkg/b.py")), [])
    s = s.set_item(_index(s, "pkg/a.py"), Choice.ACCEPT)
    assert s.choice(_index(s, "pkg")) is Choice.ACCEPT
    assert s.choice(_index(s, "pkg/b.py")) is Choice.PENDING


def test_rejecting_a_new_directory_rejects_its_contents() -> None:
    s = build_state(_cs(_add("pkg", DIR), _add("pkg/a.py"), _add("pkg/sub", DIR),
                        _add("pkg/sub/c")), [])
    s = s.set_item(_index(s, "pkg/a.py"), Choice.ACCEPT)
    s = s.set_item(_index(s, "pkg"), Choice.REJECT)
    assert all(s.choice(i) is Choice.REJECT for i in range(4))


def test_undoing_a_directory_undoes_only_what_was_accepted_below_it() -> None:
    s = build_state(_cs(_add("pkg", DIR), _add("pkg/a.py"), _add("pkg/b.py")), [])
    s = s.set_item(_index(s, "pkg/a.py"), Choice.ACCEPT)
    s = s.set_item(_index(s, "pkg/b.py"), Choice.REJECT)
    s = s.set_item(_index(s, "pkg"), Choice.PENDING)
    assert s.choice(_index(s, "pkg/a.py")) is Choice.PENDING
    assert s.choice(_index(s, "pkg/b.py")) is Choice.REJECT


def test_removing_a_directory_needs_every_deletion_below_it() -> None:
    s = build_state(_cs(_del("old", DIR), _del("old/a"), _del("old/b")), [])
    s = s.set_item(_index(s, "old"), Choice.ACCEPT)
    assert all(s.choice(i) is Choice.ACCEPT for i in range(3))
    s = s.set_item(_index(s, "old/b"), Choice.REJECT)
    assert s.choice(_index(s, "old")) is Choice.REJECT  # cannot remove a dir that keeps b
    assert s.choice(_index(s, "old/a")) is Choice.ACCEPT


def test_forbidden_changes_and_what_needs_them_cannot_be_accepted() -> None:
    cs = _cs(_add("dev", DIR), _add("dev/x"))
    verdicts = [Verdict("dev", Risk.FORBIDDEN, "hidden-path: 'dev' is hidden")]
    s = build_state(cs, verdicts)
    assert s.cannot_accept(_index(s, "dev/x")) == "dev: hidden-path: 'dev' is hidden"
    assert s.set_item(_index(s, "dev/x"), Choice.ACCEPT) == s
    assert s.set_item(_index(s, "dev"), Choice.REJECT).choice(_index(s, "dev/x")) is \
        Choice.REJECT


def test_accept_all_skips_protected_and_forbidden_and_keeps_explicit_rejections() -> None:
    cs = _cs(_add("a"), _add("b"), _add(".github/workflows/ci.yml"), _add("bad"))
    verdicts = [Verdict(".github/workflows/ci.yml", Risk.PROTECTED, "protected path"),
                Verdict("bad", Risk.FORBIDDEN, "setid")]
    s = build_state(cs, verdicts)
    s = s.set_item(_index(s, "b"), Choice.REJECT).set_all(Choice.ACCEPT)
    assert s.choice(_index(s, "a")) is Choice.ACCEPT
    assert s.choice(_index(s, "b")) is Choice.REJECT
    assert s.choice(_index(s, ".github/workflows/ci.yml")) is Choice.PENDING
    assert s.choice(_index(s, "bad")) is Choice.PENDING
    s = s.set_all(Choice.REJECT)
    assert s.choice(_index(s, "bad")) is Choice.REJECT
    assert s.tally().accepted == 1 and s.tally().rejected == 3


def test_hunk_choices_and_tally() -> None:
    s = build_state(_cs(_mod("f")), []).with_parts(0, 3)
    s = s.set_part(0, 0, Choice.ACCEPT).set_part(0, 2, Choice.REJECT)
    assert s.choice(0) is None
    t = s.tally()
    assert (t.partial, t.hunks_accepted, t.pending) == (1, 1, 0)
    assert s.set_item(0, Choice.ACCEPT).choices[0] == (Choice.ACCEPT,) * 3


OLD = b"".join(b"line%d\n" % n for n in range(1, 21))
NEW = OLD.replace(b"line2\n", b"LINE2\n").replace(b"line18\n", b"LINE18\nextra\n")


def _hunked(mode_change: bool) -> tuple[ReviewState, dict[int, HunkedFile]]:
    diff = text_diff(OLD, NEW)
    assert len(diff.hunks) == 2
    change = _mod("f", new_mode=0o100755 if mode_change else 0o100644)
    s = build_state(_cs(change), [])
    parts = 3 if mode_change else 2
    return s.with_parts(0, parts), {0: HunkedFile(diff, 2 if mode_change else None)}


def test_plan_for_one_hunk_accepted_one_rejected() -> None:
    s, hunked = _hunked(False)
    s = s.set_part(0, 0, Choice.ACCEPT).set_part(0, 1, Choice.REJECT)
    plan = make_plan(s, hunked, discard_pending=False)
    assert plan.whole == () and plan.rewrite == ()
    (p,) = plan.partial
    assert p.content == OLD.replace(b"line2\n", b"LINE2\n") and p.hunks == (1,)
    assert plan.discard == ("f",)  # nothing left pending: the rejected hunk goes
    assert plan.records[0]["hunks"] == {"accepted": [1], "rejected": [2], "pending": [],
                                        "total": 2}


def test_plan_rewrites_pending_file_when_a_hunk_is_rejected_and_one_kept() -> None:
    s, hunked = _hunked(True)
    s = s.set_part(0, 1, Choice.REJECT).set_part(0, 2, Choice.ACCEPT)
    plan = make_plan(s, hunked, discard_pending=False)
    (p,) = plan.partial
    assert p.content == OLD and p.mode == 0o755 and p.hunks == ()  # only the mode change
    (rw,) = plan.rewrite
    assert rw.content == OLD.replace(b"line2\n", b"LINE2\n") and rw.mode == 0o755
    assert plan.discard == ()
    discarding = make_plan(s, hunked, discard_pending=True)
    assert discarding.rewrite == () and discarding.discard == ("f",)


def test_plan_whole_items() -> None:
    s = build_state(_cs(_add("a"), _add("b"), _add("c")), [])
    s = s.set_item(0, Choice.ACCEPT).set_item(1, Choice.REJECT)
    plan = make_plan(s, {}, discard_pending=False)
    assert (plan.whole, plan.discard) == (("a",), ("b",))
    assert make_plan(s, {}, discard_pending=True).discard == ("b", "c")
    assert [r["decision"] for r in plan.records] == ["accept", "reject"]


@given(st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n", b"d", b"\n"]), max_size=30),
       st.lists(st.sampled_from([b"a\n", b"b\n", b"x\n", b"d", b"\n"]), max_size=30),
       st.data())
def test_hunk_application_properties(old_l: list[bytes], new_l: list[bytes],
                                     data: st.DataObject) -> None:
    old, new = b"".join(old_l), b"".join(new_l)
    diff = text_diff(old, new, context=1)
    n = len(diff.hunks)
    assert diff.apply(range(n)) == new
    assert diff.apply(()) == old
    chosen = set(data.draw(st.sets(st.integers(0, max(0, n - 1)))) if n else set())
    middle = diff.apply(chosen)
    # Accepting the rest on top of the accepted part gives the new content, and the part
    # that was not accepted is all that differs: it is what stays pending.
    rest = text_diff(middle, new, context=1)
    assert rest.apply(range(len(rest.hunks))) == new
    changed = sum(h.added + h.removed for h in diff.hunks if h.index not in chosen)
    assert (changed == 0) == (middle == new)


def test_accept_all_never_overrides_a_rejected_directory() -> None:
    s = build_state(_cs(_add("pkg", DIR), _add("pkg/a.py"), _add("top.py")), [])
    s = s.set_item(_index(s, "pkg"), Choice.REJECT)  # rejects pkg/a.py too
    s = s.set_item(_index(s, "pkg/a.py"), Choice.PENDING)  # undo just the file
    s = s.set_all(Choice.ACCEPT)
    assert s.choice(_index(s, "pkg")) is Choice.REJECT
    assert s.choice(_index(s, "pkg/a.py")) is Choice.PENDING
    assert s.choice(_index(s, "top.py")) is Choice.ACCEPT
