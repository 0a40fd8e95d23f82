"""What the clients rely on: they pin the gateway, get their address, and reach the
Internet host through it (testinfra, on the clients)."""

import re

import pytest
from gwtest import (
    CLIENTS,
    GATEWAY,
    INET,
    INET6,
    PORT,
    TUN,
    allocations,
    fetch,
    fetch_until_answered,
)
from meshtest import REAL_REASON, cjdns_conf, hostname, other, real_daemon, registry, wait_for

testinfra_hosts = CLIENTS
REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)


@pytest.fixture
def allocated(host):
    """This client's (IPv4, IPv6) from the gateway's allocation; skip if it is no client."""
    name, alloc = hostname(host), allocations()
    if name not in alloc["ipv4"]["clients"]:
        pytest.skip("%s is not a client of %s (yet: side_effect adds gw-client3)" % (name, GATEWAY))
    return alloc["ipv4"]["clients"][name], alloc["ipv6"]["clients"][name]


def test_client_pins_its_gateway(host, allocated):
    tunnel = cjdns_conf(host)["router"]["ipTunnel"]
    assert tunnel["outgoingConnections"] == [registry()[GATEWAY]["public_key"]]
    assert tunnel["allowedConnections"] == []


@REAL
def test_tun_gets_the_allocated_addresses(host, allocated):
    v4, v6 = allocated

    def has():
        out = host.check_output("ip -o addr show dev %s" % TUN)
        return " %s/32 " % v4 in out and " %s/128 " % v6 in out

    assert wait_for(has, 90, 1), host.check_output("ip addr show dev %s" % TUN)
    # cjdns routes everything through the tunnel (ip4Prefix 0: two /1 routes).
    routes = host.check_output("ip -4 route show dev %s" % TUN)
    assert "0.0.0.0/1" in routes and "128.0.0.0/1" in routes


@REAL
def test_reaches_the_internet_through_the_gateway_nat(host, allocated, request):
    """gw-inet answers with the source it sees: the gateway's uplink address."""
    inet = other(request, INET).interface("uplink").addresses[0]
    uplink = other(request, GATEWAY).interface("uplink").addresses[0]
    # gw-client3 (added in side_effect) restarted its own cjdroute and may still be
    # waiting for its address; the gateway's was not restarted (test_add_client_live.py).
    rc, body, waited = fetch_until_answered(host, "http://%s:%d/" % (inet, PORT), 150)
    assert rc == 0, "no answer from the Internet host through the gateway in %s s" % waited
    print("%s: first answer through the gateway after %s s" % (hostname(host), waited))
    assert body == uplink
    # The way out is the tunnel, not the mesh LAN.
    assert "dev %s" % TUN in host.check_output("ip -4 route get %s" % inet)


@REAL
def test_reaches_the_internet_over_routed_ipv6(host, allocated):
    """IPv6 is routed, not translated: the Internet host sees the client's own address."""
    rc, body, waited = fetch_until_answered(host, "http://[%s]:%d/" % (INET6, PORT), 150)
    assert (rc, body) == (0, allocated[1]), "no answer in %s s" % waited


@REAL
def test_mss_clamped_towards_the_client(host, allocated, request):
    """gw-inet (MTU 1500) offers MSS 1460; through the gateway the SYN-ACK that reaches the
    client over the TUN carries at most what the TUN carries (1304 - 40)."""
    inet = other(request, INET).interface("uplink").addresses[0]
    with host.sudo():
        host.run("rm -f /tmp/synack; (timeout 15 tcpdump -lnv -i %s -c 1 "
                 "'tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)' >/tmp/synack 2>&1 &)"
                 % TUN)
        assert wait_for(lambda: "listening" in host.run("cat /tmp/synack").stdout, 10, 0.2)
        assert fetch(host, "http://%s:%d/" % (inet, PORT))[0] == 0
        assert wait_for(lambda: "1 packet captured" in host.run("cat /tmp/synack").stdout, 10, 0.2)
        mss = re.search(r"mss (\d+)", host.check_output("cat /tmp/synack"))
    assert mss and int(mss.group(1)) <= 1264, host.check_output("cat /tmp/synack")
