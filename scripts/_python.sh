# Sourced by the other scripts: find a Python >= 3.12 (the default python3 here may be 3.11,
# and pyenv shims for versions that are not selected fail when called).
find_python() {
  local c
  for c in "${SANDBOX_PYTHON:-}" python3.14 python3.13 python3.12 \
           /root/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] \
           /usr/bin/python3.1[2-9] python3; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
    if "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
      command -v "$c" 2>/dev/null || echo "$c"
      return 0
    fi
  done
  echo "sandbox setup: no Python >= 3.12 found; install one (e.g. apt-get install python3.12" \
       "on a newer Debian, or pyenv) or set SANDBOX_PYTHON=/path/to/python3.12" >&2
  return 1
}
