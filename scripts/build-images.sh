#!/usr/bin/env bash
# Build the systemd test images that every Molecule scenario and the lab use.
#
#   scripts/build-images.sh [SUITE[-ARCH] ...]   (default: bookworm trixie)
#
# SUITE is bookworm or trixie; ARCH (default amd64, this machine's) may be arm64 or armhf,
# the Raspberry Pi's: those userlands run under qemu-user (binfmt_misc, set up here).
# Images are tagged meshfleet/test-<suite>[-<arch>]:<hash of this script> so that a
# second run reuses them and a change to the recipe rebuilds them.  When a container
# registry answers, an amd64 image is built FROM debian:<suite>; otherwise (and always
# for arm64 and armhf) it is made offline with debootstrap + `docker import`.  An image is only tagged once it has been built and
# has booted systemd, so a failed build never leaves a "good" tag behind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

# Everything the roles install is baked in, so converges in tests never need apt.
PACKAGES=(systemd systemd-sysv dbus python3 python3-apt iproute2 iputils-ping procps
          nftables kmod ca-certificates iperf3 tcpdump netcat-openbsd sudo curl
          iw wpasupplicant wireless-regdb prometheus-node-exporter)
# The monitoring role's Prometheus server (96 MB installed): only in the native images,
# the scenarios put the `monitoring` host on amd64.
NATIVE_PACKAGES=(prometheus)

# The tag follows the recipe (this script and what runs in the new root), nothing else.
recipe_hash=$(cat "$0" "$here/image-finish.sh" | sha256sum | cut -c1-12)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

image_tag() { echo "meshfleet/test-$1:$recipe_hash"; }   # image_tag SUITE[-ARCH]

smoke_test() {
  # The image must boot systemd to a running (or degraded-free) state.
  local tag=$1 name=meshfleet-smoke-$$
  docker run -d --name "$name" $(docker_systemd_args) "$tag" >/dev/null
  local state="" i
  # An emulated userland (arm64, armhf under qemu-user) boots several times slower.
  for i in $(seq 1 180); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 1
  done
  if [ "$state" != running ]; then
    docker exec "$name" systemctl --failed --no-pager 2>&1 | sed 's/^/    /' || true
    docker logs "$name" 2>&1 | tail -20 | sed 's/^/    /'
    docker rm -f "$name" >/dev/null
    die "image $tag booted systemd to state '${state:-none}' (want 'running')" \
        "see the failed units above; fix the recipe in $0"
  fi
  docker exec "$name" python3 -c 'import apt' >/dev/null
  docker rm -f "$name" >/dev/null
}

build_from_registry() {
  local suite=$1 tag=$2 ctx
  local packages=("${PACKAGES[@]}" "${NATIVE_PACKAGES[@]}")
  ctx=$(mktemp -d)
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM debian:$suite
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages[*]} \
 && rm -rf /var/lib/apt/lists/*
DOCKERFILE
  cat "$here/image-finish.sh" > "$ctx/finish.sh"
  printf 'COPY finish.sh /tmp/finish.sh\nRUN sh /tmp/finish.sh && rm /tmp/finish.sh\nCMD ["/sbin/init"]\n' >> "$ctx/Dockerfile"
  docker build -q -t "$tag.candidate" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_with_debootstrap() {  # build_with_debootstrap SUITE TAG [ARCH]
  local suite=$1 tag=$2 arch=${3:-} root log mirror
  command -v debootstrap >/dev/null || {
    if is_debian_root; then
      apt_install debootstrap
    else
      die "debootstrap is not installed and no container registry answers" \
          "install debootstrap (Debian/Ubuntu: apt-get install debootstrap) and rerun"
    fi
  }
  root=$(mktemp -d /var/tmp/meshfleet-rootfs-XXXXXX)
  log=$(mktemp /tmp/meshfleet-debootstrap-XXXXXX.log)
  mirror=$(debian_mirror)
  local include packages=("${PACKAGES[@]}")
  [ -n "$arch" ] || packages+=("${NATIVE_PACKAGES[@]}")
  include=$(IFS=,; echo "${packages[*]}")
  info "debootstrap $suite ${arch:-amd64} (log: $log)"
  if ! debootstrap ${arch:+--arch="$arch"} --variant=minbase --include="$include" "$suite" "$root" ${mirror:+"$mirror"} >"$log" 2>&1; then
    tail -15 "$log" | sed 's/^/    /'
    rm -rf "$root"
    die "debootstrap of $suite failed (full log: $log)" \
        "check that Debian's package mirror is reachable and that the disk has 1 GiB free"
  fi
  chroot "$root" /bin/sh -s < "$here/image-finish.sh" >>"$log" 2>&1
  tar -C "$root" -c . | docker import -c 'CMD ["/sbin/init"]' -c 'ENV container=docker' - "$tag.candidate" >/dev/null
  rm -rf "$root"
}

for name in "${suites[@]}"; do
  suite=${name%%-*} arch=""
  [ "$name" = "$suite" ] || arch=${name#*-}
  case "$suite" in bookworm|trixie) ;; *) die "unknown suite '$suite' in '$name'" "use bookworm or trixie" ;; esac
  case "$arch" in ""|amd64) arch="" ;; arm64|armhf) ;; *) die "unknown architecture '$arch' in '$name'" "use amd64, arm64 or armhf" ;; esac
  [ -z "$arch" ] || ensure_binfmt "$arch"
  tag=$(image_tag "$suite${arch:+-$arch}")
  if docker image inspect "$tag" >/dev/null 2>&1; then
    info "image $tag is up to date"
    continue
  fi
  docker image rm -f "$tag.candidate" >/dev/null 2>&1 || true
  start=$(date +%s)
  if [ -z "$arch" ] && registry_answers; then
    build_from_registry "$suite" "$tag"
  else
    build_with_debootstrap "$suite" "$tag" "$arch"
  fi
  smoke_test "$tag.candidate"
  docker tag "$tag.candidate" "$tag"
  docker tag "$tag" "meshfleet/test-$suite${arch:+-$arch}:latest"
  docker image rm "$tag.candidate" >/dev/null
  info "built $tag in $(( $(date +%s) - start )) s"
done
