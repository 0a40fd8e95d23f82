"""The fleet status report: what nodes report against what the inventory declares."""

import json

from ansible_collections.meshfleet.mesh.plugins.filter.fleet import fleet_status_report
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    build_report,
    parse_peer,
    parse_station_dump,
    render_dot,
    render_markdown,
)
from keyvectors import VECTORS

KEYS = {name: VECTORS[i] for i, name in enumerate(["gw", "ann", "bob", "br-a", "br-b"])}


def peer(name, state="ESTABLISHED", nbytes=1000):
    return {
        "public_key": KEYS[name]["public_key"],
        "state": state,
        "bytes_in": nbytes,
        "bytes_out": nbytes,
        "address": "10.0.0.1:41300",
    }


def status(name, peers=(), tunnels=(), active=True, links=()):
    return {
        "cjdns": {"version": "cjdns-v21.1", "active": active, "uptime_s": 3700, "error": None},
        "node": {"public_key": KEYS[name]["public_key"], "ipv6": KEYS[name]["ipv6"]},
        "peers": list(peers),
        "tunnels": list(tunnels),
        "stations": [],
        "links": list(links),
    }


EXPECTED = {
    "nodes": {
        "gw": {"groups": ["mesh_nodes", "gateways", "hood_a"], "hood": "hood_a"},
        "ann": {"groups": ["mesh_nodes", "clients", "hood_a"], "hood": "hood_a"},
        "bob": {"groups": ["mesh_nodes", "clients", "hood_a"], "hood": "hood_a"},
        "br-a": {"groups": ["mesh_nodes", "bridges", "hood_a"], "hood": "hood_a"},
        "br-b": {"groups": ["mesh_nodes", "bridges", "hood_b"], "hood": "hood_b"},
    },
    "peers": {"ann": ["gw"], "bob": ["gw"], "br-a": ["gw"]},
    "gateways": {"ann": ["gw"], "bob": ["gw"]},
    "links": [{"name": "a-b", "ends": ["br-a", "br-b"]}],
    "registry": {
        name: {"public_key": k["public_key"], "ipv6": k["ipv6"]} for name, k in KEYS.items()
    },
}


def healthy():
    tunnel_ann = {
        "public_key": KEYS["gw"]["public_key"],
        "outgoing": True,
        "ip4": "10.99.0.2",
        "ip6": None,
    }
    return {
        "gw": status("gw", [peer("ann"), peer("bob"), peer("br-a")]),
        "ann": status("ann", [peer("gw")], [tunnel_ann]),
        "bob": status("bob", [peer("gw")], [dict(tunnel_ann, ip4="10.99.0.3")]),
        "br-a": status(
            "br-a",
            [peer("gw"), peer("br-b")],
            links=[{"interface": "eth1", "state": "UP", "addresses": ["fd00::1/64"]}],
        ),
        "br-b": status(
            "br-b",
            [peer("br-a")],
            links=[{"interface": "eth1", "state": "UP", "addresses": ["fd00::2/64"]}],
        ),
    }


def edge(report, kind, a, b):
    (found,) = [e for e in report["edges"] if e["kind"] == kind and {e["a"], e["b"]} == {a, b}]
    return found


def test_a_healthy_fleet_has_no_problems_and_every_declared_edge_up():
    report = build_report(EXPECTED, healthy())
    assert report["problems"] == []
    kinds = sorted((e["kind"], e["a"], e["b"]) for e in report["edges"])
    assert kinds == [
        ("link", "br-a", "br-b"),
        ("tunnel", "ann", "gw"),
        ("tunnel", "bob", "gw"),
        ("udp", "ann", "gw"),
        ("udp", "bob", "gw"),
        ("udp", "br-a", "gw"),
    ]
    assert all(e["up"] and e["declared"] for e in report["edges"])
    assert edge(report, "tunnel", "ann", "gw")["label"] == "10.99.0.2"
    assert edge(report, "link", "br-a", "br-b")["label"].startswith("a-b: ESTABLISHED")
    json.dumps(report)  # status.json


def test_unreachable_node_down_peer_and_missing_tunnel_are_problems_unreachable_first():
    statuses = healthy()
    statuses["bob"] = {"unreachable": "ssh: connect timed out"}
    statuses["gw"]["peers"][0]["state"] = "UNRESPONSIVE"  # gw sees ann unresponsive
    statuses["ann"]["tunnels"] = []
    report = build_report(EXPECTED, statuses)
    assert report["problems"][0] == "bob is unreachable (ssh: connect timed out)"
    assert any(p.startswith("UDP peering ann - gw is down") for p in report["problems"])
    assert "tunnel ann -> gw is not up (no tunnel)" in report["problems"]
    assert not edge(report, "udp", "ann", "gw")["up"]
    # bob cannot speak for itself, but gw still lists bob as ESTABLISHED
    assert edge(report, "udp", "bob", "gw")["up"]
    assert edge(report, "tunnel", "bob", "gw")["label"] == "client unreachable"
    assert report["nodes"]["bob"]["reachable"] is False
    assert "| bob | hood_a | clients | UNREACHABLE |" in render_markdown(report)


def test_daemon_down_and_link_port_down_are_named():
    statuses = healthy()
    statuses["br-b"]["cjdns"]["active"] = False
    statuses["br-b"]["peers"] = []
    statuses["br-a"]["links"][0]["state"] = "DOWN"
    report = build_report(EXPECTED, statuses)
    assert "br-b: cjdns is not running" in report["problems"]
    assert "br-a: bridge link port eth1 is DOWN" in report["problems"]
    assert not edge(report, "link", "br-a", "br-b")["up"]


def test_undeclared_peering_is_drawn_but_not_a_problem():
    statuses = healthy()
    statuses["ann"]["peers"].append(peer("bob"))
    report = build_report(EXPECTED, statuses)
    extra = edge(report, "udp", "ann", "bob")
    assert extra["declared"] is False and report["problems"] == []


def test_map_clusters_shapes_and_red_for_down():
    statuses = healthy()
    statuses["ann"]["tunnels"] = []
    dot = render_dot(build_report(EXPECTED, statuses))
    assert 'subgraph "cluster_hood_a"' in dot and 'subgraph "cluster_hood_b"' in dot
    assert '"gw" [shape=doubleoctagon' in dot and '"br-a" [shape=hexagon' in dot
    tunnel = [
        line for line in dot.splitlines() if line.startswith('  "ann" -> "gw"') and "dashed" in line
    ]
    assert tunnel and "color=red" in tunnel[0] and "dir=none" not in tunnel[0]
    link = [line for line in dot.splitlines() if '"br-a" -> "br-b"' in line]
    assert link and "bold" in link[0] and "color=red" not in link[0]


def test_filter_takes_registered_results_and_treats_failures_as_unreachable():
    results = {host: {"changed": False, "status": s} for host, s in healthy().items()}
    results["bob"] = {"unreachable": True, "msg": "Failed to connect to the host via ssh\nmore"}
    results["ann"] = {"failed": True, "msg": "python not found"}
    groups = {host: node["groups"] for host, node in EXPECTED["nodes"].items()}
    out = fleet_status_report(
        results,
        groups,
        peers=EXPECTED["peers"],
        gateways=EXPECTED["gateways"],
        links=[
            {
                "name": "a-b",
                "ends": [
                    {"host": "br-a", "interface": "eth1"},
                    {"host": "br-b", "interface": "eth1"},
                ],
            }
        ],
        registry=EXPECTED["registry"],
    )
    nodes = out["report"]["nodes"]
    assert nodes["bob"]["problem"] == "unreachable: Failed to connect to the host via ssh"
    assert nodes["ann"]["problem"] == "unreachable: status failed: python not found"
    assert nodes["gw"]["hood"] == "hood_a" and out["markdown"].startswith("# Fleet status")
    assert out["dot"].startswith("digraph fleet {")


def test_peer_and_station_parsing():
    key = KEYS["gw"]["public_key"]
    parsed = parse_peer(
        {
            "addr": "v21.0000.0000.0000.0013." + key,
            "state": "ESTABLISHED",
            "bytesIn": 10,
            "bytesOut": 20,
            "lladdr": "10.0.0.2:41300",
        }
    )
    assert parsed == {
        "public_key": key,
        "state": "ESTABLISHED",
        "bytes_in": 10,
        "bytes_out": 20,
        "address": "10.0.0.2:41300",
    }
    dump = (
        "Station 02:00:00:00:01:00 (on mesh0)\n\tinactive time:\t10 ms\n"
        "\tsignal:  \t-41 [-41] dBm\n"
        "\tmesh plink:\tESTAB\nStation 02:00:00:00:02:00 (on mesh0)\n\tsignal:  \t-70 dBm\n"
        "\tmesh plink:\tLISTEN\n"
    )
    assert parse_station_dump("mesh0", dump) == [
        {
            "interface": "mesh0",
            "mac": "02:00:00:00:01:00",
            "signal_dbm": -41,
            "plink_state": "ESTAB",
        },
        {
            "interface": "mesh0",
            "mac": "02:00:00:00:02:00",
            "signal_dbm": -70,
            "plink_state": "LISTEN",
        },
    ]
