#!/usr/bin/env bash
# Set everything up and run the whole test suite (unit, integration, security, e2e), and, for
# the whole suite, ruff and mypy strict over the code and the tests.
# As root it also prepares an unprivileged test user, so both modes are tested for real.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
if [ "$(id -u)" = 0 ]; then
  scripts/test-user.sh
  scripts/dockerd.sh          # a Docker daemon for the docker backend's conformance run
  scripts/build-images.sh     # debootstrap images, built once and cached in /var/cache/sandbox
fi
if [ -x scripts/test-extras.sh ]; then
  scripts/test-extras.sh   # optional heavier prerequisites (agents from npm, ...)
fi
set +e
lint=0
if [ "$#" = 0 ]; then  # the whole suite: the code, tests included, is lint- and type-clean too
  .venv/bin/ruff check sandbox tests benchmarks || lint=1
  .venv/bin/mypy || lint=1   # strict; sandbox and tests (pyproject)
fi
.venv/bin/python -m pytest -p no:cacheprovider "${@:-tests}"
rc=$?
set -e
if [ "$rc" = 0 ] && [ "$lint" != 0 ]; then
  echo "sandbox tests: ruff or mypy found problems (above)" >&2
  rc=1
fi
if [ "$rc" = 5 ]; then
  echo "sandbox tests: no tests were collected" >&2
fi
exit "$rc"
