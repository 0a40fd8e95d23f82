"""What an operator relies on at the two ends of a bridge link (testinfra)."""

import ipaddress
import time

import pytest
from bridge import (
    ENDS,
    FAR,
    LINK,
    NEIGHBOUR,
    PORT,
    UNIT,
    fleet_prefix,
    global_v6,
    nft_counter,
    peer_stats,
)
from meshtest import REAL_REASON, cjdns_conf, hostname, other, real_daemon, registry, wait_for

testinfra_hosts = sorted(ENDS)
REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)


def test_plan_is_inside_the_fleet_prefix():
    """The link's /64 lies in the /48 derived from bridge_fleet_id (computed here without
    the collection), the ends are ::1 and ::2, in inventory hostname order."""
    net64 = ipaddress.IPv6Network(LINK["prefix"])
    assert net64.prefixlen == 64 and net64.subnet_of(fleet_prefix())
    first, second = sorted(ENDS)
    assert ENDS[first]["address"] == str(net64[1])
    assert ENDS[second]["address"] == str(net64[2])


def test_link_address_on_the_link_interface(host):
    me = ENDS[hostname(host)]
    assert "%s/64" % me["address"] in global_v6(host, me["interface"])
    # The only address of the fleet's link prefix on this host is its own.
    out = host.check_output("ip -6 -o addr show to %s" % fleet_prefix())
    assert [line.split()[1] for line in out.splitlines()] == [me["interface"]]


def test_address_unit_enabled_before_cjdns(host):
    service = host.service(UNIT)
    assert service.is_enabled
    assert host.check_output("systemctl show -P Result %s" % UNIT) == "success"
    assert "cjdns.service" in host.check_output("systemctl show -P Before %s" % UNIT).split()


def test_address_comes_back_when_lost(host):
    """Boot equivalent: with the address gone, the enabled unit puts it back; and setting
    the interface down and up no longer loses it."""
    me = ENDS[hostname(host)]
    address = "%s/64" % me["address"]
    host.check_output("ip -6 addr del %s dev %s" % (address, me["interface"]))
    assert address not in global_v6(host, me["interface"])
    host.check_output("systemctl restart %s" % UNIT)
    assert address in global_v6(host, me["interface"])
    host.check_output("ip link set dev {0} down && ip link set dev {0} up".format(me["interface"]))
    assert address in global_v6(host, me["interface"])


def test_stale_link_address_is_removed(host):
    """An address the script applied earlier and that is no longer declared (a renamed
    link, a new prefix) is removed; the declared one stays."""
    me = ENDS[hostname(host)]
    stale = "%s/64" % ipaddress.IPv6Network(LINK["prefix"]).supernet(new_prefix=60)[0x7F1]
    if stale == "%s/64" % me["address"]:  # pragma: no cover - different /64 by construction
        pytest.fail("picked the live address")
    state = "/run/meshfleet/link-addresses"
    host.check_output("ip -6 addr add %s dev %s nodad" % (stale, me["interface"]))
    host.check_output("echo '%s %s' >> %s" % (me["interface"], stale, state))
    host.check_output("/usr/local/sbin/meshfleet-link-addr")
    addresses = global_v6(host, me["interface"])
    assert stale not in addresses and "%s/64" % me["address"] in addresses
    assert stale not in host.file(state).content_string


def test_networkd_keeps_its_config_and_the_link_address(host):
    """bridge-b-end's `link` is configured by the operator's own .network file: the role
    adds a drop-in instead of taking the interface over, so after systemd-networkd
    reconfigures the interface (which drops addresses it does not know) both the
    operator's IPv4 address and the link address are there."""
    if hostname(host) != "bridge-b-end":
        pytest.skip("systemd-networkd manages `link` on bridge-b-end only")
    me = ENDS["bridge-b-end"]
    network = host.file("/etc/systemd/network/50-link.network").content_string
    operator_v4 = network.split("Address=")[1].split()[0]
    dropin = host.file("/etc/systemd/network/50-link.network.d/60-meshfleet-bridge.conf")
    assert "Address=%s/64" % me["address"] in dropin.content_string
    assert "meshfleet" not in network  # the operator's file is untouched
    host.check_output("networkctl reconfigure link")
    time.sleep(3)
    assert "Network File: /etc/systemd/network/50-link.network" in host.check_output(
        "networkctl status --no-pager --lines=0 link")
    assert operator_v4 in host.check_output("ip -4 -o addr show dev link")
    assert "%s/64" % me["address"] in global_v6(host, "link")


def test_unit_backend_on_the_end_without_network_manager(host):
    if hostname(host) != "bridge-a-end":
        pytest.skip("no network manager manages `link` on bridge-a-end")
    assert not host.file("/etc/systemd/network").listdir()
    assert not host.file("/etc/NetworkManager").exists


def test_cjdns_binds_the_link_address_and_connects_the_far_end(host):
    me, far = hostname(host), FAR[hostname(host)]
    conf = cjdns_conf(host)
    udp = {i["bind"]: i for i in conf["interfaces"]["UDPInterface"]}
    link_if = udp["[%s]:%d" % (ENDS[me]["address"], PORT)]
    assert link_if["beacon"] == 0
    (endpoint, creds), = link_if["connectTo"].items()
    assert endpoint == "[%s]:%d" % (ENDS[far]["address"], PORT)
    assert creds["publicKey"] == registry()[far]["public_key"]
    assert creds["login"] == me and creds["peerName"] == far
    assert "ETHInterface" not in conf["interfaces"]
    assert all(i["beacon"] == 0 for i in conf["interfaces"]["UDPInterface"])


def test_both_ends_hold_the_same_password(host, request):
    """What this end sends when it connects is what the far end accepts from it (login
    = this end), and the other way round; one password per pair, derived on both ends."""
    me, far = hostname(host), FAR[hostname(host)]
    mine, theirs = cjdns_conf(host), cjdns_conf(other(request, far))
    link_if = next(i for i in mine["interfaces"]["UDPInterface"]
                   if i["bind"] == "[%s]:%d" % (ENDS[me]["address"], PORT))
    (sent,) = [c["password"] for c in link_if["connectTo"].values()]
    accepted = {a["user"]: a["password"] for a in theirs["authorizedPasswords"]}
    mine_accepts = {a["user"]: a["password"] for a in mine["authorizedPasswords"]}
    assert accepted[me] == sent == mine_accepts[far]
    # Different from every other pair's password on this node.
    assert list(mine_accepts.values()).count(sent) == 1


def test_firewall_opens_only_cjdns_on_the_link(host, request):
    """From the far end over the link: cjdns UDP is accepted, a TCP service is not; the
    same service is reachable from the neighbourhood, so only the link is closed."""
    far_name = FAR[hostname(host)]
    far = other(request, far_name)
    far_link = ENDS[far_name]["address"]
    neighbour_name, hood = NEIGHBOUR[far_name]
    neighbour = other(request, neighbour_name)
    far_hood_v4 = far.check_output("ip -4 -o addr show dev %s" % hood).split()[3].split("/")[0]
    rules = far.check_output("nft list table inet meshfleet")
    assert 'iifname "link" udp dport %d' % PORT in rules
    assert 'iifname "link" counter' in rules and "drop" in rules
    # nothing of the bridge on the neighbourhood interface
    assert 'iifname "%s"' % hood not in rules

    far.check_output("setsid timeout 60 nc -lk 5555 </dev/null >/dev/null 2>&1 &")
    time.sleep(1)
    try:
        assert wait_for(lambda: neighbour.run("nc -z -w 3 %s 5555" % far_hood_v4).rc == 0, 10), \
            "the test service on %s is not reachable from its neighbourhood" % far_name
        dropped = nft_counter(far, 'iifname "link" counter')
        assert host.run("nc -6 -z -w 3 %s 5555" % far_link).rc != 0
        assert nft_counter(far, 'iifname "link" counter') > dropped
    finally:
        far.run("pkill -f 'nc -lk 5555'")

    accepted = nft_counter(far, 'iifname "link" udp dport')
    host.check_output("echo probe | nc -6 -u -w 1 %s %d || true" % (far_link, PORT))
    assert wait_for(lambda: nft_counter(far, 'iifname "link" udp dport') > accepted, 5)


@REAL
def test_bridge_ends_peer_over_the_link(host):
    """The far end is an ESTABLISHED peer in cjdroute's admin API, with the key from the
    registry, reached at its link address (not over some other network)."""
    far = FAR[hostname(host)]
    key = registry()[far]["public_key"]
    lladdr = "[%s]:%d" % (ENDS[far]["address"], PORT)

    def established():
        return [p for p in peer_stats(host) if p.get("addr", "").endswith("." + key)
                and p.get("lladdr") == lladdr and p.get("state") == "ESTABLISHED"]

    peers = wait_for(established, 60, 2)
    assert peers, "no ESTABLISHED peer %s at %s: %s" % (far, lladdr, peer_stats(host))


@REAL
def test_far_end_answers_over_cjdns(host):
    far = FAR[hostname(host)]
    target = registry()[far]["ipv6"]
    ok = wait_for(lambda: host.run("ping -6 -c 1 -W 2 %s" % target).rc == 0, 60)
    assert ok, "no ping reply from %s (%s) over cjdns" % (far, target)
