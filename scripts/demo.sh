#!/usr/bin/env bash
# Set everything up, then show the main job: an agent-like command runs sandboxed on a snapshot
# of an example workspace; its edits are held as a pending changeset you can diff and approve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SANDBOX="$(pwd)/.venv/bin/sandbox"
WS="${DEMO_WORKSPACE:-/tmp/sandbox-demo}"
rm -rf "$WS"
mkdir -p "$WS/src"
printf '# Demo project\n\nA tiny workspace.\n' > "$WS/README.md"
printf 'def add(a, b):\n    return a - b  # bug\n' > "$WS/src/calc.py"
printf 'obsolete\n' > "$WS/notes.txt"
printf 'API_KEY=do-not-leak\n' > "$WS/.env"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cd "$WS"  # as a person would: `last` below is the last run of the current workspace

say "1. An 'agent' edits, creates and deletes files inside the sandbox (level 2: changes held)"
echo "\$ cd $WS && sandbox run -- sh -c '...'"
"$SANDBOX" run --level 2 -- sh -c '
  sed -i "s/a - b  # bug/a + b/" src/calc.py
  printf "def test_add():\n    from calc import add\n    assert add(2, 3) == 5\n" > src/test_calc.py
  rm notes.txt
  echo "secret visible inside? $(cat .env 2>&1 || true)"
  echo "host home visible inside? $(ls /root 2>&1 | head -1)"
' || true

say "2. The real workspace is untouched until approval"
ls -la "$WS" "$WS/src"

say "3. The pending changeset and its diff (a patch git apply accepts)"
"$SANDBOX" show last
"$SANDBOX" diff last

say "4. How to decide"
cat <<EOT
  approve all:      $SANDBOX approve last
  approve a file:   $SANDBOX approve last src/calc.py
  discard:          $SANDBOX reject last
  audit trail:      $SANDBOX audit --verify && $SANDBOX audit
EOT
say "5. Approving now, then verifying the audit chain"
"$SANDBOX" approve last -m "demo approval"
cat "$WS/src/calc.py"
"$SANDBOX" audit --verify
