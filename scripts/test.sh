#!/usr/bin/env bash
# Every check of the project, from a fresh machine: `make test` runs this.
#
#   scripts/test.sh               all steps
#   scripts/test.sh lint unit     only the named steps (lint unit sanity build molecule)
#   SCENARIOS="cjdns gateway" scripts/test.sh molecule     some scenarios only
#   MESHFLEET_SUITES="bookworm"  limit the image suites (default: bookworm trixie)
#   CJDNS_SOURCE=path-or-URL [CJDNS_SOURCE_SHA256=sum]   the cjdns source to build from
#                                (default: ../shared/cjdns/cjdns-v21.1.tar.gz, when there)
#   CJDNS_STANDIN=1              the stand-in test fixture instead of the real daemon
#
# It sets up what it needs (virtualenv with exact pins, a Docker engine, the offline
# systemd test images for amd64, arm64 and armhf, and cjdroute built from the cjdns
# source for those three, cached), runs each step, and ends with a table of steps, the
# daemon the scenarios ran with, the number of tests skipped for want of the real
# daemon (which fails the run when the real daemon ran), and a line
# "steps: N passed, N failed". It exits non-zero if any step failed.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(lint unit sanity build molecule)
read -r -a suites <<<"${MESHFLEET_SUITES:-bookworm trixie}"
# Scenarios that also run on trixie: the per-role ones (the fleet-wide scenario and the
# qemu radio scenario run on bookworm only, to keep CI well inside its hour).
read -r -a trixie_scenarios <<<"${MESHFLEET_TRIXIE_SCENARIOS:-cjdns gateway client bridge}"
# Scenarios run in the background, beside the others: the qemu VM of mesh_point spends
# most of its 20-30 minutes emulating a CPU on one core while the container scenarios
# mostly wait on Ansible and Docker; one after the other they would not fit the hour.
# Scenarios never share container names, networks or artifact directories.
read -r -a background_scenarios <<<"${MESHFLEET_BACKGROUND_SCENARIOS-mesh_point}"

results=()
failed=0
passed=0
run_step() {  # run_step NAME COMMAND...
  local name=$1 start rc
  shift
  info "step: $name"
  start=${STEP_START:-$(date +%s)}
  "$@"
  rc=$?
  # A background step reports its own end (STEP_END), not when it was waited for.
  local took=$(( ${STEP_END:-$(date +%s)} - start ))
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); results+=("$(printf '%-34s ok      %5ss' "$name" "$took")")
  else
    failed=$((failed + 1)); results+=("$(printf '%-34s FAILED  %5ss' "$name" "$took")")
    printf '\nERROR: step %s failed (exit %s)\n' "$name" "$rc" >&2
  fi
}

show_log() {  # show_log FILE RC: print a background step's output, return its exit code
  cat "$1"
  return "$2"
}

# Molecule folds its output to the terminal's width: wide lines keep each pytest skip
# reason on its SKIPPED line, where the count below finds it.
export COLUMNS=${MESHFLEET_LOG_COLUMNS:-250}

molecule_run() {  # molecule_run SCENARIO SUITE: its output also goes to .build/logs
  MESHFLEET_TEST_SUITE=$2 molecule test -s "$1" 2>&1 | tee ".build/logs/molecule-$1-$2.log"
  return "${PIPESTATUS[0]}"
}

# --- set-up ---------------------------------------------------------------------
needs_docker=""
for s in "${steps[@]}"; do
  case "$s" in lint|unit|sanity|build) ;; molecule) needs_docker=docker ;;
    *) die "unknown step '$s'" "use lint, unit, sanity, build or molecule" ;; esac
done
setup_env "$ROOT"
mkdir -p .build/logs

bg_start_step() {  # bg_start_step KEY COMMAND...: run it in the background, output in .build/logs/KEY.log
  local key=$1
  shift
  info "step: $key, in the background: .build/logs/$key.log"
  rm -f ".build/logs/$key.end"
  ( "$@" > ".build/logs/$key.log" 2>&1; rc=$?; date +%s > ".build/logs/$key.end"; exit $rc ) &
  bg_pid[$key]=$!
  bg_start[$key]=$(date +%s)
}
bg_wait_step() {  # bg_wait_step KEY NAME: wait for it, print its output, report it as step NAME
  local key=$1 rc=0
  [ -n "${bg_pid[$key]:-}" ] || return 0
  info "waiting for $key"
  wait "${bg_pid[$key]}" || rc=$?
  STEP_START=${bg_start[$key]} STEP_END=$(cat ".build/logs/$key.end" 2>/dev/null || date +%s) \
    run_step "$2" show_log ".build/logs/$key.log" "$rc"
  unset "bg_pid[$key]"
  return "$rc"
}
declare -A bg_pid=() bg_start=()
# Each background step in its own process group, ended with the run (Ctrl-C, a failure).
set -m
end_background() {
  local pid
  for pid in "${bg_pid[@]}"; do kill -- "-$pid" 2>/dev/null; done
}
trap end_background EXIT

# The daemon the scenarios run: the real cjdroute, built from the cjdns source for amd64,
# arm64 and armhf (scripts/cjdroute.sh, cached: seconds when nothing changed), unless
# CJDNS_STANDIN=1 or no source can be found. The build and the test images (amd64, and
# arm64/armhf under qemu-user) are made in the background while lint, unit tests and the
# collection build run: one is mostly compiling, the other mostly downloading and
# unpacking, and nothing before the scenarios needs them.
daemon="STAND-IN test fixture, NOT cjdns (CJDNS_STANDIN=1)"
if [ -n "$needs_docker" ] && [ "${CJDNS_STANDIN:-}" != 1 ]; then
  if [ -z "$(cjdns_source "$ROOT")" ]; then
    daemon="STAND-IN test fixture, NOT cjdns: no cjdns source (set CJDNS_SOURCE)"
    export CJDNS_STANDIN=1
  else
    bg_start_step cjdroute-build env CJDNS_ARCHES="amd64 arm64 armhf" scripts/cjdroute.sh
  fi
fi
if [ -n "$needs_docker" ]; then
  # The arm64/armhf images (their second debootstrap stage runs under emulation) are made
  # beside the amd64 ones (mostly downloading and unpacking).
  images() (  # a subshell: a failure here fails the step, not the whole run
    ensure_docker && ensure_graphviz || exit 1
    scripts/build-images.sh ${MESHFLEET_FOREIGN_IMAGES-bookworm-arm64 bookworm-armhf} \
      > .build/logs/test-images-foreign.log 2>&1 &
    foreign=$!
    rc=0
    scripts/build-images.sh "${suites[@]}" || rc=1
    wait "$foreign" || rc=1
    cat .build/logs/test-images-foreign.log
    exit "$rc"
  )
  bg_start_step test-images images
fi

# Before the first scenario: the images, and the daemon the scenarios get. A failed
# build is a failed run, never a quiet fall back to the stand-in.
wait_for_prerequisites() {
  local rc=0
  bg_wait_step test-images "test images (amd64 arm64 armhf)" || rc=1
  [ -n "${bg_pid[cjdroute-build]:-}" ] || return "$rc"
  if bg_wait_step cjdroute-build "cjdroute build (amd64 arm64 armhf)"; then
    export MESHFLEET_CJDROUTE_DIR="$ROOT/dist/cjdroute"
    daemon="real $(build_description "$ROOT")"
  else
    daemon="none: the cjdroute build FAILED (see its step)"
    rc=1
  fi
  return "$rc"
}

# --- steps ----------------------------------------------------------------------
step_build() {
  # Build the collection, install it into an empty path, and render every plugin's doc.
  local out=.build/dist coll=.build/installed
  rm -rf "$out" "$coll" && mkdir -p "$out" "$coll"
  ansible-galaxy collection build --force --output-path "$out" . >/dev/null || return 1
  ANSIBLE_COLLECTIONS_PATH="$ROOT/$coll" ansible-galaxy collection install --force --no-deps \
    -p "$ROOT/$coll" "$out"/meshfleet-mesh-*.tar.gz >/dev/null || return 1
  local type name n=0
  for type in module filter test lookup callback; do
    for name in $(ANSIBLE_COLLECTIONS_PATH="$ROOT/$coll" ansible-doc -t "$type" -l meshfleet.mesh 2>/dev/null | awk '{print $1}'); do
      ANSIBLE_COLLECTIONS_PATH="$ROOT/$coll" ansible-doc -t "$type" "$name" >/dev/null || { echo "ansible-doc -t $type $name failed"; return 1; }
      n=$((n + 1))
    done
  done
  ANSIBLE_COLLECTIONS_PATH="$ROOT/$coll" ansible-doc -t role -l meshfleet.mesh >/dev/null || return 1
  echo "built, installed, and rendered the docs of $n plugins"
  [ "$n" -gt 0 ]
}

for step in "${steps[@]}"; do
  case "$step" in
    lint)
      run_step yamllint yamllint --strict .
      run_step ansible-lint ansible-lint --offline
      run_step ruff ruff check .
      ;;
    unit)
      run_step "pytest unit" pytest -q tests/unit
      ;;
    sanity)
      run_step "ansible-test sanity" scripts/sanity.sh
      ;;
    build)
      run_step "collection build+doc" step_build
      ;;
    molecule)
      if ! wait_for_prerequisites; then
        run_step "molecule (not run: images or cjdroute failed)" false
        continue
      fi
      read -r -a scenarios <<<"${SCENARIOS:-$(ls molecule/*/molecule.yml | cut -d/ -f2 | tr '\n' ' ')}"
      rm -f .build/logs/molecule-*
      for sc in "${scenarios[@]}"; do
        if [[ " ${background_scenarios[*]} " == *" $sc "* ]]; then
          bg_start_step "molecule-$sc-bookworm" env MESHFLEET_TEST_SUITE=bookworm molecule test -s "$sc"
        fi
      done
      for suite in "${suites[@]}"; do
        for sc in "${scenarios[@]}"; do
          [ -n "${bg_pid[molecule-$sc-bookworm]:-}" ] && continue
          if [ "$suite" != bookworm ] && [[ " ${trixie_scenarios[*]} " != *" $sc "* ]]; then continue; fi
          run_step "molecule $sc ($suite)" molecule_run "$sc" "$suite"
        done
      done
      for sc in "${scenarios[@]}"; do
        bg_wait_step "molecule-$sc-bookworm" "molecule $sc (bookworm, background)"
      done
      # Every test skipped for want of the real daemon (pytest -r s in the verifier).
      real_skips=$(cat .build/logs/molecule-*.log 2>/dev/null \
        | sed -nE 's/.*SKIPPED \[([0-9]+)\] [^ ]+: needs the real daemon.*/\1/p' | awk '{n += $1} END {print n + 0}')
      if [ "${CJDNS_STANDIN:-}" != 1 ]; then
        run_step "no test skipped for want of cjdns" test "$real_skips" -eq 0
      fi
      ;;
  esac
done

printf '\n%s\n' "---------------------------------------------------"
printf '%s\n' "${results[@]}"
if [ -n "$needs_docker" ]; then
  printf 'cjdns daemon in the scenarios: %s\n' "$daemon"
  printf 'tests skipped for want of the real daemon: %s\n' "${real_skips:-not counted}"
  [ "${CJDNS_STANDIN:-}" != 1 ] || printf '!!! The stand-in is not cjdns: tunnels, peering, NAT and failover were NOT tested. !!!\n'
fi
printf 'steps: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
