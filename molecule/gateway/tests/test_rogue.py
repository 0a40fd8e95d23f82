"""A mesh node that is peered with the gateway but pinned by it gets nothing from it
(testinfra, on gw-rogue, which asks the gateway for a tunnel on its own)."""

import pytest
from gwtest import GATEWAY, INET, POOL, PORT, TUN, allocations, fetch, ipv4
from meshtest import REAL_REASON, cjdns_conf, other, real_daemon, registry

testinfra_hosts = ["gw-rogue"]
REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)


def test_rogue_asks_the_gateway_but_is_not_allocated(host):
    tunnel = cjdns_conf(host)["router"]["ipTunnel"]
    assert tunnel["outgoingConnections"] == [registry()[GATEWAY]["public_key"]]
    assert "gw-rogue" not in allocations()["ipv4"]["clients"]


def test_gateway_forwards_nothing_else(host, request):
    """Forwarding is on, but the forward policy drops everything except the pool's way to
    the uplink: a mesh host that routes another mesh host's address via the gateway gets
    nothing through. (Docker's isolation rules on the test host drop any packet with an
    address outside a network's subnet, so the target is a host of the mesh network.)"""
    gateway = other(request, GATEWAY)
    assert gateway.sysctl("net.ipv4.ip_forward") == 1
    target = other(request, "gw-client1").interface("mesh").addresses[0]
    via = gateway.interface("mesh").addresses[0]
    assert host.run("ping -c 1 -W 2 %s" % target).rc == 0, "no direct path to the target"
    with host.sudo():
        host.check_output("ip route replace %s/32 via %s dev mesh" % (target, via))
        try:
            assert "via %s" % via in host.check_output("ip -4 route get %s" % target)
            out = host.run("ping -c 2 -W 2 %s" % target)
        finally:
            host.run("ip route del %s/32" % target)
    assert out.rc != 0, "the gateway forwarded mesh LAN traffic: %s" % out.stdout


@REAL
def test_rogue_gets_no_address_and_no_way_out(host, request):
    """cjdns on the gateway refuses the tunnel: no address; even with an address of the
    pool set by hand and a route into the TUN, nothing reaches the Internet host."""
    gateway = other(request, GATEWAY)
    # The gateway is up and the clients got their addresses by now (test_clients ran).
    assert str(POOL[1]) in ipv4(gateway, TUN)
    assert ipv4(host, TUN) == []
    inet = other(request, INET).interface("uplink").addresses[0]
    stolen = str(POOL[250])
    with host.sudo():
        host.check_output("ip addr add %s/32 dev %s" % (stolen, TUN))
        host.check_output("ip route replace %s/32 dev %s src %s" % (inet, TUN, stolen))
        try:
            rc, body = fetch(host, "http://%s:%d/" % (inet, PORT), timeout=6)
        finally:
            host.run("ip route del %s/32; ip addr del %s/32 dev %s" % (inet, stolen, TUN))
    assert rc != 0, "an unpinned node reached the Internet host through the gateway: %s" % body
