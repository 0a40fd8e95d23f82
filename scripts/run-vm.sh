#!/usr/bin/env bash
# Start, reach and stop one test VM built by scripts/build-vm-image.sh (test harness only).
#
#   scripts/run-vm.sh start IMAGE_DIR STATE_DIR   boot it (returns once qemu runs)
#   scripts/run-vm.sh wait STATE_DIR [SECONDS]    wait until root's ssh login answers
#   scripts/run-vm.sh ssh STATE_DIR COMMAND       run COMMAND as root in the VM
#   scripts/run-vm.sh stop STATE_DIR              power it off and remove its disk overlay
#
# STATE_DIR receives the VM's state: a qcow2 overlay over the cached image (the image
# itself is never written), a freshly generated ssh key (id_ed25519), the host port
# forwarded to the guest's sshd (ssh_port), qemu's pid and the serial console log.
# KVM is not used (not available here): software emulation, `-accel tcg,tb-size=256`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

MEMORY=${MESHFLEET_VM_MEMORY:-1024}

ssh_opts() {
  local state=$1
  echo -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
       -o LogLevel=ERROR -o ConnectTimeout=5 -i "$state/id_ed25519" -p "$(cat "$state/ssh_port")"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
  local image=$1 state=$2
  [ -f "$image/root.img" ] || die "no VM image in $image" "run scripts/build-vm-image.sh"
  mkdir -p "$state"
  if [ -f "$state/qemu.pid" ] && kill -0 "$(cat "$state/qemu.pid")" 2>/dev/null; then
    die "a VM already runs from $state (pid $(cat "$state/qemu.pid"))" "scripts/run-vm.sh stop $state"
  fi
  rm -f "$state/id_ed25519" "$state/id_ed25519.pub" "$state/disk.qcow2" "$state/console.log"
  ssh-keygen -q -t ed25519 -N '' -C meshfleet-test-vm -f "$state/id_ed25519"
  qemu-img create -q -f qcow2 -F raw -b "$(cd "$image" && pwd)/root.img" "$state/disk.qcow2"
  free_port > "$state/ssh_port"
  local key
  key=$(base64 -w0 < "$state/id_ed25519.pub")
  qemu-system-x86_64 \
    -name meshfleet-test-vm -nodefaults -no-user-config \
    -accel tcg,tb-size=256 -cpu "${MESHFLEET_VM_CPU:-max}" -smp 1 -m "$MEMORY" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off meshfleet.ssh_key=$key" \
    -drive "file=$state/disk.qcow2,if=virtio,format=qcow2,discard=unmap" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$(cat "$state/ssh_port")-:22" \
    -device virtio-net-pci,netdev=net0 \
    -device virtio-rng-pci \
    -display none -monitor none -serial "file:$state/console.log" \
    -pidfile "$state/qemu.pid" -daemonize
  echo "started the test VM (pid $(cat "$state/qemu.pid"), ssh port $(cat "$state/ssh_port"))"
}

cmd_wait() {
  local state=$1 limit=${2:-180} start
  start=$(date +%s)
  # shellcheck disable=SC2046
  until ssh $(ssh_opts "$state") root@127.0.0.1 true 2>/dev/null; do
    if ! kill -0 "$(cat "$state/qemu.pid" 2>/dev/null)" 2>/dev/null; then
      die "the test VM stopped while booting" "see $state/console.log"
    fi
    [ $(( $(date +%s) - start )) -lt "$limit" ] \
      || die "no ssh answer from the test VM within $limit s" "see $state/console.log"
    sleep 1
  done
  echo "ssh answered after $(( $(date +%s) - start )) s"
}

cmd_ssh() {
  local state=$1
  shift
  # shellcheck disable=SC2046,SC2029  # split the options; the command runs in the guest
  ssh $(ssh_opts "$state") root@127.0.0.1 "$@"
}

cmd_stop() {
  local state=$1 pid
  pid=$(cat "$state/qemu.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$state/qemu.pid" "$state/disk.qcow2"
}

[ $# -ge 2 ] || die "usage: $0 start IMAGE_DIR STATE_DIR | wait STATE_DIR [S] | ssh STATE_DIR CMD | stop STATE_DIR"
action=$1
shift
case "$action" in
  start) cmd_start "$@" ;;
  wait) cmd_wait "$@" ;;
  ssh) cmd_ssh "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown action '$action'" "use start, wait, ssh or stop" ;;
esac
