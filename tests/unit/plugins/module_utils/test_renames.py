"""Old names keep working until 0.2.0: the table of renames, and the planners that read
group names (a host in the deprecated group mesh_point is a mesh point)."""

import copy

from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import build_report
from ansible_collections.meshfleet.mesh.plugins.module_utils.monitoring import scrape_targets
from ansible_collections.meshfleet.mesh.plugins.module_utils.renames import (
    REMOVAL_VERSION,
    RENAMED,
    canonical_groups,
    message,
)
from keyvectors import VECTORS


def test_the_renames_of_issue_16():
    assert RENAMED == {
        ("group", "mesh_point"): "mesh_points",
        ("variable", "mesh_point_device"): "mesh_point_mesh_interface",
        ("variable", "cjdns_tun_device"): "cjdns_tun_interface",
        ("test", "cjdns_public_key"): "valid_cjdns_public_key",
        ("test", "cjdns_private_key"): "valid_cjdns_private_key",
    }
    assert REMOVAL_VERSION == "0.2.0"
    assert message("group", "mesh_point") == (
        "The inventory group mesh_point is renamed mesh_points: put its hosts in mesh_points."
    )
    assert message("variable", "cjdns_tun_device") == (
        "The variable cjdns_tun_device is renamed cjdns_tun_interface: "
        "set cjdns_tun_interface instead."
    )


def test_canonical_groups_maps_the_old_group_and_keeps_order_without_duplicates():
    assert canonical_groups(["mesh_nodes", "mesh_point", "hood_a"]) == [
        "mesh_nodes",
        "mesh_points",
        "hood_a",
    ]
    assert canonical_groups(["mesh_point", "mesh_points", "gateways"]) == [
        "mesh_points",
        "gateways",
    ]
    assert canonical_groups(None) == []


REGISTRY = {
    h: {"public_key": VECTORS[i]["public_key"], "ipv6": VECTORS[i]["ipv6"]}
    for i, h in enumerate(["old", "new", "gw"])
}


def test_monitoring_labels_a_host_of_either_group_as_a_mesh_point():
    nodes = {
        "old": ["mesh_nodes", "hood_a", "mesh_point"],
        "new": ["mesh_nodes", "hood_a", "mesh_points", "gateways"],
        "gw": ["mesh_nodes", "hood_a", "gateways"],
    }
    roles = {
        t["labels"]["node"]: t["labels"]["roles"] for t in scrape_targets(nodes, REGISTRY, 9100)
    }
    assert roles == {"old": "mesh_points", "new": "gateways,mesh_points", "gw": "gateways"}


def _radio_node(groups):
    key = REGISTRY["old"]
    return {
        "cjdns": {"version": "cjdns-v21.1", "active": True, "uptime_s": 1, "error": None},
        "node": {"public_key": key["public_key"], "ipv6": key["ipv6"]},
        "peers": [],
        "tunnels": [],
        "stations": [],
        "links": [],
    }


def test_fleet_status_treats_the_old_group_as_mesh_points():
    expected = {
        "nodes": {},
        "peers": {},
        "gateways": {},
        "links": [],
        "registry": {"old": REGISTRY["old"]},
    }
    for groups in (["mesh_nodes", "mesh_point", "hood_a"], ["mesh_nodes", "mesh_points", "hood_a"]):
        exp = copy.deepcopy(expected)
        exp["nodes"]["old"] = {"groups": groups, "hood": "hood_a"}
        report = build_report(exp, {"old": _radio_node(groups)})
        assert report["nodes"]["old"]["roles"] == ["mesh_points"]
        # A mesh point without an 802.11s neighbour is a problem, whichever group named it.
        assert "old: no 802.11s neighbour in its mesh" in report["problems"]
