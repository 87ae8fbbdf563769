"""Per-path conflict baselines for partly committed files.

When only some hunks of a file are committed, the workspace file changes (by us) while the rest
stays pending; a later commit of that path must not call our own change a conflict. Its
post-commit ctime is kept as that path's baseline (`review-baselines.json` in the session dir)
and checked instead of the session start. Shared by `sandbox review` and `sandbox approve`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sandbox.errors import ConflictError
from sandbox.fs import Change, FileType

BASELINES = "review-baselines.json"


def load_baselines(session_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((session_dir / BASELINES).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_baselines(session_dir: Path, baselines: Mapping[str, int]) -> None:
    path = session_dir / BASELINES
    if not baselines:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(baselines.items()))))
    os.replace(tmp, path)


def baseline_started_ns(changes: Sequence[Change], lstat: Callable[[str], os.stat_result | None],
                        started: int, baselines: Mapping[str, int], force: bool) -> int:
    """The conflict baseline for this commit. Paths we partly committed before are checked
    here against their own baseline, the others against the session start; the commit then
    checks everything against the latest of those, which catches any later change."""
    ours = {c.path: baselines[c.path] for c in changes if c.path in baselines}
    if not ours:
        return started
    conflicts: list[str] = []
    for c in changes:
        if c.old_type in (None, FileType.DIR):
            continue
        st = lstat(c.path)
        if st is None:
            continue  # the commit itself reports what is missing
        if st.st_ctime_ns > ours.get(c.path, started):
            conflicts.append(f"{c.path}: was modified in the workspace after it was reviewed")
    if conflicts and not force:
        raise ConflictError("the workspace changed since the run; nothing was committed:\n  "
                            + "\n  ".join(conflicts),
                            hint="review the workspace, then decide again (or --force)")
    return max(ours.values())
