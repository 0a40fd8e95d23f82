#!/usr/bin/env bash
# The local lab: `make lab` / `make lab-down`.
#
#   scripts/lab.sh up     containers for inventories/lab on named networks, then
#                         playbooks/site.yml, a no-op rerun, playbooks/validate.yml,
#                         playbooks/status.yml (report and map in .build/lab/status), summary
#   scripts/lab.sh down   remove everything `up` made
#
# The lab runs the real cjdroute, built from the cjdns source for amd64, arm64 and armhf
# by `make cjdroute` (cached; CJDNS_SOURCE as there, default ../shared/cjdns/
# cjdns-v21.1.tar.gz). Only with CJDNS_STANDIN=1, or when no source can be found, the
# stand-in test fixture replaces cjdroute and the traffic checks are NOT run (the summary
# says so).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
. scripts/lib.sh

INV=inventories/lab
LAB=.build/lab
export MOLECULE_SCENARIO_NAME=lab   # network names: mft-lab-<network>
export ANSIBLE_CONFIG="$ROOT/$INV/ansible.cfg"
export ANSIBLE_CACHE_PLUGIN_CONNECTION="$ROOT/.build/lab/facts"
# The lab packs its own artifact, so scenarios running meanwhile cannot swap it.
export MESHFLEET_ARTIFACT_DIR="$ROOT/.build/lab/artifacts"

timed() {  # timed LABEL COMMAND...: run, remember the wall time in $LAB/times
  local label=$1 start rc
  shift
  start=$(date +%s.%N)
  "$@"
  rc=$?
  printf '%s\t%.1f\t%s\n' "$label" "$(echo "$(date +%s.%N) - $start" | bc)" "$rc" >> "$LAB/times"
  return $rc
}

down() {
  setup_env "$ROOT"
  if [ -f "$INV/hosts.yml" ]; then
    ansible-playbook -i "$INV" molecule/resources/destroy.yml >/dev/null \
      || die "removing the lab containers failed" "docker ps -a; docker rm -f <name>"
  fi
  rm -rf "$LAB"
  info "lab removed"
}

up() {
  local started
  started=$(date +%s)
  MESHFLEET_SUITES=bookworm setup_env "$ROOT" docker
  ensure_graphviz
  export MESHFLEET_ARTIFACT_DIR="$ROOT/.build/lab/artifacts"
  daemon="STAND-IN test fixture, NOT cjdns (CJDNS_STANDIN=1)"
  if [ "${CJDNS_STANDIN:-}" != 1 ]; then
    if [ -z "$(cjdns_source "$ROOT")" ]; then
      daemon="STAND-IN test fixture, NOT cjdns: no cjdns source (set CJDNS_SOURCE)"
      export CJDNS_STANDIN=1
    else
      CJDNS_ARCHES="amd64 arm64 armhf" scripts/cjdroute.sh > .build/cjdroute-build.log 2>&1 \
        || { tail -30 .build/cjdroute-build.log; die "building cjdroute failed (log: .build/cjdroute-build.log)" \
               "fix the cause above, or run the lab with CJDNS_STANDIN=1"; }
      export MESHFLEET_CJDROUTE_DIR="$ROOT/dist/cjdroute"
      daemon="REAL $(build_description "$ROOT")"
    fi
  fi
  # A lab is always fresh: new containers mean new keys, which the registry would refuse.
  ansible-playbook -i "$INV" molecule/resources/destroy.yml >/dev/null 2>&1 || true
  rm -rf "$LAB"
  command -v bc >/dev/null || { is_debian_root && apt_install bc; }
  mkdir -p "$LAB" && : > "$LAB/times"
  timed "artifact" ansible-playbook molecule/resources/artifact.yml >/dev/null \
    || die "packing the cjdroute artifacts failed" "run make cjdroute, or the lab with CJDNS_STANDIN=1"
  timed "containers" ansible-playbook -i "$INV" molecule/resources/create.yml \
    || die "starting the lab containers failed" "see above; make lab-down cleans up"
  timed "lab wiring" ansible-playbook -i "$INV" tests/lab/prepare.yml \
    || die "wiring the lab failed" "see above"
  MESHFLEET_RUN_BUDGET_OUTPUT="$LAB/converge.json" \
    timed "site.yml (first)" ansible-playbook -i "$INV" playbooks/site.yml \
    || die "playbooks/site.yml failed on the lab" "see above; fix, then rerun make lab"
  MESHFLEET_RUN_BUDGET_OUTPUT="$LAB/rerun.json" \
    timed "site.yml (no-op rerun)" ansible-playbook -i "$INV" playbooks/site.yml \
    || die "the rerun of playbooks/site.yml failed" "see above"
  timed "validate.yml" ansible-playbook -i "$INV" playbooks/validate.yml \
    || info "validate.yml reported a negative answer"
  # Day two: the status report and fleet map, timed against a bare fact gathering.
  MESHFLEET_RUN_BUDGET_OUTPUT="$LAB/status-budget.json" \
    timed "status.yml" ansible-playbook -i "$INV" playbooks/status.yml -e "status_report_dir=$ROOT/$LAB/status" \
    || info "status.yml failed"
  timed "ansible -m setup (bare)" ansible mesh_nodes -i "$INV" -m ansible.builtin.setup >/dev/null \
    || info "ansible -m setup failed"
  summary "$(( $(date +%s) - started ))"
}

summary() {
  printf '\n==================== meshfleet lab ====================\n'
  printf 'cjdns: %s\n' "$daemon"
  if [ "${CJDNS_STANDIN:-}" = 1 ]; then
    printf '       Traffic checks (tunnels, NAT, capacity, bridged reachability) were NOT run.\n'
  fi
  printf '\nwall times (s):\n'
  awk -F'\t' '{printf "  %-26s %7s%s\n", $1, $2, ($3 == 0 ? "" : "  FAILED")}' "$LAB/times"
  printf '  %-26s %7s\n' "total" "$1"
  python3 - "$LAB" <<'PY'
import json, sys, pathlib
lab = pathlib.Path(sys.argv[1])
rerun = lab / "rerun.json"
if rerun.exists():
    hosts = json.loads(rerun.read_text())["hosts"]
    changed = sum(h["changed"] for h in hosts.values())
    most = max(hosts.items(), key=lambda kv: kv[1]["modules"])
    print("\nno-op rerun: %d changed on %d hosts; most module executions: %s (%d)"
          % (changed, len(hosts), most[0], most[1]["modules"]))
report = lab / "validate.md"
if report.exists():
    print("\n" + report.read_text())
status = lab / "status" / "status.md"
if status.exists():
    print("\nFleet status: %s; map: %s" % (status, lab / "status" / "map.svg"))
PY
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die "usage: scripts/lab.sh up|down" ;;
esac
