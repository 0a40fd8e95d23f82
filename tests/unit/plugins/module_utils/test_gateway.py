"""Tests for plugins/module_utils/gateway.py: pool checks, stable allocation with a state
file, registry handling, and the shared state-file helpers it uses."""

from __future__ import annotations

import ipaddress
import os
import threading

import pytest
import yaml
from ansible_collections.meshfleet.mesh.plugins.module_utils import gateway, statefile
from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import allocate_addresses
from hypothesis import given, settings
from hypothesis import strategies as st
from keyvectors import VECTORS

POOL4 = {"pool": "10.99.0.0/24", "address": "", "pinned": {}, "reserved": []}


def registry_for(*names):
    return {n: {"public_key": VECTORS[i]["public_key"], "ipv6": VECTORS[i]["ipv6"]}
            for i, n in enumerate(names)}


def run(path, clients, pools=None, **kwargs):
    return gateway.plan(str(path), "gw1", clients, pools or {"ipv4": POOL4}, **kwargs)


# ---------------------------------------------------------------- pool checks


@pytest.mark.parametrize("value, fragment", [
    ("10.99.0.0", "not a CIDR"),
    ("10.99.0.1/24", "host bits are set; did you mean 10.99.0.0/24"),
    ("10.999.0.0/24", "not a valid CIDR"),
    ("2001:db8::/64", "an IPv4 pool is needed"),
    ("127.0.0.0/24", "loopback"),
    ("169.254.0.0/16", "link-local"),
    (24, "not a CIDR"),
])
def test_bad_ipv4_pool_names_variable_and_host(value, fragment):
    with pytest.raises(gateway.GatewayError) as err:
        gateway.parse_pool(value, "gateway_pool", 4, "gw1")
    assert "gateway_pool of gw1" in str(err.value) and fragment in str(err.value)


def test_unset_pool_is_none_and_ipv4_is_required(tmp_path):
    assert gateway.parse_pool("", "gateway_pool6", 6, "gw1") is None
    with pytest.raises(gateway.GatewayError, match="gateway_pool of gw1 is empty"):
        run(tmp_path / "a.yml", ["c1"], {"ipv4": {"pool": ""}})


def test_overlapping_gateway_pools_name_both():
    pools = {"ipv4": ipaddress.ip_network("10.99.0.0/24"), "ipv6": None}
    gateways = {"gw1": {"gateway_pool": "10.99.0.0/24"},
                "gw2": {"gateway_pool": "10.99.0.128/25"},
                "gw3": {"gateway_pool": "10.98.0.0/24"}}
    with pytest.raises(gateway.GatewayError) as err:
        gateway.check_pools("gw1", pools, gateways)
    assert "gateway_pool of gw1 (10.99.0.0/24) overlaps gateway_pool of gateway gw2" in str(
        err.value)
    # Its own entry and a disjoint pool are fine.
    gateway.check_pools("gw1", pools, {"gw1": gateways["gw1"], "gw3": gateways["gw3"]})


def test_overlapping_ipv6_pools():
    pools = {"ipv4": ipaddress.ip_network("10.99.0.0/24"),
             "ipv6": ipaddress.ip_network("2001:db8:99::/64")}
    with pytest.raises(gateway.GatewayError, match="gateway_pool6 of gw1 .* gateway gw2"):
        gateway.check_pools("gw1", pools, {"gw2": {"gateway_pool": "10.98.0.0/24",
                                                   "gateway_pool6": "2001:db8:99::/48"}})


def test_pool_overlapping_uplink_or_other_interface():
    pools = {"ipv4": ipaddress.ip_network("172.24.0.0/24"), "ipv6": None}
    uplink = [{"interface": "eth0", "network": "172.24.0.0/255.255.0.0", "uplink": True}]
    with pytest.raises(gateway.GatewayError,
                       match=r"overlaps 172.24.0.0/16, the network of uplink interface eth0"):
        gateway.check_pools("gw1", pools, local_networks=uplink)
    lan = [{"interface": "wlan0", "network": "172.24.0.9/24", "uplink": False}]
    with pytest.raises(gateway.GatewayError, match="the network of interface wlan0"):
        gateway.check_pools("gw1", pools, local_networks=lan)
    gateway.check_pools("gw1", {"ipv4": ipaddress.ip_network("10.99.0.0/24"), "ipv6": None},
                        local_networks=uplink + lan)


def test_ipv6_pool_in_mesh_range():
    pools = {"ipv4": ipaddress.ip_network("10.99.0.0/24"),
             "ipv6": ipaddress.ip_network("fc12::/64")}
    mesh = [{"network": "fc00::/8", "what": "cjdns node addresses"}]
    with pytest.raises(gateway.GatewayError, match=r"gateway_pool6 .* fc00::/8 \(cjdns node"):
        gateway.check_pools("gw1", pools, mesh_ranges=mesh)


def test_gateway_address_must_be_a_host_of_the_pool(tmp_path):
    for address, fragment in (("10.98.0.1", "not inside gateway_pool"),
                              ("10.99.0.255", "network or broadcast"),
                              ("nope", "not an IP address")):
        pools = {"ipv4": dict(POOL4, address=address)}
        with pytest.raises(gateway.GatewayError, match="gateway_address of gw1"):
            run(tmp_path / "a.yml", ["c1"], pools)
        with pytest.raises(gateway.GatewayError, match=fragment):
            run(tmp_path / "a.yml", ["c1"], pools)
    assert not (tmp_path / "a.yml").exists()


# ------------------------------------------------------------ allocation + state


def test_first_run_writes_state_and_matches_filter(tmp_path):
    path = tmp_path / "alloc.yml"
    changed, result = run(path, ["c2", "c1", "gw1"])
    assert changed
    expected = allocate_addresses(["c1", "c2"], "10.99.0.0/24", gateway_address="10.99.0.1")
    assert result == {"ipv4": {"pool": "10.99.0.0/24", "address": "10.99.0.1",
                               "clients": expected}}
    assert gateway.load(path)["gw1"] == result
    assert path.read_text().startswith("# Client addresses")
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    # The same inputs again: nothing to write.
    mtime = path.stat().st_mtime_ns
    assert run(path, ["c1", "c2"]) == (False, result)
    assert path.stat().st_mtime_ns == mtime


def test_adding_and_removing_clients_moves_nobody(tmp_path):
    path = tmp_path / "alloc.yml"
    _unused, first = run(path, [f"c{i}" for i in range(40)])
    _unused, second = run(path, [f"c{i}" for i in range(40)] + ["new1", "new2"])
    kept = first["ipv4"]["clients"]
    assert all(second["ipv4"]["clients"][c] == a for c, a in kept.items())
    changed, third = run(path, [f"c{i}" for i in range(0, 40, 2)] + ["new2"])
    assert changed
    assert set(third["ipv4"]["clients"]) == {f"c{i}" for i in range(0, 40, 2)} | {"new2"}
    assert all(third["ipv4"]["clients"][c] == second["ipv4"]["clients"][c]
               for c in third["ipv4"]["clients"])
    # Removed clients lose their entry in the file.
    assert "c1" not in gateway.load(path)["gw1"]["ipv4"]["clients"]


@settings(max_examples=40, deadline=None)
@given(first=st.sets(st.sampled_from([f"n{i}" for i in range(30)]), max_size=25),
       second=st.sets(st.sampled_from([f"n{i}" for i in range(30)]), max_size=25))
def test_stability_property(tmp_path_factory, first, second):
    """Whatever the sequence of client sets, a client present in consecutive runs keeps
    its address (a /27 has 29 usable addresses, so collisions are frequent)."""
    path = tmp_path_factory.mktemp("p") / "alloc.yml"
    pools = {"ipv4": dict(POOL4, pool="10.99.0.0/27")}
    _unused, a = run(path, sorted(first), pools)
    _unused, b = run(path, sorted(second), pools)
    for client in first & second:
        assert a["ipv4"]["clients"][client] == b["ipv4"]["clients"][client]
    assert len(set(b["ipv4"]["clients"].values())) == len(second)


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "alloc.yml"
    changed, result = run(path, ["c1"], write=False)
    assert changed and result["ipv4"]["clients"]["c1"]
    assert not path.exists()


def test_pool_change_reallocates_outside_addresses(tmp_path):
    path = tmp_path / "alloc.yml"
    _unused, small = run(path, ["c1", "c2"])
    grown = {"ipv4": dict(POOL4, pool="10.99.0.0/16")}
    _unused, big = run(path, ["c1", "c2"], grown)
    assert big["ipv4"]["clients"] == small["ipv4"]["clients"]  # still valid: kept
    moved = {"ipv4": dict(POOL4, pool="10.77.0.0/24")}
    _unused, other = run(path, ["c1", "c2"], moved)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.77.0.0/24")
               for a in other["ipv4"]["clients"].values())


def test_pins_and_exhaustion_name_the_variables(tmp_path):
    path = tmp_path / "alloc.yml"
    pools = {"ipv4": dict(POOL4, pinned={"c1": "10.99.0.10", "c2": "10.99.0.10"})}
    with pytest.raises(gateway.GatewayError) as err:
        run(path, ["c1", "c2"], pools)
    assert "gateway_pool of gw1" in str(err.value)
    assert "pinned for both client 'c1' and client 'c2'" in str(err.value)
    tiny = {"ipv4": dict(POOL4, pool="10.99.0.0/30")}
    with pytest.raises(gateway.GatewayError,
                       match=r"pool 10.99.0.0/30 is too small: capacity 1 .* 3 clients"):
        run(path, ["c1", "c2", "c3"], tiny)
    assert not path.exists()


def test_ipv6_family_and_other_gateways_kept_or_pruned(tmp_path):
    path = tmp_path / "alloc.yml"
    pools = {"ipv4": POOL4, "ipv6": {"pool": "2001:db8:99::/64", "address": "",
                                     "pinned": {}, "reserved": []}}
    _unused, result = run(path, ["c1"], pools)
    assert result["ipv6"]["address"] == "2001:db8:99::1"
    assert ipaddress.ip_address(result["ipv6"]["clients"]["c1"]) in ipaddress.ip_network(
        "2001:db8:99::/64")
    gateway.plan(str(path), "gw2", ["c1"], {"ipv4": dict(POOL4, pool="10.98.0.0/24")})
    assert set(gateway.load(path)) == {"gw1", "gw2"}
    # gw2 left the inventory: gw1's next run drops its entry.
    changed, _unused = run(path, ["c1"], pools, gateways={"gw1": {}})
    assert changed and set(gateway.load(path)) == {"gw1"}


def test_bad_state_file(tmp_path):
    path = tmp_path / "alloc.yml"
    path.write_text("gateways: [unclosed\n")
    with pytest.raises(gateway.GatewayError, match="not valid YAML"):
        run(path, ["c1"])
    path.write_text("gateways: {gw1: [1, 2]}\n")
    with pytest.raises(gateway.GatewayError, match="malformed"):
        run(path, ["c1"])
    with pytest.raises(gateway.GatewayError) as info:
        gateway.load(str(tmp_path))  # a directory
    assert str(info.value) == "gateway allocations %s cannot be read: Is a directory" % tmp_path


def test_allocations_written_before_schema_version_still_load(tmp_path):
    path = tmp_path / "alloc.yml"
    run(path, ["c1"])
    text = path.read_text()
    assert text.startswith(gateway.HEADER + "schema_version: 1\ngateways:\n")
    legacy = text.replace("schema_version: 1\n", "")
    path.write_text(legacy)
    changed, _unused = run(path, ["c1"])
    assert changed is False and path.read_text() == legacy
    path.write_text(legacy.replace("gateways:", "schema_version: 2\ngateways:"))
    with pytest.raises(gateway.GatewayError, match="schema_version 2: it was written by a "
                                                   "newer meshfleet.mesh"):
        run(path, ["c1"])


# ------------------------------------------------------------------- registry


def test_unregistered_fails_or_is_skipped():
    registry = registry_for("c1")
    with pytest.raises(gateway.GatewayError, match="converge c2 first"):
        gateway.unregistered("gw1", ["c1", "c2"], registry)
    assert gateway.unregistered("gw1", ["c1", "c2", "c3"], registry, skip=True) == ["c2", "c3"]
    assert gateway.unregistered("gw1", ["c1", "gw1"], registry) == []


def test_allowed_connections_entries():
    registry = registry_for("c1", "c2")
    allocations = {"ipv4": {"c2": "10.99.0.7", "c1": "10.99.0.9", "c3": "10.99.0.3"},
                   "ipv6": {"c1": "2001:db8:99::9"}}
    entries = gateway.allowed_connections(allocations, registry)
    assert entries == [
        {"publicKey": VECTORS[0]["public_key"], "ip4Address": "10.99.0.9", "ip4Prefix": 0,
         "ip4Alloc": 32, "ip6Address": "2001:db8:99::9", "ip6Prefix": 0, "ip6Alloc": 128},
        {"publicKey": VECTORS[1]["public_key"], "ip4Address": "10.99.0.7", "ip4Prefix": 0,
         "ip4Alloc": 32},
    ]
    assert all(type(e["ip4Prefix"]) is int for e in entries)  # pylint: disable=unidiomatic-typecheck


# ----------------------------------------------------------------- state files


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "state.yml"
    statefile.atomic_write(str(path), "a: 1\n", mode=0o640)
    assert path.read_text() == "a: 1\n" and oct(path.stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(tmp_path)) == ["state.yml"]


def test_concurrent_gateways_do_not_lose_entries(tmp_path):
    """Forks of one run write the same file: the lock keeps every gateway's entry."""
    path = tmp_path / "alloc.yml"
    errors = []

    def one(i):
        try:
            gateway.plan(str(path), f"gw{i}", [f"c{i}"],
                         {"ipv4": dict(POOL4, pool=f"10.{i}.0.0/24")})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(yaml.safe_load(path.read_text())["gateways"]) == {f"gw{i}" for i in range(1, 13)}


# ------------------------------------------------------ inputs and the firewall part

GROUPS = {"gateways": ["gw1", "gw2", "gw-3"],
          "clients": ["c1", "c2", "c3", "c4", "c5", "c6", "gw1"]}
HOSTVARS = {"gw1": {"gateway_pool": "10.99.0.0/24", "gateway_pool6": "2001:db8:99::/64"},
            "gw2": {"gateway_pool": "10.98.0.0/24"}, "gw-3": {},
            "c1": {"client_gateways": ["gw1", "gw2"]},
            "c2": {"client_gateways": "gw2, gw1"},       # a comma-separated string
            "c3": {"client_gateways": "gw2"},
            "c4": {},                                   # names no gateway
            "c5": {"client_gateways": " gw1 "},
            "c6": {"client_gateways": "gw10"}}          # not a prefix match


def test_clients_of_are_the_clients_naming_the_gateway_in_group_order():
    assert gateway.clients_of("gw1", GROUPS, HOSTVARS) == ["c1", "c2", "c5"]
    assert gateway.clients_of("gw2", GROUPS, HOSTVARS) == ["c1", "c2", "c3"]
    assert gateway.clients_of("gw-3", GROUPS, HOSTVARS) == []
    assert gateway.clients_of("gw1", {}, {}) == []


def test_gateway_pools_of_every_gateway_empty_when_unset():
    assert gateway.gateway_pools(GROUPS, HOSTVARS) == {
        "gw1": {"gateway_pool": "10.99.0.0/24", "gateway_pool6": "2001:db8:99::/64"},
        "gw2": {"gateway_pool": "10.98.0.0/24", "gateway_pool6": ""},
        "gw-3": {"gateway_pool": "", "gateway_pool6": ""}}
    assert gateway.gateway_pools({}, {}) == {}


FACTS = {
    "interfaces": ["lo", "eth0", "cjdns0", "br-lan", "wg0"],
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
    "eth0": {"ipv4": {"address": "192.0.2.2", "netmask": "255.255.255.0"},
             "ipv4_secondaries": [{"address": "198.51.100.7", "netmask": "255.255.255.128"}],
             "ipv6": [{"address": "fe80::1", "prefix": "64", "scope": "link"},
                      {"address": "2001:db8:1::2", "prefix": "64", "scope": "global"}]},
    "cjdns0": {"ipv6": [{"address": "fc11::1", "prefix": "8", "scope": "global"}]},
    "br_lan": {"ipv4": {"address": "10.20.0.1", "netmask": "255.255.255.0"}},  # br-lan
}


def test_local_networks_from_facts_without_loopback_and_tun():
    assert gateway.local_networks(FACTS, "cjdns0", "eth0") == [
        {"interface": "eth0", "uplink": True, "network": "192.0.2.2/255.255.255.0"},
        {"interface": "eth0", "uplink": True, "network": "198.51.100.7/255.255.255.128"},
        {"interface": "eth0", "uplink": True, "network": "2001:db8:1::2/64"},
        {"interface": "br-lan", "uplink": False, "network": "10.20.0.1/255.255.255.0"}]
    assert gateway.local_networks({}, "cjdns0", "eth0") == []


def test_local_networks_feed_the_pool_check():
    pools = {"ipv4": ipaddress.ip_network("10.20.0.0/24"), "ipv6": None}
    with pytest.raises(gateway.GatewayError, match="the network of interface br-lan"):
        gateway.check_pools("gw1", pools,
                            local_networks=gateway.local_networks(FACTS, "cjdns0", "eth0"))


OUT = 'iifname "cjdns0" oifname "eth0"'
BACK = 'iifname "eth0" oifname "cjdns0"'
V4 = {"ipv4": {"pool": "10.99.0.0/24", "address": "10.99.0.1", "clients": {}}}
V6 = dict(V4, ipv6={"pool": "2001:db8:99::/64", "address": "2001:db8:99::1", "clients": {}})
FORWARD4 = [OUT + " ip saddr 10.99.0.0/24 ct state new,established,related accept",
            BACK + " ip daddr 10.99.0.0/24 ct state established,related accept"]
FORWARD6 = [OUT + " ip6 saddr 2001:db8:99::/64 ct state new,established,related accept",
            BACK + " ip6 daddr 2001:db8:99::/64 ct state established,related accept"]
MANGLE4 = [BACK + " ip daddr 10.99.0.0/24 tcp flags syn tcp option maxseg size set rt mtu",
           OUT + " ip saddr 10.99.0.0/24 tcp flags syn tcp option maxseg size > 1264"
           " tcp option maxseg size set 1264"]
MANGLE6 = [BACK + " ip6 daddr 2001:db8:99::/64 tcp flags syn tcp option maxseg size set rt mtu",
           OUT + " ip6 saddr 2001:db8:99::/64 tcp flags syn tcp option maxseg size > 1244"
           " tcp option maxseg size set 1244"]
MASQUERADE = ['oifname "eth0" ip saddr 10.99.0.0/24 masquerade']


@pytest.mark.parametrize("allocation, clamp, forward, mangle", [
    (V4, True, FORWARD4, MANGLE4),
    (V4, False, FORWARD4, []),
    (V6, True, FORWARD4 + FORWARD6, MANGLE4 + MANGLE6),
    (V6, False, FORWARD4 + FORWARD6, []),
], ids=["ipv4-clamp", "ipv4-no-clamp", "ipv4-ipv6-clamp", "ipv4-ipv6-no-clamp"])
def test_nft_part(allocation, clamp, forward, mangle):
    part = gateway.nft_part("cjdns0", "eth0", allocation, mss_clamp=clamp)
    assert part == {"policy": {"forward": "drop"}, "forward": forward,
                    "forward_mangle": mangle, "postrouting": MASQUERADE}
    # The firewall role renders the part in this key order.
    assert list(part) == ["policy", "forward", "forward_mangle", "postrouting"]


def test_nft_part_mss_follows_the_tun_mtu():
    part = gateway.nft_part("tun1", "wan", V6, tun_mtu=1400)
    assert part["forward_mangle"][1].endswith("size > 1360 tcp option maxseg size set 1360")
    assert part["forward_mangle"][3].endswith("size > 1340 tcp option maxseg size set 1340")
    assert part["postrouting"] == ['oifname "wan" ip saddr 10.99.0.0/24 masquerade']
