#!/usr/bin/env bash
# Run the benchmarks against peers in the same run; prints markdown tables.
#   benchmarks/run.sh            all of them
# Installs the peers it needs: bubblewrap (apt) and Anthropic's sandbox-runtime (npm, into
# benchmarks/.node; needs socat and ripgrep on Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
if [ "$(id -u)" = 0 ]; then
  for p in bubblewrap socat ripgrep; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
      || { apt-get update -qq >/dev/null; apt-get install -y -qq "$p" >/dev/null; }
  done
fi
if command -v npm >/dev/null && [ ! -x benchmarks/.node/node_modules/.bin/srt ]; then
  mkdir -p benchmarks/.node
  npm install --silent --prefix benchmarks/.node @anthropic-ai/sandbox-runtime >/dev/null 2>&1 \
    || echo "benchmarks: could not install @anthropic-ai/sandbox-runtime; srt is skipped" >&2
fi
mkdir -p benchmarks/results
[ "$(id -u)" = 0 ] && { scripts/dockerd.sh; scripts/build-images.sh; }   # bench_backends' peers
for b in benchmarks/bench_*.py; do
  name=$(basename "$b" .py)
  echo "## $name"
  .venv/bin/python "$b" | tee "benchmarks/results/$name.txt"
  echo
done
