"""The client role's planner: every problem the role refuses, and the plan it applies."""


import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.client import client_plan
from ansible_collections.meshfleet.mesh.plugins.module_utils.client import (
    ClientError,
    check,
    gateway_names,
    plan,
)
from keyvectors import VECTORS

HOST = "pi-garden"
HOSTS = ["gw-river", "gw-hill", "pi-garden", "pi-library", "br-1"]
REGISTRY = {
    h: {"public_key": VECTORS[i]["public_key"], "ipv6": VECTORS[i]["ipv6"]}
    for i, h in enumerate(HOSTS)
}
GROUPS = {
    "all": HOSTS,
    "ungrouped": [],
    "mesh_nodes": HOSTS,
    "gateways": ["gw-river", "gw-hill"],
    "clients": ["pi-garden", "pi-library"],
    "bridges": ["br-1"],
}
POOLS = {"gw-river": "10.99.0.0/24", "gw-hill": "10.98.0.0/24"}
ALLOCATIONS = {
    "gateways": {
        "gw-river": {"ipv4": {"pool": "10.99.0.0/24", "address": "10.99.0.1",
                              "clients": {"pi-garden": "10.99.0.57", "pi-library": "10.99.0.183"}}},
        "gw-hill": {"ipv4": {"pool": "10.98.0.0/24", "address": "10.98.0.1",
                             "clients": {"pi-garden": "10.98.0.12"}}},
    }
}
NODE = {
    "tun_device": "cjdns0",
    "cjdns_config": "/etc/cjdns/cjdroute.conf",
    "nameservers": ["192.168.1.1"],
    "program": "/usr/local/sbin/meshfleet-gw-failover",
    "failover_config": "/etc/meshfleet/gw-failover.json",
}


def settings(**overrides):
    base = {
        "gateways": ["gw-river", "gw-hill"],
        "failover_probe_targets": ["9.9.9.9", "1.1.1.1"],
        "failover_interval": 1,
        "failover_down_after": 2,
        "failover_up_after": 3,
        "lan_prefix": "",
        "dns_servers": [],
    }
    base.update(overrides)
    return base


def planned(host=HOST, registry=None, allocations=None, node=None, check_mode=False,
            **overrides):
    return plan(host, settings(**overrides), GROUPS, POOLS,
                REGISTRY if registry is None else registry,
                ALLOCATIONS if allocations is None else allocations,
                NODE if node is None else node, check_mode=check_mode)


def problems(**kwargs):
    return planned(**kwargs)["problems"]


# ------------------------------------------------------------------------ good plans


def test_gateways_in_priority_order_with_keys_and_issued_addresses():
    got = planned(gateways=["gw-hill", "gw-river"])
    assert got["problems"] == []
    assert got["gateways"] == [
        {"name": "gw-hill", "address": "10.98.0.12",
         "public_key": REGISTRY["gw-hill"]["public_key"]},
        {"name": "gw-river", "address": "10.99.0.57",
         "public_key": REGISTRY["gw-river"]["public_key"]},
    ]
    assert got["cjdns_part"] == {
        "name": "client",
        "config": {"router": {"ipTunnel": {"outgoingConnections": [
            REGISTRY["gw-hill"]["public_key"], REGISTRY["gw-river"]["public_key"]]}}},
    }


def test_failover_config_is_the_services_json_in_its_order():
    config = planned()["failover_config"]
    assert list(config) == ["_comment", "tun_device", "cjdns_config", "state_file", "interval",
                            "down_after", "up_after", "probe_targets", "gateways"]
    assert config["_comment"].startswith("Written by Ansible (meshfleet.mesh role client)")
    assert config["tun_device"] == "cjdns0"
    assert config["cjdns_config"] == "/etc/cjdns/cjdroute.conf"
    assert config["state_file"] == "/run/meshfleet-gw-failover/state.json"
    assert (config["interval"], config["down_after"], config["up_after"]) == (1, 2, 3)
    assert config["probe_targets"] == ["9.9.9.9", "1.1.1.1"]
    assert [g["name"] for g in config["gateways"]] == ["gw-river", "gw-hill"]


def test_comma_separated_gateways_are_a_list():
    assert gateway_names(" gw-river, gw-hill ,") == ["gw-river", "gw-hill"]
    assert gateway_names(None) == []
    got = planned(gateways="gw-river,gw-hill")
    assert [g["name"] for g in got["gateways"]] == ["gw-river", "gw-hill"]


def test_address_is_empty_until_the_gateway_allocated_one():
    got = planned(allocations={})
    assert [g["address"] for g in got["gateways"]] == ["", ""]
    got = planned(allocations={"gateways": {"gw-river": {"ipv4": {"clients": {}}}}})
    assert [g["address"] for g in got["gateways"]] == ["", ""]
    got = planned(host="pi-library")
    assert [g["address"] for g in got["gateways"]] == ["10.99.0.183", ""]


def test_check_mode_leaves_an_unregistered_gateway_out():
    registry = {h: e for h, e in REGISTRY.items() if h != "gw-hill"}
    got = planned(registry=registry, check_mode=True)
    assert got["problems"] == []
    keys = got["cjdns_part"]["config"]["router"]["ipTunnel"]["outgoingConnections"]
    assert keys == [REGISTRY["gw-river"]["public_key"]]
    assert got["gateways"][1] == {"name": "gw-hill", "address": "10.98.0.12", "public_key": ""}


def test_a_host_outside_group_clients_may_have_no_gateway():
    got = planned(host="br-1", gateways=[])
    assert got["problems"] == []
    assert got["gateways"] == []
    assert got["cjdns_part"]["config"]["router"]["ipTunnel"]["outgoingConnections"] == []


def test_lan_sharing_rules_and_forwarding():
    got = planned(lan_prefix="10.77.0.0/24")
    assert got["lan"] == {"prefix": "10.77.0.0/24", "shared": True}
    assert got["nft_part"] == {
        "policy": {"forward": "drop"},
        "forward": [
            'ip saddr 10.77.0.0/24 oifname "cjdns0" accept',
            'iifname "cjdns0" ip daddr 10.77.0.0/24 ct state established,related accept',
        ],
        "forward_mangle": [
            'ip saddr 10.77.0.0/24 oifname "cjdns0" tcp flags syn tcp option maxseg size set rt '
            'mtu',
        ],
        "postrouting": ['ip saddr 10.77.0.0/24 oifname "cjdns0" masquerade'],
    }


def test_no_lan_no_rules():
    got = planned()
    assert got["lan"] == {"prefix": "", "shared": False}
    assert got["nft_part"] == {}


def test_the_tun_device_is_the_cjdns_roles():
    got = planned(lan_prefix="10.77.0.0/24", node=dict(NODE, tun_device="tun7"))
    assert got["failover_config"]["tun_device"] == "tun7"
    assert got["nft_part"]["postrouting"] == ['ip saddr 10.77.0.0/24 oifname "tun7" masquerade']


@pytest.mark.parametrize("servers, nameservers, dns", [
    ([], ["127.0.0.53"], {"servers": [], "resolved": True, "dropin": False, "resolv_conf": False}),
    ([], ["10.0.0.1"], {"servers": [], "resolved": False, "dropin": False, "resolv_conf": False}),
    (["9.9.9.9"], ["127.0.0.53"],
     {"servers": ["9.9.9.9"], "resolved": True, "dropin": True, "resolv_conf": False}),
    (["9.9.9.9", "2620:fe::fe"], ["10.0.0.1"],
     {"servers": ["9.9.9.9", "2620:fe::fe"], "resolved": False, "dropin": False,
      "resolv_conf": True}),
])
def test_dns_through_resolved_or_resolv_conf(servers, nameservers, dns):
    got = planned(dns_servers=servers, node=dict(NODE, nameservers=nameservers))
    assert got["dns"] == dns


# ------------------------------------------------------------ problems: client_gateways


@pytest.mark.parametrize("gateways, expected", [
    ([], "client_gateways of pi-garden (empty): a host in group clients needs at least one "
         "gateway"),
    (["gw-river", "pi-garden"], "client_gateways of pi-garden (gw-river, pi-garden): pi-garden is "
                                "this host itself; a client cannot be its own gateway"),
    (["gw-river", "gw-nine"], "client_gateways of pi-garden (gw-river, gw-nine): gw-nine is not in "
                              "the inventory"),
    (["br-1"], "client_gateways of pi-garden (br-1): br-1 is not in group gateways"),
    (["gw-river", "gw-hill", "gw-river"], "client_gateways of pi-garden (gw-river, gw-hill, "
                                          "gw-river): gw-river is listed more than once"),
])
def test_gateway_problems(gateways, expected):
    found = problems(gateways=gateways)
    assert len(found) == 1, found
    assert found[0].startswith(expected)


def test_an_unregistered_gateway_must_converge_first():
    registry = {h: e for h, e in REGISTRY.items() if h != "gw-hill"}
    assert problems(registry=registry) == [
        "client_gateways of pi-garden (gw-river, gw-hill): gw-hill has no key in the key "
        "registry yet: converge gw-hill first"]


def test_a_duplicate_is_named_once_and_other_problems_per_entry():
    found = problems(gateways=["gw-nine", "gw-nine", "gw-river", "gw-river", "gw-river"])
    assert [p.split(": ", 1)[1] for p in found] == [
        "gw-nine is not in the inventory: fix the name or add the host",
        "gw-nine is not in the inventory: fix the name or add the host",
        "gw-nine is listed more than once: name each gateway once",
        "gw-river is listed more than once: name each gateway once",
    ]


def test_no_plan_when_there_are_problems():
    assert planned(gateways=[]) == {"problems": [
        "client_gateways of pi-garden (empty): a host in group clients needs at least one "
        "gateway: name its gateways (hosts of group gateways) in client_gateways"]}


# ---------------------------------------------------- problems: failover, LAN and DNS


@pytest.mark.parametrize("change, expected", [
    ({"failover_interval": 0.5},
     "client_failover_interval is 0.5: it must be at least 1 (seconds)"),
    ({"failover_interval": 0}, "client_failover_interval is 0: it must be at least 1 (seconds)"),
    ({"failover_interval": "1"}, "client_failover_interval is 1: it must be at least 1 (seconds)"),
    ({"failover_down_after": 0}, "client_failover_down_after must be a whole number of rounds, "
                                 "at least 1"),
    ({"failover_down_after": 1.5}, "client_failover_down_after must be a whole number of rounds, "
                                   "at least 1"),
    ({"failover_up_after": "3"}, "client_failover_up_after must be a whole number of rounds, "
                                 "at least 1"),
    ({"failover_probe_targets": []}, "client_failover_probe_targets is empty: give IPv4 addresses "
                                     "reachable through every gateway"),
    ({"failover_probe_targets": ["9.9.9.9", "example.org"]},
     "client_failover_probe_targets: example.org is not an IPv4 address"),
    ({"failover_probe_targets": ["2620:fe::fe"]},
     "client_failover_probe_targets: 2620:fe::fe is not an IPv4 address"),
    ({"failover_probe_targets": ["256.1.1.1"]},
     "client_failover_probe_targets: 256.1.1.1 is not an IPv4 address"),
    ({"lan_prefix": "10.96.0.0/14"}, "client_lan_prefix 10.96.0.0/14 overlaps the gateway pool(s) "
                                     "10.99.0.0/24, 10.98.0.0/24: choose a LAN prefix outside "
                                     "every gateway pool"),
    ({"lan_prefix": "10.99.0.128/25"}, "client_lan_prefix 10.99.0.128/25 overlaps the gateway "
                                       "pool(s) 10.99.0.0/24: choose a LAN prefix outside every "
                                       "gateway pool"),
    ({"lan_prefix": "fd00:77::/64"}, "client_lan_prefix fd00:77::/64 is IPv6; LAN sharing "
                                     "masquerades an IPv4 prefix"),
    ({"lan_prefix": "192.168.50.1/24"}, "client_lan_prefix '192.168.50.1/24' has host bits set; "
                                        "did you mean 192.168.50.0/24?"),
    ({"lan_prefix": "192.168.50.0"}, "client_lan_prefix '192.168.50.0' is not a network in CIDR "
                                     "notation (e.g. 192.168.50.0/24)"),
    ({"lan_prefix": "lan/24"}, "client_lan_prefix 'lan/24' is not a valid network"),
    ({"dns_servers": ["9.9.9.9", "dns.quad9.net"]},
     "client_dns_servers: dns.quad9.net is not an IP address"),
])
def test_settings_problems(change, expected):
    found = problems(**change)
    assert len(found) == 1, found
    assert found[0].startswith("Client settings of pi-garden: " + expected)


def test_good_addresses_pass():
    assert problems(failover_probe_targets=["0.0.0.1", "255.255.255.255", "10.0.0.1"],
                    dns_servers=["10.0.0.1", "2620:fe::fe", "::ffff:10.0.0.1"],
                    lan_prefix="192.168.50.0/24") == []


def test_a_gateway_pool_that_is_unset_or_bad_is_its_gateways_problem():
    pools = {"gw-river": "", "gw-hill": "not a pool", "gw-x": None}
    assert check(HOST, settings(lan_prefix="10.99.0.0/24"), GROUPS, pools, REGISTRY) == []


def test_all_problems_at_once_gateways_first():
    found = problems(gateways=["pi-garden"], failover_interval=0, failover_probe_targets=[],
                     dns_servers=["x"])
    assert [p.split(":", 1)[0] for p in found] == [
        "client_gateways of pi-garden (pi-garden)",
        "Client settings of pi-garden", "Client settings of pi-garden",
        "Client settings of pi-garden"]


# ---------------------------------------------------------------------------- filter


def test_filter_returns_the_plan():
    got = client_plan(HOST, settings(), GROUPS, POOLS, REGISTRY, ALLOCATIONS, NODE)
    assert got == planned()


def test_filter_accepts_no_registry_nor_allocations_yet():
    got = client_plan(HOST, settings(), GROUPS, POOLS, None, None, NODE, check_mode=True)
    assert got["problems"] == []
    assert got["cjdns_part"]["config"]["router"]["ipTunnel"]["outgoingConnections"] == []


@pytest.mark.parametrize("args", [
    ("not a mapping", GROUPS, POOLS, REGISTRY, ALLOCATIONS, NODE),
    (settings(), GROUPS, ["10.99.0.0/24"], REGISTRY, ALLOCATIONS, NODE),
    ({"gateways": []}, GROUPS, POOLS, REGISTRY, ALLOCATIONS, NODE),
    (settings(), GROUPS, POOLS, REGISTRY, ALLOCATIONS, {"tun_device": "cjdns0"}),
])
def test_filter_refuses_input_of_the_wrong_shape(args):
    with pytest.raises(AnsibleFilterError, match="client_plan"):
        client_plan(HOST, *args)


def test_planner_refuses_settings_of_the_wrong_shape():
    with pytest.raises(ClientError, match="settings lack"):
        plan(HOST, {"gateways": []}, GROUPS, POOLS, REGISTRY, ALLOCATIONS, NODE)
