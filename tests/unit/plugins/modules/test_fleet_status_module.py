"""The fleet_status module in-process, its commands answered by a fake: the default output
is unchanged, and the diagnosis' off-by-default reads appear only when asked for."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    parse_nft_table,
    parse_ping,
    parse_routes,
    parse_units,
)
from ansible_collections.meshfleet.mesh.plugins.modules import fleet_status
from keyvectors import VECTORS

ADMIN_PASSWORD = "d1f5e0b7a2c94e3f8a6b1c2d3e4f5a6b"
NFT = """table inet meshfleet {
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\tiifname "cjdns0" oifname "wan" ip saddr 10.98.0.0/24 accept comment "gateway"
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "wan" ip saddr 10.98.0.0/24 masquerade comment "gateway"
\t}
}
"""
ROUTES = [
    {"dst": "default", "gateway": "203.0.113.100", "dev": "wan", "flags": []},
    {"dst": "0.0.0.0/1", "dev": "cjdns0", "protocol": "52", "scope": "link",
     "prefsrc": "10.98.0.2", "flags": []},
]
COMMANDS = {
    ("systemctl", "show", "cjdns.service"): (
        0, "ActiveState=inactive\nActiveEnterTimestampMonotonic=0\n", ""),
    ("ip", "-j", "-4", "route", "show", "table", "main"): (0, json.dumps(ROUTES), ""),
    ("ip", "-j", "-4", "route", "get", "203.0.113.200"): (
        0, json.dumps([{"dst": "203.0.113.200", "dev": "cjdns0", "prefsrc": "10.98.0.2"}]), ""),
    ("ip", "-j", "-4", "route", "get", "198.51.100.1"): (
        2, "", "RTNETLINK answers: Network is unreachable\n"),
    ("systemctl", "show", "-p", "Id"): (
        0, "Id=meshfleet-gw-failover.service\nActiveState=active\n\n"
           "Id=nothere.service\nActiveState=inactive\n", ""),
    ("nft", "list", "table", "inet", "meshfleet"): (0, NFT, ""),
    ("nft", "list", "table", "inet", "other"): (1, "", "Error: No such file or directory\n"),
    ("ip", "-j", "link", "show", "dev", "wan"): (0, json.dumps([{"operstate": "UP"}]), ""),
    ("ip", "-j", "-4", "route", "show", "default", "dev", "wan"): (
        0, json.dumps(ROUTES[:1]), ""),
    ("ping",): (0, "64 bytes from 203.0.113.100: icmp_seq=1 ttl=64 time=0.081 ms\n", ""),
    ("ip", "-j", "addr", "show", "dev", "cjdns0"): (
        0, json.dumps([{"operstate": "UNKNOWN", "addr_info": [
            {"local": "10.98.0.2", "prefixlen": 32, "scope": "global"}]}]), ""),
}


def fake_run_command(self, argv, **_kwargs):
    for prefix, answer in COMMANDS.items():
        if tuple(argv[:len(prefix)]) == prefix:
            return answer
    return 127, "", "%s: not found" % argv[0]


@pytest.fixture(name="node")
def node_fixture(tmp_path, monkeypatch):
    conf = {
        "publicKey": VECTORS[0]["public_key"], "ipv6": VECTORS[0]["ipv6"],
        "privateKey": VECTORS[0]["private_key"],
        "admin": {"bind": "127.0.0.1:11234", "password": ADMIN_PASSWORD},
        "router": {"ipTunnel": {
            "allowedConnections": [{"publicKey": VECTORS[1]["public_key"],
                                    "ip4Address": "10.98.0.2", "ip4Prefix": 0, "ip4Alloc": 32}],
            "outgoingConnections": [VECTORS[2]["public_key"]]}},
    }
    path = tmp_path / "cjdroute.conf"
    path.write_text(json.dumps(conf))
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"active": "rs-gw", "active_address": "10.98.0.2"}))
    monkeypatch.setattr(AnsibleModule, "run_command", fake_run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: name)
    return path, state


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        fleet_status.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def test_default_output_is_unchanged(node, capsys):
    result, _out = run(capsys, config_path=str(node[0]))
    assert result["changed"] is False
    assert set(result["status"]) == {"cjdns", "node", "peers", "tunnels", "stations", "links"}


def test_diagnosis_reads_only_when_asked_and_nothing_secret(node, capsys):
    result, out = run(
        capsys, config_path=str(node[0]), interfaces=["cjdns0"], routes=True,
        route_to=["203.0.113.200", "198.51.100.1"],
        units=["meshfleet-gw-failover.service", "nothere.service"],
        sysctls=["kernel.ostype", "net.nothing.here"], nft_table="meshfleet",
        tunnel_config=True, failover_state=str(node[1]),
        uplink={"interface": "wan"})
    status = result["status"]
    assert result["changed"] is False
    assert status["interfaces"] == [
        {"interface": "cjdns0", "state": "UNKNOWN", "addresses": ["10.98.0.2/32"]}]
    assert status["routes"][1] == {"dst": "0.0.0.0/1", "dev": "cjdns0", "gateway": None,
                                   "prefsrc": "10.98.0.2", "protocol": "52", "scope": "link"}
    assert status["route_to"][0] == {"target": "203.0.113.200", "dev": "cjdns0",
                                     "src": "10.98.0.2", "gateway": None, "error": None}
    assert status["route_to"][1]["error"] == "RTNETLINK answers: Network is unreachable"
    assert status["units"] == {"meshfleet-gw-failover.service": "active",
                               "nothere.service": "inactive"}
    assert status["sysctls"] == {"kernel.ostype": "Linux", "net.nothing.here": None}
    assert status["nft"]["present"] and status["nft"]["chains"]["postrouting"] == [
        'oifname "wan" ip saddr 10.98.0.0/24 masquerade comment "gateway"']
    assert status["tunnel_config"] == {
        "allowed": [{"publicKey": VECTORS[1]["public_key"], "ip4Address": "10.98.0.2",
                     "ip4Prefix": 0, "ip4Alloc": 32}],
        "outgoing": [VECTORS[2]["public_key"]]}
    assert status["failover"]["active"] == "rs-gw"
    assert status["uplink"] == {
        "interface": "wan", "state": "UP", "default_gateway": "203.0.113.100",
        "default_route": True, "error": None,
        "probes": [{"target": "203.0.113.100", "ok": True, "rtt_ms": 0.081, "error": None}]}
    assert ADMIN_PASSWORD not in out and VECTORS[0]["private_key"] not in out


def test_a_missing_table_is_reported_not_failed(node, capsys):
    result, _out = run(capsys, config_path=str(node[0]), nft_table="other")
    assert result["status"]["nft"] == {"table": "inet other", "present": False, "chains": {},
                                       "error": "Error: No such file or directory"}


def test_parsers():
    assert parse_nft_table(NFT)["forward"] == [
        'iifname "cjdns0" oifname "wan" ip saddr 10.98.0.0/24 accept comment "gateway"']
    assert parse_units("Id=a.service\nActiveState=failed\n\nId=b.service\nActiveState=active") \
        == {"a.service": "failed", "b.service": "active"}
    assert parse_ping("64 bytes from 1.2.3.4: icmp_seq=1 ttl=64 time=12.5 ms") == 12.5
    assert parse_ping("1 packets transmitted, 0 received") is None
    assert parse_routes([{"dst": "default", "dev": "wan", "protocol": 4}])[0]["protocol"] == "4"
