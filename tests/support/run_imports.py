"""What `sandbox run` must not import: each costs milliseconds of start-up on every call (the
CLI's whole budget against srt is start-up, imports and the run), and none is needed by a run
on nsjail without --llm, egress or a git repository."""

from __future__ import annotations

from collections.abc import Iterable

# Third-party packages of other commands (serve, gateway, mcp, agent, docker, profile tools)
HEAVY_PACKAGES = frozenset({
    "docker", "aiohttp", "starlette", "uvicorn", "uvloop", "httptools", "mcp", "anyio",
    "pygit2", "pygments", "cryptography", "psutil", "jsonschema", "pyseccomp", "regex",
    "botocore", "google", "prometheus_client", "watchdog", "asyncio", "pydantic",
})
# Our own subsystems a plain run never reaches
HEAVY_OURS = ("sandbox.gateway", "sandbox.mcp", "sandbox.server", "sandbox.egress",
              "sandbox.report", "sandbox.cli._review", "sandbox.cli._serve")
# stdlib modules that cost ms and have a cheaper way on this path: strptime (fromisoformat),
# secrets and tempfile (os.urandom; temp files only when a cache or trust file is written),
# difflib (only for a changed middle of a file; none in these runs)
HEAVY_STDLIB = frozenset({"_strptime", "secrets", "tempfile", "difflib"})


def heavy(modules: Iterable[str]) -> list[str]:
    """The modules of `modules` that `sandbox run` must not import."""
    return sorted(m for m in modules
                  if m.split(".")[0] in HEAVY_PACKAGES or m in HEAVY_STDLIB
                  or any(m == h or m.startswith(h + ".") for h in HEAVY_OURS))
