"""The diagnosis of one client's way out: each link broken in turn, all good, unreachable
hosts, a client with two gateways of which one is broken."""

import copy
import json

import pytest
from ansible_collections.meshfleet.mesh.plugins.filter.diagnose import diagnose_client
from ansible_collections.meshfleet.mesh.plugins.module_utils.diagnose import LINKS, diagnose
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    parse_nft_table,
)
from keyvectors import VECTORS

KEYS = {name: VECTORS[i]["public_key"] for i, name in enumerate(["gw", "ana", "br", "gw2"])}
INVENTORY = "inventories/lab"

# `nft list table inet meshfleet` on a gateway of the lab (pool 10.98.0.0/24, uplink wan).
NFT_GATEWAY = """table inet meshfleet {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\tiifname "cjdns0" oifname "wan" ip saddr 10.98.0.0/24 ct state established,related,new \
accept comment "gateway"
\t\tiifname "wan" oifname "cjdns0" ip daddr 10.98.0.0/24 ct state established,related \
accept comment "gateway"
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "wan" ip saddr 10.98.0.0/24 masquerade comment "gateway"
\t}
}
"""


def cjdns(active=True, error=None):
    return {"version": "cjdns-v21.1", "active": active, "uptime_s": 4000, "error": error}


def client_status(name="ana", gateways=(("gw", "10.98.0.2"),)):
    issued = [address for _gw, address in gateways]
    return {
        "cjdns": cjdns(),
        "node": {"public_key": KEYS[name], "ipv6": "fc00::1", "machine": "x86_64"},
        "peers": [
            {"public_key": KEYS["gw"], "state": "ESTABLISHED", "bytes_in": 9, "bytes_out": 9,
             "address": "172.18.0.2:41300"},
            {"public_key": KEYS["br"], "state": "ESTABLISHED", "bytes_in": 9, "bytes_out": 9,
             "address": "172.18.0.3:41300"},
        ],
        "tunnels": [
            {"public_key": KEYS[gw], "outgoing": True, "ip4": address, "ip6": None}
            for gw, address in gateways
        ],
        "stations": [],
        "links": [],
        "interfaces": [
            {"interface": "cjdns0", "state": "UNKNOWN",
             "addresses": ["%s/32" % a for a in issued] + ["fc00::1/8"]},
            {"interface": "riverside", "state": "UP", "addresses": ["172.18.0.4/16"]},
        ],
        "routes": [
            {"dst": "0.0.0.0/1", "dev": "cjdns0", "gateway": None, "prefsrc": issued[0],
             "protocol": "52", "scope": "link"},
            {"dst": "128.0.0.0/1", "dev": "cjdns0", "gateway": None, "prefsrc": issued[0],
             "protocol": "52", "scope": "link"},
            {"dst": "default", "dev": "riverside", "gateway": "172.18.0.1", "prefsrc": None,
             "protocol": None, "scope": None},
        ],
        "route_to": [{"target": "203.0.113.200", "dev": "cjdns0", "src": issued[0],
                      "gateway": None, "error": None}],
        "units": {"meshfleet-gw-failover.service": "active"},
        "failover": {"active": gateways[0][0], "active_address": issued[0], "gateways": []},
    }


def gateway_status(name="gw", clients=(("ana", "10.98.0.2"),), pool="10.98.0.0/24"):
    nft = NFT_GATEWAY.replace("10.98.0.0/24", pool)
    return {
        "cjdns": cjdns(),
        "node": {"public_key": KEYS[name], "ipv6": "fc00::2", "machine": "x86_64"},
        "peers": [{"public_key": KEYS["ana"], "state": "ESTABLISHED", "bytes_in": 1,
                   "bytes_out": 1, "address": "172.18.0.4:41300"}],
        "tunnels": [
            {"public_key": KEYS[c], "outgoing": False, "ip4": address, "ip6": None}
            for c, address in clients
        ],
        "stations": [],
        "links": [],
        "interfaces": [{"interface": "cjdns0", "state": "UNKNOWN", "addresses": []}],
        "tunnel_config": {
            "allowed": [{"publicKey": KEYS[c], "ip4Address": address, "ip4Prefix": 0,
                         "ip4Alloc": 32} for c, address in clients],
            "outgoing": [],
        },
        "sysctls": {"net.ipv4.ip_forward": "1"},
        "nft": {"table": "inet meshfleet", "present": True, "chains": parse_nft_table(nft),
                "error": None},
        "uplink": {"interface": "wan", "state": "UP", "default_gateway": "203.0.113.100",
                   "default_route": True, "error": None,
                   "probes": [{"target": "203.0.113.200", "ok": True, "rtt_ms": 0.08,
                               "error": None}]},
    }


def settings(pools=None):
    pools = pools or {"gw": "10.98.0.0/24", "gw2": "10.97.0.0/24"}
    common = {"connection": "community.docker.docker", "tun": "cjdns0",
              "service": "cjdns.service"}
    out = {"ana": dict(common, peer_interface="riverside", peers=["gw", "br"],
                       failover_unit="meshfleet-gw-failover.service",
                       route_target="203.0.113.200")}
    for gw, pool in pools.items():
        out[gw] = dict(common, pool=pool, uplink="wan", nft_table="meshfleet",
                       sysctl_file="/etc/sysctl.d/90-meshfleet-gateway.conf",
                       firewall_unit="meshfleet-firewall.service")
    return out


def healthy(two=False):
    gateways = [("gw", "10.98.0.2")] + ([("gw2", "10.97.0.5")] if two else [])
    statuses = {"ana": client_status(gateways=gateways), "gw": gateway_status()}
    if two:
        statuses["gw2"] = gateway_status("gw2", (("ana", "10.97.0.5"),), "10.97.0.0/24")
    return {
        "client": "ana",
        "gateways": [g for g, _a in gateways],
        "inventory": INVENTORY,
        "registry": {n: {"public_key": k, "ipv6": "fc00::"} for n, k in KEYS.items()},
        "statuses": statuses,
        "hosts": settings(),
    }


def broken(result):
    """The one broken link; every link after it not checked, every one before OK."""
    states = [link["state"] for link in result]
    assert states.count("broken") == 1, states
    index = states.index("broken")
    assert states[:index] == ["ok"] * index
    assert states[index + 1:] == ["not checked"] * (len(states) - index - 1)
    return result[index]


def test_all_links_good_one_line_each():
    result = diagnose(healthy())
    assert [link["id"] for link in result] == [ident for ident, _title in LINKS]
    assert [link["state"] for link in result] == ["ok"] * 7
    by_id = {link["id"]: link for link in result}
    assert "2 of 2 peers ESTABLISHED (br, gw)" in by_id["peers"]["evidence"]
    assert "gw issued 10.98.0.2" in by_id["tunnel"]["evidence"]
    assert "203.0.113.200 goes out with source 10.98.0.2 (gw)" in by_id["routes"]["evidence"]
    assert "gw pins ana (10.98.0.2)" in by_id["pinned"]["evidence"]
    assert "masquerades 10.98.0.0/24 out of wan" in by_id["forwarding"]["evidence"]
    assert "gw reaches 203.0.113.200 through wan" in by_id["uplink"]["evidence"]
    lines = diagnose_client(
        {h: {"status": s} for h, s in healthy()["statuses"].items()}, "ana", ["gw"],
        registry=healthy()["registry"], hosts=settings(), inventory=INVENTORY)
    assert lines["broken"] is None
    assert [line.split()[1] for line in lines["lines"][1:]] == ["OK"] * 7


def _stop_client_cjdns(data):
    data["statuses"]["ana"]["cjdns"] = cjdns(active=False)


def _client_unreachable(data):
    data["statuses"]["ana"] = {"unreachable": "Failed to create temporary directory"}


def _admin_api_silent(data):
    data["statuses"]["ana"]["cjdns"]["error"] = "cjdns admin API did not answer: timed out"


def _peers_unresponsive(data):
    for peer in data["statuses"]["ana"]["peers"]:
        peer["state"] = "UNRESPONSIVE"


def _peer_interface_down(data):
    _peers_unresponsive(data)
    data["statuses"]["ana"]["interfaces"][1]["state"] = "DOWN"


def _no_address_gateway_pins(data):
    data["statuses"]["ana"]["tunnels"][0]["ip4"] = None


def _no_address_gateway_down(data):
    data["statuses"]["ana"]["tunnels"][0]["ip4"] = None
    data["statuses"]["gw"]["cjdns"] = cjdns(active=False)


def _no_tunnel(data):
    data["statuses"]["ana"]["tunnels"] = []


def _address_not_on_tun(data):
    data["statuses"]["ana"]["interfaces"][0]["addresses"] = ["fc00::1/8"]


def _half_route_deleted(data):
    data["statuses"]["ana"]["routes"] = data["statuses"]["ana"]["routes"][1:]
    data["statuses"]["ana"]["route_to"][0].update(dev="riverside", gateway="172.18.0.1",
                                                  src="172.18.0.4")


def _more_specific_route(data):
    data["statuses"]["ana"]["route_to"][0].update(dev="riverside", gateway="172.18.0.1",
                                                  src="172.18.0.4")


def _failover_stopped(data):
    data["statuses"]["ana"]["units"]["meshfleet-gw-failover.service"] = "inactive"


def _pin_removed_live(data):
    data["statuses"]["gw"]["tunnels"] = []


def _pin_missing_in_config(data):
    data["statuses"]["gw"]["tunnels"] = []
    data["statuses"]["gw"]["tunnel_config"]["allowed"] = []


def _gateway_unreachable(data):
    data["statuses"]["gw"] = {"unreachable": "ssh: connect to host rs-gw port 22: timed out"}
    data["hosts"]["gw"]["connection"] = "ssh"


def _forwarding_off(data):
    data["statuses"]["gw"]["sysctls"]["net.ipv4.ip_forward"] = "0"


def _masquerade_deleted(data):
    data["statuses"]["gw"]["nft"]["chains"]["postrouting"] = []


def _table_gone(data):
    data["statuses"]["gw"]["nft"] = {"table": "inet meshfleet", "present": False, "chains": {},
                                     "error": "Error: No such file or directory"}


def _uplink_route_deleted(data):
    uplink = data["statuses"]["gw"]["uplink"]
    uplink.update(default_gateway=None, default_route=False, probes=[
        {"target": "203.0.113.200", "ok": False, "rtt_ms": None,
         "error": "ping: connect: Network is unreachable"}])


def _uplink_silent(data):
    data["statuses"]["gw"]["uplink"]["probes"][0].update(
        ok=False, rtt_ms=None, error="2 packets transmitted, 0 received, 100% packet loss")


CASES = {
    # name: (break it, link id, host, words in the evidence, words in the fix)
    "client cjdns stopped": (_stop_client_cjdns, "cjdns", "ana",
                             ["cjdns.service is not active on ana"],
                             ["on ana: systemctl start cjdns.service"]),
    "client unreachable": (_client_unreachable, "cjdns", "ana",
                           ["ana is unreachable over docker", "temporary directory"],
                           ["ansible ana -i inventories/lab -m ansible.builtin.ping"]),
    "admin API silent": (_admin_api_silent, "cjdns", "ana", ["admin API cannot be read"],
                         ["on ana: systemctl restart cjdns.service"]),
    "peers cut": (_peers_unresponsive, "peers", "ana",
                  ["2 peers, none ESTABLISHED (gw UNRESPONSIVE, br UNRESPONSIVE)",
                   "riverside is UP"],
                  ["cjdns UDP passes on ana interface riverside",
                   "--limit ana,gw,br"]),
    "peer interface down": (_peer_interface_down, "peers", "ana", ["riverside is DOWN"],
                            ["on ana: ip link set riverside up"]),
    "no address, gateway pins": (_no_address_gateway_pins, "tunnel", "ana",
                                 ["ana's tunnel to gw has no address"],
                                 ["on ana: systemctl restart cjdns.service"]),
    "no address, gateway down": (_no_address_gateway_down, "tunnel", "ana",
                                 ["cjdns.service is not active on gw"],
                                 ["on gw: systemctl start cjdns.service"]),
    "no tunnel": (_no_tunnel, "tunnel", "ana", ["no IpTunnel connection to gw"],
                  ["ansible-playbook meshfleet.mesh.site -i inventories/lab --limit ana"]),
    "address not on the TUN": (_address_not_on_tun, "tunnel", "ana",
                               ["gw issued ana 10.98.0.2, but cjdns0 holds no IPv4 address"],
                               ["systemctl restart meshfleet-gw-failover.service"]),
    "route deleted": (_half_route_deleted, "routes", "ana", ["0.0.0.0/1 missing"],
                      ["on ana: ip route replace 0.0.0.0/1 dev cjdns0 proto 52 src 10.98.0.2"]),
    "route elsewhere": (_more_specific_route, "routes", "ana",
                        ["to 203.0.113.200 leaves by riverside via 172.18.0.1, not cjdns0"],
                        ["ip route"]),
    "failover stopped": (_failover_stopped, "routes", "ana",
                         ["meshfleet-gw-failover.service is inactive on ana"],
                         ["on ana: systemctl start meshfleet-gw-failover.service"]),
    "pin removed live": (_pin_removed_live, "pinned", "gw",
                         ["gw does not pin ana", "its cjdroute.conf does"],
                         ["ansible gw -i inventories/lab -m meshfleet.mesh.cjdns_admin -a",
                          '"function": "IpTunnel_allowConnection"',
                          '"publicKeyOfAuthorizedNode": "%s"' % KEYS["ana"],
                          '"ip4Address": "10.98.0.2"']),
    "pin missing": (_pin_missing_in_config, "pinned", "gw",
                    ["gw does not pin ana", "does not either"],
                    ["gw does not pin ana: run ansible-playbook meshfleet.mesh.site "
                     "-i inventories/lab --limit gw"]),
    "gateway unreachable": (_gateway_unreachable, "pinned", "gw",
                            ["gw is unreachable over SSH", "timed out"],
                            ["bring gw back",
                             "ansible gw -i inventories/lab -m ansible.builtin.ping"]),
    "forwarding off": (_forwarding_off, "forwarding", "gw", ["net.ipv4.ip_forward = 0"],
                       ["on gw: sysctl -p /etc/sysctl.d/90-meshfleet-gateway.conf"]),
    "masquerade deleted": (_masquerade_deleted, "forwarding", "gw",
                           ["gw does not masquerade the pool 10.98.0.0/24"],
                           ["on gw: systemctl reload-or-restart meshfleet-firewall.service"]),
    "table gone": (_table_gone, "forwarding", "gw", ["table inet meshfleet is not loaded on gw"],
                   ["on gw: systemctl reload-or-restart meshfleet-firewall.service"]),
    "uplink route deleted": (_uplink_route_deleted, "uplink", "gw",
                             ["gw has no default route on its uplink wan"],
                             ["ip route replace default via ROUTER dev wan"]),
    "uplink silent": (_uplink_silent, "uplink", "gw", ["100% packet loss"],
                      ["its router 203.0.113.100"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_link_broken_in_turn_is_named_with_evidence_and_fix(case):
    breaker, link, host, evidence, fix = CASES[case]
    data = healthy()
    breaker(data)
    found = broken(diagnose(data))
    assert (found["id"], found["host"]) == (link, host)
    for words in evidence:
        assert words in found["evidence"]
    for words in fix:
        assert words in found["fix"]


def test_every_link_has_a_case():
    assert {case[1] for case in CASES.values()} == {ident for ident, _title in LINKS}


def test_two_gateways_one_broken_names_that_gateway():
    data = healthy(two=True)
    good = diagnose(copy.deepcopy(data))
    assert [link["state"] for link in good] == ["ok"] * 7
    assert "gw issued 10.98.0.2; gw2 issued 10.97.0.5" in good[2]["evidence"]
    data["statuses"]["gw2"]["nft"]["chains"]["postrouting"] = [
        'oifname "wan" ip saddr 10.98.0.0/24 masquerade comment "gateway"']  # gw's pool
    found = broken(diagnose(data))
    assert (found["id"], found["host"]) == ("forwarding", "gw2")
    assert "gw2 does not masquerade the pool 10.97.0.0/24" in found["evidence"]
    # the second gateway unreachable: its pin cannot be read
    data = healthy(two=True)
    data["statuses"]["gw2"] = {"unreachable": "docker: container rs-gw2 is not running"}
    found = broken(diagnose(data))
    assert (found["id"], found["host"]) == ("pinned", "gw2")
    assert "gw2 is unreachable over docker" in found["evidence"]


def test_filter_reads_registered_results_and_renders_the_fix():
    data = healthy()
    results = {h: {"status": s, "changed": False} for h, s in data["statuses"].items()}
    results["gw"] = {"unreachable": True, "msg": "Failed to connect to the host via ssh: "
                     "Connection refused\nmore", "changed": False}
    out = diagnose_client(results, "ana", ["gw"], registry=data["registry"],
                          hosts=settings(), inventory=INVENTORY)
    assert out["broken"]["id"] == "pinned"
    assert "gw is unreachable over docker" in out["broken"]["evidence"]
    assert "Connection refused" in out["broken"]["evidence"]
    assert out["lines"][0] == "way out of ana (gateways: gw):"
    assert out["lines"][5].startswith("5 BROKEN each gateway pins the client's key: ")
    assert out["lines"][6].startswith("  fix: bring gw back")
    assert out["lines"][7] == "6 --     each gateway forwards and masquerades the pool: not checked"
    # a host with no result at all (not in the run) is unreachable too
    out = diagnose_client({}, "ana", ["gw"], registry=data["registry"], hosts=settings())
    assert out["broken"]["id"] == "cjdns" and "not in this run" in out["broken"]["evidence"]
    json.dumps(out)


def test_a_changed_client_key_is_named_before_the_pins():
    data = healthy()
    data["statuses"]["ana"]["node"]["public_key"] = KEYS["br"]
    found = broken(diagnose(data))
    assert found["id"] == "pinned" and "the key registry has %s" % KEYS["ana"] in found["evidence"]
    assert "cjdns_accept_key_change" in found["fix"]


def test_nothing_secret_in_the_result():
    data = healthy()
    _pin_removed_live(data)
    text = json.dumps(diagnose(data))
    for secret in ("privateKey", "password", VECTORS[1]["private_key"]):
        assert secret not in text


def test_a_module_that_could_not_start_is_named_with_the_connection_words():
    data = healthy()
    results = {h: {"status": s} for h, s in data["statuses"].items()}
    results["ana"] = {"failed": True, "rc": 1, "module_stdout": "",
                      "module_stderr": "Error response from daemon: No such container: ana\n",
                      "msg": "Module result deserialization failed: No start of json char found"}
    out = diagnose_client(results, "ana", ["gw"], registry=data["registry"], hosts=settings(),
                          inventory=INVENTORY)
    assert out["broken"]["id"] == "cjdns"
    assert out["broken"]["evidence"] == (
        "ana is unreachable over docker, so its cjdroute cannot be read: status failed: "
        "Error response from daemon: No such container: ana")


def test_an_inventory_below_the_current_directory_is_named_relative(monkeypatch, tmp_path):
    (tmp_path / "inventories" / "lab").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    data = healthy()
    _forwarding_off(data)
    results = {h: {"status": s} for h, s in data["statuses"].items()}
    out = diagnose_client(results, "ana", ["gw"], registry=data["registry"], hosts=settings(),
                          inventory=str(tmp_path / "inventories" / "lab"))
    assert "(if that file is missing: ansible-playbook meshfleet.mesh.site -i inventories/lab " \
        "--limit gw)" in out["broken"]["fix"]
    out = diagnose_client(results, "ana", ["gw"], registry=data["registry"], hosts=settings(),
                          inventory="/elsewhere/inventory")
    assert "-i /elsewhere/inventory --limit gw" in out["broken"]["fix"]
