#!/usr/bin/env bash
# As root: create the unprivileged user the integration tests run `sandbox` as
# (SANDBOX_TEST_USER, default sbxtest), and make sure it can execute the venv's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
user="${SANDBOX_TEST_USER:-sbxtest}"
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh "$user"
fi
# The venv's interpreter may live under a home dir others cannot traverse (e.g. pyenv in
# /root). Grant traversal (x, not read) on each such parent; say what was changed.
real=$(readlink -f .venv/bin/python)
d=$(dirname "$real")
while [ "$d" != "/" ]; do
  if ! runuser -u "$user" -- test -x "$d"; then
    echo "sandbox tests: granting o+x on $d so $user can run $real" >&2
    chmod o+x "$d"
  fi
  d=$(dirname "$d")
done
repo=$(pwd)
d="$repo"
while [ "$d" != "/" ]; do
  runuser -u "$user" -- test -x "$d" || { echo "sandbox tests: granting o+x on $d" >&2; chmod o+x "$d"; }
  d=$(dirname "$d")
done
runuser -u "$user" -- .venv/bin/python -c 'import sandbox' \
  || { echo "sandbox tests: $user cannot import sandbox from .venv" >&2; exit 1; }
