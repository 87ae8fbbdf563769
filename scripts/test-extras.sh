#!/usr/bin/env bash
# Heavier prerequisites of the end-to-end tests: a real agent (Claude Code, from npm) installed
# project-locally into tests/e2e/node_modules, plus openssl for the HTTPS test servers.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "sandbox tests: missing ${need[*]}; install them (apt-get install -y ${need[*]})" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# npm's cache (~/.npm) makes this quick after the first time on a machine.
tests/e2e/setup.sh >/dev/null
