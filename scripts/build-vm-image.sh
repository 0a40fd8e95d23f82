#!/usr/bin/env bash
# Build the qemu test VM that gives the mesh_point scenario real (simulated) 802.11s
# radios: a Debian kernel with mac80211_hwsim, which the container tests cannot have.
#
#   scripts/build-vm-image.sh          build when missing; print the image directory
#
# Everything comes from Debian packages (debootstrap from this machine's Debian mirror;
# the kernel is Debian's linux-image-amd64): no other download. The result is cached in
# ${MESHFLEET_VM_CACHE:-~/.cache/meshfleet/vm}/bookworm-<hash of the recipe> (vmlinuz,
# initrd.img, a raw ext4 root.img), outside the checkout like the virtualenv, so another
# clone on this machine (CI's) reuses it; a change to the recipe rebuilds it. Each VM
# boots from its own qcow2 overlay (scripts/run-vm.sh), so the image is never written. The directory is
# only named <hash> once the image has booted to `systemctl is-system-running` = running
# with the radios present, so a failed build never leaves a "good" image behind.
# Test harness only: nothing here reaches a real node.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

SUITE=bookworm
# What the guest needs: systemd and ssh for Ansible, the radio tools the role drives,
# modprobe with modules.alias (the kernel loads ccm/cmac for SAE on demand), and glibc
# (Debian 12's) for a real cjdroute in real-daemon mode; nftables, which a standard Debian or
# Raspberry Pi OS install has and the firewall role writes to (the VM is also a gateway).
PACKAGES=(systemd systemd-sysv udev kmod iproute2 iputils-ping procps openssh-server python3
          iw wpasupplicant wireless-regdb linux-image-amd64 initramfs-tools zstd nftables)
# Radios the guest has at every boot (mac80211_hwsim radios=N): see molecule/mesh_point.
RADIOS=4

cache=${MESHFLEET_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfleet/vm}

ensure_host_tools() {
  local missing=() cmd
  for cmd in debootstrap:debootstrap mke2fs:e2fsprogs qemu-system-x86_64:qemu-system-x86 \
             qemu-img:qemu-utils ssh:openssh-client ssh-keygen:openssh-client; do
    command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  is_debian_root || die "missing tools: ${missing[*]}" \
    "install the Debian packages ${missing[*]} (or their equivalents) and rerun"
  info "installing ${missing[*]}"
  apt_install "${missing[@]}"
}

# Runs inside the new root (chroot): turn it into a quiet VM that boots straight to sshd.
guest_finish() {
  cat <<'GUEST'
set -e
echo meshfleet-vm > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 meshfleet-vm\n::1 localhost ip6-localhost\n' > /etc/hosts
echo '/dev/vda / ext4 rw,relatime,errors=remount-ro 0 1' > /etc/fstab
# The user-mode network of qemu: fixed address, no DHCP wait.
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/10-eth0.network <<'NET'
[Match]
Name=eth0
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
NET
systemctl enable systemd-networkd.service
# The radios of the simulated node, present from boot like a plugged-in USB radio.
echo mac80211_hwsim > /etc/modules-load.d/meshfleet-hwsim.conf
echo "options mac80211_hwsim radios=@RADIOS@" > /etc/modprobe.d/meshfleet-hwsim.conf
# The Debian kernel trusts Debian's signature of the regulatory database; copy it in place of
# the alternatives symlink so the kernel's firmware loader finds it.
for f in regulatory.db regulatory.db.p7s; do
  cp --remove-destination "/lib/firmware/$f-debian" "/lib/firmware/$f"
done
# Root logs in with the key the test run generates; its public half comes on the kernel
# command line (meshfleet.ssh_key=<base64 of the authorized_keys line>).
cat > /usr/local/sbin/meshfleet-test-ssh-key <<'KEY'
#!/bin/sh
set -e
for arg in $(cat /proc/cmdline); do
  case "$arg" in meshfleet.ssh_key=*)
    mkdir -p -m 0700 /root/.ssh
    echo "${arg#meshfleet.ssh_key=}" | base64 -d > /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys ;;
  esac
done
KEY
chmod 0755 /usr/local/sbin/meshfleet-test-ssh-key
cat > /etc/systemd/system/meshfleet-test-ssh-key.service <<'UNIT'
[Unit]
Description=Test harness: root's authorized key from the kernel command line
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/meshfleet-test-ssh-key

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable meshfleet-test-ssh-key.service
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/; s/^#\?UseDNS.*/UseDNS no/' /etc/ssh/sshd_config
# Nothing that waits for a network or a console that is not there; no timers.
for unit in systemd-networkd-wait-online.service getty@tty1.service getty-static.service \
            serial-getty@ttyS0.service e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer \
            e2scrub_all.timer fstrim.timer man-db.timer; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
# Small, fast initramfs: only what mounts a virtio disk.
printf 'MODULES=list\nCOMPRESS=gzip\n' > /etc/initramfs-tools/conf.d/meshfleet.conf
printf 'virtio_pci\nvirtio_blk\next4\n' > /etc/initramfs-tools/modules
update-initramfs -u -k all >/dev/null
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
GUEST
}

build() {
  local root log mirror include work
  work=$(mktemp -d /var/tmp/meshfleet-vm-XXXXXX)
  root="$work/root"
  log="$work/build.log"
  mirror=$(debian_mirror)
  include=$(IFS=,; echo "${PACKAGES[*]}")
  info "debootstrap $SUITE for the test VM (log: $log)"
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$root" ${mirror:+"$mirror"} >"$log" 2>&1; then
    tail -15 "$log" | sed 's/^/    /'
    die "debootstrap of $SUITE failed (full log: $log)" \
        "check that Debian's package mirror is reachable and that the disk has 2 GiB free"
  fi
  guest_finish | sed "s/@RADIOS@/$RADIOS/" | chroot "$root" /bin/sh -s >>"$log" 2>&1 \
    || die "finishing the VM root failed (log: $log)"
  local kver
  kver=$(ls "$root/lib/modules")
  [ -f "$root/lib/modules/$kver/modules.alias" ] || die "no modules.alias for kernel $kver" "see $log"
  mkdir -p "$work/image"
  cp "$root/boot/vmlinuz-$kver" "$work/image/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$work/image/initrd.img"
  echo "$kver" > "$work/image/kernel-version"
  info "making the 3 GiB root file system"
  mke2fs -q -t ext4 -L meshroot -d "$root" "$work/image/root.img" 3G >>"$log" 2>&1 \
    || die "mke2fs failed (log: $log)"
  rm -rf "$root"
  echo "$work"
}

smoke_test() {
  # The image must boot with the radios present and nothing failed but Debian's
  # D-Bus wpa_supplicant.service (there is no D-Bus here): the state the role must fix.
  local work=$1 state="$1/smoke" rc=0 want
  info "booting the VM once to check it"
  "$here/run-vm.sh" start "$work/image" "$state" >/dev/null || rc=$?
  [ $rc -ne 0 ] || "$here/run-vm.sh" wait "$state" >&2 || rc=$?
  if [ $rc -eq 0 ]; then
    # shellcheck disable=SC2016  # the command runs in the guest's shell, which expands it
    "$here/run-vm.sh" ssh "$state" 'systemctl is-system-running --wait >/dev/null;
      systemctl --failed --plain --no-legend | cut -d" " -f1;
      for p in /sys/class/ieee80211/*; do iw phy "${p##*/}" info | grep -q "\* mesh point" && echo mesh; done' \
      >"$state/answer" 2>&1 || rc=$?
  fi
  "$here/run-vm.sh" stop "$state" >/dev/null 2>&1 || true
  want=$(printf 'wpa_supplicant.service'; for _ in $(seq 1 "$RADIOS"); do printf '\nmesh'; done)
  if [ $rc -ne 0 ] || [ "$(cat "$state/answer" 2>/dev/null)" != "$want" ]; then
    sed 's/^/    /' "$state/answer" 2>/dev/null || true
    tail -30 "$state/console.log" 2>/dev/null | sed 's/^/    /' || true
    die "the test VM did not boot as expected (want: failed wpa_supplicant.service only, $RADIOS mesh radios)" \
        "see the output above; fix the recipe in $0"
  fi
  rm -rf "$state"
}

# The image depends on the recipe only (packages, radios, the guest set-up, the build
# steps), not on this script's messages or its boot check.
recipe_hash=$( { echo "$SUITE ${PACKAGES[*]} $RADIOS"; declare -f guest_finish build; } | sha256sum | cut -c1-12)
out="$cache/$SUITE-$recipe_hash"
ensure_host_tools
if [ -f "$out/root.img" ]; then
  info "test VM image $out is up to date"
  echo "$out"
  exit 0
fi
start=$(date +%s)
work=$(build)
smoke_test "$work"
mkdir -p "$cache"
# Older recipes' images are 3 GiB (sparse) each: keep only this one.
find "$cache" -mindepth 1 -maxdepth 1 -name "$SUITE-*" -exec rm -rf {} +
mv "$work/image" "$out"
rm -rf "$work"
info "built the test VM image $out in $(( $(date +%s) - start )) s"
echo "$out"
