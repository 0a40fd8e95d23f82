"""What an operator relies on from the gateway (testinfra, on gw-gw1)."""

import ipaddress
import json

from gwtest import (
    CLIENTS,
    GATEWAY,
    POOL,
    POOL6,
    ROGUE,
    TUN,
    UNIT,
    allocations,
    ipv4,
    ipv6_global,
)
from meshtest import cjdns_conf, registry, wait_for

testinfra_hosts = [GATEWAY]


def test_allocation_file_lists_the_pinning_clients_only():
    alloc = allocations()
    for family, pool in (("ipv4", POOL), ("ipv6", POOL6)):
        clients = alloc[family]["clients"]
        # gw-client3 joins in side_effect; the unpinned node never does.
        assert {"gw-client1", "gw-client2"} <= set(clients) <= set(CLIENTS)
        assert ROGUE not in clients and GATEWAY not in clients
        addresses = [ipaddress.ip_address(a) for a in clients.values()]
        own = ipaddress.ip_address(alloc[family]["address"])
        assert own == pool[1]
        assert len(set(addresses)) == len(addresses)
        assert all(a in pool and a not in (pool.network_address, pool.broadcast_address, own)
                   for a in addresses)


def test_allowed_connections_match_registry_and_allocation(host):
    alloc, keys = allocations(), registry()
    clients = sorted(alloc["ipv4"]["clients"])
    expected = [
        {
            "publicKey": keys[c]["public_key"],
            "ip4Address": alloc["ipv4"]["clients"][c], "ip4Prefix": 0, "ip4Alloc": 32,
            "ip6Address": alloc["ipv6"]["clients"][c], "ip6Prefix": 0, "ip6Alloc": 128,
        }
        for c in clients
    ]
    tunnel = cjdns_conf(host)["router"]["ipTunnel"]
    assert tunnel["allowedConnections"] == expected
    assert keys[ROGUE]["public_key"] not in json.dumps(tunnel)


def test_forwarding_sysctls(host):
    """The containers start with forwarding off: this is the role's doing."""
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.ipv6.conf.all.forwarding") == 1
    assert host.sysctl("net.ipv6.conf.uplink.accept_ra") == 2
    conf = host.file("/etc/sysctl.d/90-meshfleet-gateway.conf")
    assert conf.user == "root" and conf.mode == 0o644
    assert conf.contains("^net.ipv4.ip_forward = 1$")


def test_nftables_table_chains_and_rules(host):
    out = host.check_output("nft list table inet meshfleet")
    rules = [line.strip() for line in out.splitlines()]
    out_if, back_if = 'iifname "cjdns0" oifname "uplink"', 'iifname "uplink" oifname "cjdns0"'
    for chain, hook in (("forward", "filter hook forward priority filter; policy drop;"),
                        ("forward_mangle", "filter hook forward priority mangle; policy accept;"),
                        ("postrouting", "nat hook postrouting priority srcnat; policy accept;")):
        assert "chain %s {" % chain in rules
        assert "type " + hook in rules
    expected = [
        'oifname "uplink" ip saddr 10.99.0.0/24 masquerade comment "gateway"',
        out_if + ' ip saddr 10.99.0.0/24 ct state established,related,new accept comment "gateway"',
        back_if + ' ip daddr 10.99.0.0/24 ct state established,related accept comment "gateway"',
        out_if + ' ip6 saddr 2001:db8:99::/64 ct state established,related,new accept'
        ' comment "gateway"',
        back_if + ' ip6 daddr 2001:db8:99::/64 ct state established,related accept'
        ' comment "gateway"',
        back_if + ' ip daddr 10.99.0.0/24 tcp flags syn tcp option maxseg size set rt mtu'
        ' comment "gateway"',
        out_if + ' ip saddr 10.99.0.0/24 tcp flags syn tcp option maxseg size > 1264'
        ' tcp option maxseg size set 1264 comment "gateway"',
    ]
    for rule in expected:
        assert rule in rules, "missing rule %r in:\n%s" % (rule, out)
    # IPv6 is routed, never translated; nothing but the pool is masqueraded.
    assert sum("masquerade" in r for r in rules) == 1
    assert host.service("meshfleet-firewall").is_enabled


def _pool_on_tun(host):
    addrs = ipv4(host, TUN) if host.run("ip link show dev %s" % TUN).rc == 0 else []
    if str(POOL[1]) not in addrs or str(POOL6[1]) not in ipv6_global(host, TUN):
        return False
    route = host.run("ip -4 route get %s" % POOL[57])
    route6 = host.run("ip -6 route get %s" % POOL6[57])
    return ("dev %s src %s" % (TUN, POOL[1]) in route.stdout
            and "dev %s" % TUN in route6.stdout)


def test_pool_address_and_route_on_the_tun(host):
    assert _pool_on_tun(host), host.check_output("ip addr show dev %s; ip route" % TUN)
    unit = host.service("meshfleet-gateway")
    assert unit.is_enabled and unit.is_running
    # Started with cjdns, not on its own at boot.
    assert host.file("/etc/systemd/system/cjdns.service.wants/%s" % UNIT).is_symlink


def test_pool_comes_back_when_cjdns_restarts(host):
    """The TUN and everything on it vanish when cjdroute stops; the unit must follow it."""
    with host.sudo():
        host.check_output("systemctl restart cjdns.service")
    assert wait_for(lambda: _pool_on_tun(host), 20, 0.5), "pool not back after a restart"


def test_pool_comes_back_after_cjdroute_dies(host):
    """A crash: systemd restarts cjdns (RestartSec=5) and the unit with it."""
    before = host.check_output("systemctl show -P MainPID cjdns.service")
    with host.sudo():
        host.check_output("kill -9 %s" % before)
    assert wait_for(lambda: host.check_output("systemctl show -P MainPID cjdns.service")
                    not in ("0", before), 20, 0.5), "cjdns was not restarted"
    assert wait_for(lambda: _pool_on_tun(host), 20, 0.5), "pool not back after a crash"
