#!/usr/bin/env bash
# `make cjdroute`: build cjdroute for the fleet's architectures into dist/cjdroute, with
# the collection's own playbook (meshfleet.mesh.build_cjdroute), cached.
#
#   CJDNS_SOURCE=path-or-URL     the cjdns source tarball (default: ../shared/cjdns/
#                                cjdns-v21.1.tar.gz beside the project, sha256 pinned)
#   CJDNS_SOURCE_SHA256=sum      required for a URL; for a path, checked when given
#   CJDNS_ARCHES="amd64 arm64 armhf"   the architectures (the default)
#
# Writes dist/cjdroute/<arch>/cjdroute, dist/cjdroute/artifacts.yml (a cjdns_artifacts
# block) and dist/cjdroute/build.json. A second run with the same input builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

src=$(cjdns_source "$ROOT")
[ -n "$src" ] || die "no cjdns source: ../shared/cjdns/$CJDNS_SHARED_SOURCE_NAME is not there and CJDNS_SOURCE is not set" \
  "CJDNS_SOURCE=/path/to/cjdns-v21.1.tar.gz make cjdroute (or a URL with CJDNS_SOURCE_SHA256=...)"
setup_env "$ROOT"
read -r -a arches <<<"${CJDNS_ARCHES:-amd64 arm64 armhf}"
extra=$(python3 -c 'import json, sys; print(json.dumps({
    "cjdroute_build_output_dir": sys.argv[1], "cjdroute_build_source": sys.argv[2],
    "cjdroute_build_source_sha256": sys.argv[3], "cjdroute_build_architectures": sys.argv[4:]}))' \
  "$ROOT/dist/cjdroute" "${src%%$'\t'*}" "${src#*$'\t'}" "${arches[@]}")
exec ansible-playbook playbooks/build_cjdroute.yml -e "$extra"
