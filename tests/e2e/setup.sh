#!/usr/bin/env bash
# Install the agents the e2e tests run (Claude Code) into tests/e2e/node_modules.
# Project-local on purpose: nothing global, nothing outside this directory.
# Needs: npm (Debian: apt-get install -y nodejs npm) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
bin=node_modules/@anthropic-ai/claude-code-linux-x64/claude
[ -x "$bin" ] || bin=node_modules/@anthropic-ai/claude-code/bin/claude.exe
"$bin" --version
