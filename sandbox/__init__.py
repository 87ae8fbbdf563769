"""sandbox: a governed execution runtime for AI coding agents.

Kept import-light on purpose: `sandbox run` is on every agent tool call's path.
The library entry point is `sandbox._runner.Runner` (see README "Library use").
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
