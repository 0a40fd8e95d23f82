#!/usr/bin/env bash
# Create or refresh .venv with the exact pins of requirements-dev.txt (only when they
# changed since the last run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  is_debian_root || die "python3 has no venv module" "install python3-venv (3.11 or later)"
  apt_install python3-venv
fi
info "creating .venv with the pinned tools (a few minutes the first time)"
python3 -m venv .venv
# The package index can fail for a moment: try three times before giving up.
for attempt in 1 2 3; do
  if .venv/bin/pip install -q --retries 10 --timeout 60 -r requirements-dev.txt; then
    break
  fi
  [ "$attempt" = 3 ] && die "pip could not install requirements-dev.txt (3 attempts)" \
    "check that the Python package index is reachable, then rerun"
  info "pip failed (attempt $attempt of 3); retrying in 20 s"
  sleep 20
done
echo "$want" > "$stamp"
