"""`sandbox serve`: one long-running process holding the audit signing key, serving the API,
the console and the report (loaded only by `sandbox serve`)."""
