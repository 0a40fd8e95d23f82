# Runs inside the new root file system (chroot or Dockerfile RUN): make it a quiet
# systemd container for tests.  Test harness only, nothing here reaches a real node.
set -e
# Units that make no sense in a container, or that fail there and leave systemd degraded.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
            systemd-remount-fs.service systemd-firstboot.service systemd-modules-load.service \
            sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
            systemd-journald-audit.socket apt-daily.timer apt-daily-upgrade.timer \
            e2scrub_all.timer fstrim.timer wpa_supplicant.service systemd-networkd-wait-online.service; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
# Installed but not started: the monitoring role configures and enables them where the
# inventory asks (a Prometheus server in every container would only eat the CPU).
for unit in prometheus.service prometheus-node-exporter.service; do
  rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
done
# /proc/sys is read-only in a container; roles must be able to set net.* sysctls.
cat > /etc/systemd/system/meshfleet-test-procsys-rw.service <<'UNIT'
[Unit]
Description=Test harness: make /proc/sys writable inside this container
DefaultDependencies=no
Before=systemd-sysctl.service sysinit.target
ConditionVirtualization=container

[Service]
Type=oneshot
ExecStart=/bin/mount -o remount,rw /proc/sys

[Install]
WantedBy=sysinit.target
UNIT
mkdir -p /etc/systemd/system/sysinit.target.wants
ln -sf ../meshfleet-test-procsys-rw.service /etc/systemd/system/sysinit.target.wants/
# Under qemu-user (the arm64 and armhf images) systemd cannot set up unit credentials
# ("Failed at step CREDENTIALS": the mount it needs is not emulated), so the units that
# ask for optional ones fail at boot. Those credentials are never given in tests.
case "$(dpkg --print-architecture)" in
  amd64) ;;
  *)
    for unit in systemd-sysctl systemd-sysusers systemd-tmpfiles-setup systemd-tmpfiles-setup-dev; do
      mkdir -p "/etc/systemd/system/$unit.service.d"
      printf '[Service]\nImportCredential=\nLoadCredential=\n' > "/etc/systemd/system/$unit.service.d/qemu-user.conf"
    done
    ;;
esac
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
echo meshfleet-test > /etc/hostname
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
