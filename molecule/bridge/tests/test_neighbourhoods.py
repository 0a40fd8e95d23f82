"""What the neighbourhood nodes rely on: the other neighbourhood is reachable over cjdns
through the bridge link, and nothing of the bridge lands on them (testinfra)."""

import re

import pytest
from bridge import NEIGHBOUR, UNIT, fleet_prefix, record
from meshtest import REAL_REASON, hostname, other, real_daemon, registry, wait_for

testinfra_hosts = sorted(node for node, _unused in NEIGHBOUR.values())
REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
ACROSS = {"bridge-a-node": "bridge-b-node", "bridge-b-node": "bridge-a-node"}


def test_no_bridge_pieces_on_neighbourhood_nodes(host):
    assert host.check_output("ip -6 -o addr show to %s" % fleet_prefix()) == ""
    assert not host.file("/etc/systemd/system/%s" % UNIT).exists
    conf = host.file("/etc/cjdns/cjdroute.conf")
    with host.sudo():
        assert "[fd" not in conf.content_string


def test_no_ip_path_between_the_neighbourhoods(host, request):
    """Without cjdns the neighbourhoods cannot reach each other (separate networks, no
    link interface here), so a reply over cjdns can only come through the bridge link."""
    far = other(request, ACROSS[hostname(host)])
    far_v4 = far.check_output("ip -4 -o addr show scope global").split()[3].split("/")[0]
    assert host.run("ip link show dev link").rc != 0
    assert host.run("ping -c 1 -W 1 %s" % far_v4).rc != 0


@REAL
def test_reaches_the_other_neighbourhood_over_cjdns(host):
    far = ACROSS[hostname(host)]
    target = registry()[far]["ipv6"]
    ok = wait_for(lambda: host.run("ping -6 -c 1 -W 2 %s" % target).rc == 0, 120, 2)
    assert ok, "no ping reply from %s (%s) across the bridge link" % (far, target)
    out = host.check_output("ping -6 -c 10 -i 0.2 -W 2 %s" % target)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    loss = re.search(r"(\d+)% packet loss", out)
    assert rtt and loss
    record("rtt", "%s -> %s (%s): loss %s%%, rtt min/avg/max/mdev %s/%s/%s/%s ms"
           % (hostname(host), far, target, loss.group(1), *rtt.groups()))
    assert int(loss.group(1)) <= 20
