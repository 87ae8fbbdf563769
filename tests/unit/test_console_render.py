"""The console's file rendering: syntax highlighted, and still inert whatever the file holds."""

from __future__ import annotations

from sandbox.server._console import _file_html


def _file(path: str, *rows: list[object]) -> dict[str, object]:
    return {"path": path, "etag": "e", "kind": "modified", "marks": [], "rows": list(rows)}


def test_python_is_highlighted_and_html_stays_text() -> None:
    page = _file_html(_file("app.py", ["hunk", "@@ -1 +1 @@", 0],
                            ["add", "+def f(): return '<script>alert(1)</script>'", 0],
                            ["del", "-x = 1  # <b>old</b>", 0]))
    assert '<span class="k">def</span>' in page and '<span class="nf">f</span>' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;" in page


def test_unknown_types_and_escaped_controls_stay_plain_text() -> None:
    page = _file_html(_file("notes.unknownext", ["add", "+\\u202e <img src=x onerror=alert(1)>", None]))
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\\u202e" in page and "\u202e" not in page
