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

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null || die "apt-get update failed" "check this machine's Debian package sources"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
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
  ln -sfn "$root" "$root/.build/collections/ansible_collections/meshfleet/mesh"
  if [ "${2:-}" = docker ]; then
    ensure_docker
    "$root/scripts/build-images.sh" ${MESHFLEET_SUITES:-bookworm trixie} || die "building the test images failed" "see above"
  fi
}
