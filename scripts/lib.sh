# Shared shell helpers for the project's scripts (sourced, not run).
# shellcheck shell=bash

info() { printf '==> %s\n' "$*" >&2; }

# die WHAT [WHAT-TO-DO]: stop with a message saying what failed and what to do.
die() {
  printf '\nERROR: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf '  what to do: %s\n' "$2" >&2
  exit 1
}

is_debian_root() { [ "$(id -u)" = 0 ] && [ -r /etc/debian_version ] && command -v apt-get >/dev/null; }

# Parts of a run install packages side by side (test images, cjdroute toolchains): each
# apt-get waits for another's lock instead of failing on it.
apt_updated=""
apt_install() {
  local attempt
  if [ -z "$apt_updated" ]; then
    for attempt in 1 2 3 4 5 6; do
      apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 && { apt_updated=1; break; }
      sleep 10
    done
    [ -n "$apt_updated" ] || die "apt-get update failed" "check this machine's Debian package sources"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed" "install it by hand and rerun"
}

# The Debian mirror this machine already uses (so a local mirror or proxy is honoured);
# empty means debootstrap's own default.
debian_mirror() {
  if [ -n "${MESHFLEET_DEBIAN_MIRROR:-}" ]; then echo "$MESHFLEET_DEBIAN_MIRROR"; return; fi
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v -e '^#' -e security \
    | grep -oE '(https?|file)://[^ ]+/debian/?' | head -1 || true
}

# The docker run flags that let systemd run as PID 1 here (no --privileged: one
# capability it asks for is missing in this sandbox), with a TUN device and IPv6.
docker_systemd_args() {
  echo --cap-add NET_ADMIN --cap-add SYS_ADMIN --cap-add NET_RAW --device /dev/net/tun \
       --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /tmp \
       --security-opt seccomp=unconfined --sysctl net.ipv6.conf.all.disable_ipv6=0
}

docker_answers() { docker info >/dev/null 2>&1; }

# Use the Docker engine that answers; on Debian as root install and start Debian's
# docker.io when none does; anywhere else say what to install.
ensure_docker() {
  docker_answers && return 0
  if ! command -v dockerd >/dev/null; then
    is_debian_root || die "no Docker engine answers and this is not a Debian machine run as root" \
      "install and start Docker Engine (or Podman's docker socket), then rerun"
    info "installing Debian's docker.io"
    apt_install docker.io
  fi
  if ! docker_answers; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl start docker || true
    fi
  fi
  if ! docker_answers; then
    info "starting dockerd (log: /var/log/meshfleet-dockerd.log)"
    nohup dockerd >/var/log/meshfleet-dockerd.log 2>&1 &
    local i
    for i in $(seq 1 30); do docker_answers && break; sleep 1; done
  fi
  docker_answers || die "dockerd did not start (see /var/log/meshfleet-dockerd.log)" \
    "start a Docker engine by hand and rerun"
}

# The cjdns source the tests and the lab build cjdroute from when CJDNS_SOURCE is not set:
# the release tarball beside the project (../shared/cjdns), pinned by its sha256.
CJDNS_SHARED_SOURCE_NAME=cjdns-v21.1.tar.gz
CJDNS_SHARED_SOURCE_SHA256=96e2a32e7a0306abb4023af71f6096b153e8eee1bece8cf3d2e0261b859fd219

# cjdns_source ROOT: print "SOURCE<TAB>SHA256" for the build (CJDNS_SOURCE and
# CJDNS_SOURCE_SHA256, else the shared tarball with its pinned sum), or nothing when there
# is no source.
cjdns_source() {
  local shared="$1/../shared/cjdns/$CJDNS_SHARED_SOURCE_NAME"
  if [ -n "${CJDNS_SOURCE:-}" ]; then
    printf '%s\t%s\n' "$CJDNS_SOURCE" "${CJDNS_SOURCE_SHA256:-}"
  elif [ -f "$shared" ]; then
    printf '%s\t%s\n' "$(cd "$(dirname "$shared")" && pwd)/$CJDNS_SHARED_SOURCE_NAME" "$CJDNS_SHARED_SOURCE_SHA256"
  fi
}

# Graphviz's `dot` draws the fleet map of playbooks/status.yml (the lab and the
# neighbourhood scenario check it).
ensure_graphviz() {
  command -v dot >/dev/null && return 0
  is_debian_root || { info "no Graphviz 'dot': status.yml will write map.dot only (install graphviz)"; return 0; }
  apt_install graphviz
}

# build_description ROOT: one line naming the cjdroute build in ROOT/dist/cjdroute.
build_description() {
  python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))
print("%s, source sha256 %s (%s)" % (b["version"], b["source_sha256"], " ".join(sorted(b["architectures"]))))' \
    "$1/dist/cjdroute/build.json"
}

# Containers of the Pi's architectures (arm64, armhf) run their userland under qemu-user:
# Debian's qemu-user-static registers binfmt_misc handlers with the F flag, so the
# emulator is found inside containers too.  Usage: ensure_binfmt arm64|armhf
ensure_binfmt() {
  local q
  case "$1" in arm64) q=qemu-aarch64 ;; armhf) q=qemu-arm ;; *) return 0 ;; esac
  grep -qx enabled "/proc/sys/fs/binfmt_misc/$q" 2>/dev/null \
    && grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/$q" && return 0
  if ! command -v "$q-static" >/dev/null || ! command -v update-binfmts >/dev/null; then
    is_debian_root || die "running $1 containers needs qemu-user-static and binfmt-support" \
      "install them (Debian: apt-get install qemu-user-static binfmt-support) and rerun"
    apt_install qemu-user-static binfmt-support
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
      || die "binfmt_misc could not be mounted" "as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"
  fi
  update-binfmts --enable "$q" >/dev/null 2>&1 || true
  if ! { grep -qx enabled "/proc/sys/fs/binfmt_misc/$q" 2>/dev/null && grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/$q"; }; then
    die "no enabled binfmt_misc handler with the F flag for $q" "update-binfmts --enable $q (from qemu-user-static)"
  fi
}

# True when images can be pulled.  Set MESHFLEET_REGISTRY=0/1 to skip the probe.
registry_answers() {
  case "${MESHFLEET_REGISTRY:-probe}" in
    0) return 1 ;; 1) return 0 ;;
  esac
  timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1
}

# Everything a run needs on this machine: the pinned virtualenv on PATH, the collection
# visible to Ansible from this checkout, and (with "docker") a Docker engine and the
# systemd test images.  Usage: setup_env ROOT [docker]
setup_env() {
  local root=$1
  "$root/scripts/setup-venv.sh" || die "the virtualenv could not be set up" "see the pip output above"
  export PATH="$root/.venv/bin:$PATH"
  export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
  export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$root/tests/ansible.cfg}"
  mkdir -p "$root/.build/collections/ansible_collections/meshfleet"
  [ "$(readlink "$root/.build/collections/ansible_collections/meshfleet/mesh")" = "$root" ] \
    || ln -sfn "$root" "$root/.build/collections/ansible_collections/meshfleet/mesh"
  if [ "${2:-}" = docker ]; then
    ensure_docker
    # The Raspberry Pi's architectures too: scenarios and the lab run arm64/armhf nodes.
    "$root/scripts/build-images.sh" ${MESHFLEET_SUITES:-bookworm trixie} ${MESHFLEET_FOREIGN_IMAGES-bookworm-arm64 bookworm-armhf} \
      || die "building the test images failed" "see above"
  fi
}
