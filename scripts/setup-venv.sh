#!/usr/bin/env bash
# Make .venv hold the exact pins of requirements-dev.txt.
#
# The virtualenv itself lives in a per-user cache keyed by the hash of the pins
# (~/.cache/meshfleet/venv-<hash>, or $MESHFLEET_VENV_CACHE/venv-<hash>) and .venv points
# at it, so a fresh clone on a machine that already ran the tests reuses it (the same
# way the test images are reused by tag), and a change of pins builds a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
stamp_ok() { [ -x "$1/bin/python" ] && [ "$(cat "$1/.requirements.sha256" 2>/dev/null)" = "$want" ]; }

# A developer's own .venv directory with the right pins is used as it is.
if [ -d .venv ] && [ ! -L .venv ] && stamp_ok .venv; then
  exit 0
fi
cache="${MESHFLEET_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfleet}/venv-${want:0:16}"
if ! stamp_ok "$cache"; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    is_debian_root || die "python3 has no venv module" "install python3-venv (3.11 or later)"
    apt_install python3-venv
  fi
  info "creating $cache with the pinned tools (a few minutes the first time)"
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  python3 -m venv "$cache"
  # The package index can fail for a moment: try three times before giving up.
  for attempt in 1 2 3; do
    if "$cache/bin/pip" install -q --retries 10 --timeout 60 -r requirements-dev.txt; then
      break
    fi
    [ "$attempt" = 3 ] && { rm -rf "$cache"; die "pip could not install requirements-dev.txt (3 attempts)" \
      "check that the Python package index is reachable, then rerun"; }
    info "pip failed (attempt $attempt of 3); retrying in 20 s"
    sleep 20
  done
  echo "$want" > "$cache/.requirements.sha256"
fi
# Relink only when it points elsewhere: other scripts may be running from .venv meanwhile
# (make test builds cjdroute in the background while lint runs).
if [ "$(readlink .venv 2>/dev/null)" != "$cache" ]; then
  rm -rf .venv
  ln -s "$cache" .venv
fi
