#!/usr/bin/env bash
# Install the agents the e2e tests run (Claude Code, Codex CLI) into tests/e2e/node_modules.
# Project-local on purpose: nothing global, nothing outside this directory.
# Needs: npm (Debian: apt-get install -y nodejs npm) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
bin=node_modules/@anthropic-ai/claude-code-linux-x64/claude
[ -x "$bin" ] || bin=node_modules/@anthropic-ai/claude-code/bin/claude.exe
"$bin" --version
node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex --version
