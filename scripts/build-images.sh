#!/usr/bin/env bash
# Build the sandbox images the tests need, once, into a stable cache; reuse them afterwards.
# A build is skipped when its definition hash (images/NAME.toml + mirror + builder version) is
# unchanged; downloaded .debs are kept too, so even a changed definition rebuilds without
# downloading what it already has. A Docker daemon is started (scripts/dockerd.sh) so each image
# is also imported as sandbox/NAME:<digest>.
# Usage: scripts/build-images.sh [NAME...]      default: every images/*.toml
# Env:   SANDBOX_IMAGES  the store (default /var/cache/sandbox/images; tests read it too)
set -euo pipefail
cd "$(dirname "$0")/.."

export SANDBOX_IMAGES=${SANDBOX_IMAGES:-/var/cache/sandbox/images}
if [ "$(id -u)" != 0 ]; then
  echo "sandbox images: building needs root (debootstrap); run: sudo $0" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq debootstrap >/dev/null
fi
scripts/dockerd.sh

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in images/*.toml; do names+=("$(basename "$f" .toml)"); done
fi
mkdir -p "$SANDBOX_IMAGES"
start=$(date +%s)
.venv/bin/python -m sandbox.cli._image image build "${names[@]}"
echo "sandbox images: ${names[*]} ready in $SANDBOX_IMAGES ($(( $(date +%s) - start ))s)" >&2
