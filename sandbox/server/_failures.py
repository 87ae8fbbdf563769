"""What serve does with a failure of its own: the details go to serve's log under a fresh id,
the person gets that id and nothing else (a traceback or an exception's text can carry paths,
SQL or state a browser should not see)."""

from __future__ import annotations

import secrets
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["log_failure"]


def log_failure(request: Request, exc: BaseException) -> str:
    """Write `exc` with its traceback to serve's stderr under a new id; returns the id."""
    eid = secrets.token_hex(6)
    # repr: the path comes from the client and must not forge lines in the log.
    trace = "".join(traceback.format_exception(exc))
    print(f"sandbox serve: internal error {eid} on {request.method} {request.url.path!r}:\n{trace}",
          file=sys.stderr, end="", flush=True)
    return eid
