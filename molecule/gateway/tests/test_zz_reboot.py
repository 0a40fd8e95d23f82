"""Persistence: after a reboot of the gateway, forwarding, the firewall table and the
pool on the TUN are back without Ansible (testinfra; runs last, it restarts gw-gw1)."""

import subprocess

from gwtest import GATEWAY, INET, POOL, POOL6, TUN, ipv4, ipv6_global
from meshtest import other, wait_for

testinfra_hosts = [GATEWAY]
# What the test harness (molecule/resources/create.yml) and prepare.yml set up and a
# container restart undoes: the interface names, and the uplink's routes (on a real
# gateway, DHCP and router advertisements give those back).
RESTORE = """
for pair in {mesh}:mesh {uplink}:uplink; do
  ip=${{pair%%:*}}; name=${{pair##*:}}
  dev=$(ip -o -4 addr show | awk -v ip="$ip" '$4 ~ "^" ip "/" {{print $2}}')
  if [ "$dev" != "$name" ]; then
    ip link set dev "$dev" down; ip link set dev "$dev" name "$name"; ip link set dev "$name" up
  fi
done
ip route replace default via {inet} dev uplink
ip -6 address replace 2001:db8:ffff::1/64 dev uplink nodad
ip -6 route replace default via 2001:db8:ffff::2 dev uplink
"""


def test_everything_back_after_reboot(host, request):
    restore = RESTORE.format(mesh=host.interface("mesh").addresses[0],
                             uplink=host.interface("uplink").addresses[0],
                             inet=other(request, INET).interface("uplink").addresses[0])
    subprocess.run(["docker", "restart", GATEWAY], check=True, capture_output=True)
    try:
        assert wait_for(lambda: host.run("systemctl is-system-running --wait").stdout.strip()
                        in ("running", "degraded"), 90, 1)
        # Docker starts the container with forwarding off (see create.yml): sysctl.d wins.
        assert host.sysctl("net.ipv4.ip_forward") == 1
        assert host.sysctl("net.ipv6.conf.all.forwarding") == 1
        assert "masquerade" in host.check_output("nft list table inet meshfleet")
        assert wait_for(lambda: str(POOL[1]) in ipv4(host, TUN)
                        and str(POOL6[1]) in ipv6_global(host, TUN), 30, 0.5)
        assert "dev %s" % TUN in host.check_output("ip -4 route get %s" % POOL[99])
        assert host.service("meshfleet-gateway").is_running
    finally:
        with host.sudo():
            host.check_output("bash -c %s" % _quote(restore))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
