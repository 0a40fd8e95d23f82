"""The bridge role's planner: every problem the role refuses, and the plans it applies."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.bridge import bridge_plan
from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import link_plan
from ansible_collections.meshfleet.mesh.plugins.module_utils.bridge import (
    HOOK_PATHS,
    ICMPV6,
    BridgeError,
    plan,
    session_ips,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import peer_password
from keyvectors import VECTORS

HOSTS = ["bridge-a-node", "bridge-a-end", "bridge-b-node", "bridge-b-end"]
INVENTORY = {"all": HOSTS, "bridges": ["bridge-a-end", "bridge-b-end"]}
REGISTRY = {
    h: {"public_key": VECTORS[i]["public_key"], "ipv6": VECTORS[i]["ipv6"]}
    for i, h in enumerate(HOSTS)
}
LINKS = [
    {
        "name": "hood-a-hood-b",
        "ends": [
            {"host": "bridge-b-end", "interface": "link"},
            {"host": "bridge-a-end", "interface": "link"},
        ],
    }
]
SETTINGS = {
    "link_prefix": "",
    "fleet_id": "molecule-bridge-fleet",
    "udp_port": 11234,
    "udp_bind_address": "0.0.0.0",  # noqa: S104 - the cjdns role's default, not a bind here
    "fleet_secret": "s3cret",
    "registry_path": "/inv/cjdns_registry.yml",
    "allow_ssh_interface_change": False,
    "firewall_drop_other": True,
    "network_backend": "auto",
    "check_mode": False,
    "ansible_host": "",
    "dropin_name": "60-meshfleet-bridge.conf",
}
PLAN = link_plan(LINKS, fleet_id="molecule-bridge-fleet")["hood-a-hood-b"]
ADDRESS = {end["host"]: end["address"] for end in PLAN["ends"]}


def facts(ipv4="172.30.9.2", ipv6=(), interfaces=("lo", "eth0", "link"), ssh=None):
    out = {
        "interfaces": list(interfaces),
        "link": {
            "ipv4": {"address": ipv4},
            "ipv6": [{"address": a} for a in ipv6],
        },
        "env": {},
    }
    if ssh:
        out["env"]["SSH_CONNECTION"] = "192.0.2.1 40000 %s 22" % ssh
    return out


def run(host="bridge-a-end", links=None, inventory=None, host_facts=None, registry=None,
        probe=None, **settings):
    return plan(
        host,
        LINKS if links is None else links,
        INVENTORY if inventory is None else inventory,
        facts() if host_facts is None else host_facts,
        REGISTRY if registry is None else registry,
        dict(SETTINGS, **settings),
        probe=probe,
    )


def one_problem(result):
    assert len(result["problems"]) == 1, result["problems"]
    return result["problems"][0]


# --------------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    "kwargs, expect",
    [
        ({"link_prefix": "fd5e:1a2b:3c4d:1::/64"}, "it must be a /48"),
        ({"link_prefix": "fc5e:1a2b:3c4d::/48"},
         "overlaps fc00::/8, which cjdns uses for its own node addresses"),
        ({"link_prefix": "2001:db8:1::/48"}, "is not inside fd00::/8"),
        ({"links": [{"name": "hood-a-hood-b",
                     "ends": [{"host": "bridge-a-end", "interface": "link"}]}]},
         "link 'hood-a-hood-b' has 1 ends; a link has exactly two"),
        ({"links": LINKS + [{"name": "second-link", "ends": [
            {"host": "bridge-a-end", "interface": "link"},
            {"host": "bridge-b-end", "interface": "hood_b"}]}]},
         "interface 'link' on host 'bridge-a-end' is used by both link 'hood-a-hood-b' and "
         "link 'second-link'"),
        ({"fleet_id": ""}, "no link prefix"),
    ],
)
def test_invalid_links_name_the_variables(kwargs, expect):
    problem = one_problem(run(**kwargs))
    assert problem.startswith("bridge_links / bridge_link_prefix / bridge_fleet_id is invalid: ")
    assert expect in problem


def test_no_links_no_problem_even_without_a_prefix():
    result = run(links=[], fleet_id="", fleet_secret="")
    assert result["problems"] == [] and result["mine"] == [] and result["cjdns_part"] == {}


def test_an_end_not_in_the_inventory():
    links = [{"name": "hood-a-hood-b", "ends": [{"host": "bridge-a-end", "interface": "link"},
                                                {"host": "nowhere-pi", "interface": "eth1"}]}]
    assert one_problem(run(links=links)) == (
        "bridge_links names host 'nowhere-pi' (link 'hood-a-hood-b'), which is not in the "
        "inventory."
    )


def test_an_end_outside_group_bridges():
    links = [{"name": "hood-a-hood-b", "ends": [{"host": "bridge-a-end", "interface": "link"},
                                                {"host": "bridge-a-node", "interface": "hood_a"}]}]
    problem = one_problem(run(links=links))
    assert ("host 'bridge-a-node' (link 'hood-a-hood-b'), which is not in both groups bridges "
            "and mesh_nodes") in problem


def test_unknown_and_outside_together_on_every_host():
    links = [{"name": "x", "ends": [{"host": "ghost", "interface": "eth1"},
                                    {"host": "bridge-a-node", "interface": "eth1"}]}]
    result = run(host="bridge-b-node", links=links)
    assert len(result["problems"]) == 2
    assert "host 'ghost' (link 'x'), which is not in the inventory" in result["problems"][0]
    assert "not in both groups bridges and mesh_nodes" in result["problems"][1]


def test_a_missing_interface_names_the_host_and_what_it_has():
    links = [{"name": "hood-a-hood-b", "ends": [{"host": "bridge-a-end", "interface": "eth9"},
                                                {"host": "bridge-b-end", "interface": "eth9"}]}]
    assert one_problem(run(links=links)) == (
        "bridge_links: bridge-a-end has no interface eth9 (it has eth0, link, lo)."
    )


def test_the_fleet_secret_is_needed():
    problem = one_problem(run(fleet_secret=""))
    assert problem.startswith("cjdns_fleet_secret must be set (from Vault)")
    assert "bridge-a-end" in problem


@pytest.mark.parametrize("bind", ["::", "[::]", ""])
def test_a_wildcard_ipv6_bind_address(bind):
    problem = one_problem(run(udp_bind_address=bind))
    assert problem.startswith("cjdns_udp_bind_address %s of bridge-a-end would take the cjdns "
                              "port on every IPv6 address" % bind)
    assert "use 0.0.0.0 or an address" in problem


def test_the_secret_and_bind_matter_only_on_a_host_with_links():
    assert run(host="bridge-a-node", fleet_secret="", udp_bind_address="::")["problems"] == []


def test_a_far_end_without_a_key():
    registry = {"bridge-a-end": REGISTRY["bridge-a-end"]}
    assert one_problem(run(registry=registry)) == (
        "bridge-a-end ends links to bridge-b-end, which have no key in the registry "
        "/inv/cjdns_registry.yml yet: converge them (the cjdns role) first."
    )


def test_a_check_run_leaves_a_far_end_without_a_key_out():
    registry = {"bridge-a-end": REGISTRY["bridge-a-end"]}
    result = run(registry=registry, check_mode=True)
    assert result["problems"] == []
    udp = result["cjdns_part"]["config"]["interfaces"]["UDPInterface"]
    assert udp == [{"bind": "[%s]:11234" % ADDRESS["bridge-a-end"], "beacon": 0, "connectTo": {}}]
    assert result["cjdns_part"]["config"]["authorizedPasswords"][0]["user"] == "bridge-b-end"


def test_a_new_address_on_the_interface_carrying_the_session():
    result = run(host_facts=facts(ssh="172.30.9.2"), link_prefix="", links=[
        dict(LINKS[0], subnet=4242)])
    problem = one_problem(result)
    assert problem.startswith("This run would change the addresses of link (link "
                              "'hood-a-hood-b' adds ")
    assert "which carries your connection to bridge-a-end (172.30.9.2)" in problem
    assert problem.endswith("or set bridge_allow_ssh_interface_change: true.")


def test_the_session_interface_may_be_changed_when_allowed():
    result = run(host_facts=facts(ssh="172.30.9.2"), allow_ssh_interface_change=True)
    assert result["problems"] == [] and result["mine"][0]["carries_session"]


def test_a_session_on_the_link_interface_with_the_address_in_place_is_fine():
    result = run(host_facts=facts(ssh="172.30.9.2", ipv6=[ADDRESS["bridge-a-end"].upper()]))
    assert result["problems"] == []
    assert result["mine"][0]["present"] and result["mine"][0]["carries_session"]
    assert result["addresses_present"]


def test_host_problems_come_together():
    links = [{"name": "hood-a-hood-b", "ends": [{"host": "bridge-a-end", "interface": "eth9"},
                                                {"host": "bridge-b-end", "interface": "eth9"}]}]
    result = run(links=links, fleet_secret="", udp_bind_address="::", registry={})
    assert [p.split(" ")[0] for p in result["problems"]] == [
        "bridge_links:", "cjdns_fleet_secret", "cjdns_udp_bind_address", "bridge-a-end"]


def test_session_ips():
    assert session_ips(facts(ssh="FE80::1%eth0"), "10.0.0.5") == ["fe80::1", "10.0.0.5"]
    assert session_ips(facts(ssh="10.0.0.5"), "10.0.0.5") == ["10.0.0.5"]
    assert session_ips({}, "bridge-a-end") == []
    assert session_ips({"env": {"SSH_CONNECTION": "1.2.3.4"}}, "") == []


@pytest.mark.parametrize(
    "args",
    [
        ("", LINKS, INVENTORY, {}, {}, SETTINGS),
        ("h", LINKS, [], {}, {}, SETTINGS),
        ("h", LINKS, INVENTORY, None, {}, SETTINGS),
        ("h", LINKS, INVENTORY, {}, {}, SETTINGS, "dropin /x"),
    ],
)
def test_wrong_shapes_are_errors(args):
    with pytest.raises(BridgeError):
        plan(*args)
    with pytest.raises(AnsibleFilterError):
        bridge_plan(*args)


# ------------------------------------------------------------------------------ plans


def test_plan_of_a_link_end():
    result = bridge_plan("bridge-a-end", LINKS, INVENTORY, facts(), REGISTRY, SETTINGS)
    assert result["problems"] == []
    assert result["mine"] == [{
        "link": "hood-a-hood-b",
        "prefix": PLAN["prefix"],
        "interface": "link",
        "address": ADDRESS["bridge-a-end"],
        "far_host": "bridge-b-end",
        "far_address": ADDRESS["bridge-b-end"],
        "present": False,
        "carries_session": False,
    }]
    assert result["interfaces"] == ["link"]
    assert not result["addresses_present"]
    password = peer_password("s3cret", "bridge-a-end", "bridge-b-end")
    assert result["cjdns_part"] == {
        "name": "bridge",
        "config": {
            "authorizedPasswords": [{"user": "bridge-b-end", "password": password}],
            "interfaces": {"UDPInterface": [{
                "bind": "[%s]:11234" % ADDRESS["bridge-a-end"],
                "beacon": 0,
                "connectTo": {"[%s]:11234" % ADDRESS["bridge-b-end"]: {
                    "publicKey": REGISTRY["bridge-b-end"]["public_key"],
                    "password": password,
                    "login": "bridge-a-end",
                    "peerName": "bridge-b-end",
                }},
            }]},
        },
    }
    assert result["nft_part"] == {"input": [
        'iifname "link" udp dport 11234 counter accept',
        'iifname "link" ct state established,related accept',
        'iifname "link" icmpv6 type { %s } accept' % ", ".join(ICMPV6),
        'iifname "link" counter drop',
    ]}


def test_both_ends_agree():
    a = run("bridge-a-end")["mine"][0]
    b = run("bridge-b-end")["mine"][0]
    assert (a["address"], a["far_address"]) == (b["far_address"], b["address"])
    pa = run("bridge-a-end")["cjdns_part"]["config"]["authorizedPasswords"][0]["password"]
    pb = run("bridge-b-end")["cjdns_part"]["config"]["authorizedPasswords"][0]["password"]
    assert pa == pb


def test_only_the_udp_rule_without_drop_other():
    assert run(firewall_drop_other=False)["nft_part"] == {
        "input": ['iifname "link" udp dport 11234 counter accept']}


def test_a_host_without_links_gets_empty_parts():
    result = run("bridge-a-node", registry={})
    assert result["problems"] == [] and result["mine"] == [] and result["interfaces"] == []
    assert result["cjdns_part"] == {} and result["nft_part"] == {}
    assert result["addresses_present"]


def test_two_links_in_name_order_one_interface_each():
    links = LINKS + [{"name": "a-first", "ends": [{"host": "bridge-a-end", "interface": "eth0"},
                                                  {"host": "bridge-b-end", "interface": "eth0"}]}]
    result = run(links=links)
    assert [m["link"] for m in result["mine"]] == ["a-first", "hood-a-hood-b"]
    assert result["interfaces"] == ["eth0", "link"]
    assert len(result["nft_part"]["input"]) == 8


# ---------------------------------------------------------------------- with the probe


def test_probe_unit_backend_and_stale_dropins():
    stale = "/etc/systemd/network/40-old.network.d/60-meshfleet-bridge.conf"
    result = run(probe=["link 0 0 - - 0", "dropin " + stale])
    assert result["problems"] == []
    assert result["backends"]["link"]["backend"] == "unit"
    assert result["dropins"] == []
    assert result["stale_dropins"] == [stale]
    assert result["hooks"] == []


def test_probe_networkd_backend_keeps_its_dropin():
    live = "/etc/systemd/network/50-link.network.d/60-meshfleet-bridge.conf"
    stale = "/etc/systemd/network/40-old-port.network.d/60-meshfleet-bridge.conf"
    probe = ["link 0 0 /etc/systemd/network/50-link.network - 1", "dropin " + stale,
             "dropin " + live]
    result = run("bridge-b-end", probe=probe)
    assert result["problems"] == []
    assert result["dropins"] == [{
        "interface": "link",
        "network_file": "/etc/systemd/network/50-link.network",
        "path": live,
        "directory": "/etc/systemd/network/50-link.network.d",
        "directory_exists": True,
    }]
    assert result["stale_dropins"] == [stale]


@pytest.mark.parametrize(
    "line, backend",
    [
        ("link 1 1 /run/x.network - 0", "networkmanager"),
        ("link 0 1 /run/x.network - 0", "networkd"),
        ("link 0 1 - - 0", "ifupdown"),
        ("link 0 0 - - 0", "unit"),
    ],
)
def test_probe_auto_backend(line, backend):
    result = run(probe=[line])
    assert result["backends"]["link"]["backend"] == backend
    assert result["hooks"] == ([backend] if backend in ("networkmanager", "ifupdown") else [])
    # What meshfleet.mesh.node_files writes for it: the drop-in or the hook, nothing else.
    if backend == "networkd":
        dropin = "/etc/systemd/network/x.network.d/60-meshfleet-bridge.conf"
        assert result["files"] == [{"template": "networkd-dropin.conf.j2", "dest": dropin,
                                    "vars": {"item": result["dropins"][0]}}]
    elif backend == "unit":
        assert result["files"] == []
    else:
        assert result["files"] == [{"template": backend + "-hook.j2", "mode": "0755",
                                    "dest": HOOK_PATHS[backend]}]


def test_probe_of_an_interface_it_did_not_report_is_unit():
    assert run(probe=[])["backends"]["link"]["backend"] == "unit"


def test_forced_networkd_where_networkd_does_not_manage_the_interface():
    assert one_problem(run(probe=["link 0 0 - - 0"], network_backend="networkd")) == (
        "systemd-networkd does not manage link (no .network file matches it): set "
        "bridge_network_backend to unit or auto, or give link a .network file."
    )


def test_a_network_file_shared_with_other_interfaces():
    problem = one_problem(run(probe=["link 0 0 /etc/systemd/network/20-all.network eth0,eth1 0"]))
    assert problem == (
        "/etc/systemd/network/20-all.network configures link and also eth0, eth1: an Address= "
        "drop-in for it would put the link address on those too. Give link a .network file "
        "of its own (or set bridge_network_backend: unit)."
    )


def test_probe_on_a_host_without_links_still_finds_stale_dropins():
    stale = "/etc/x.network.d/60-meshfleet-bridge.conf"
    result = run("bridge-a-node", registry={}, probe=["dropin " + stale])
    assert result["stale_dropins"] == [stale]
    assert result["backends"] == {} and result["hooks"] == []
    assert result["files"] == [{"dest": stale, "state": "absent"}]
