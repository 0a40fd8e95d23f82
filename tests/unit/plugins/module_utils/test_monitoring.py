"""The monitoring role's planner: problems as sentences, or what each host gets."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.monitoring import monitoring_plan
from ansible_collections.meshfleet.mesh.plugins.module_utils.monitoring import (
    check,
    plan,
    scrape_targets,
)
from keyvectors import VECTORS

HOSTS = ["gw", "ann", "bob", "prom"]
REGISTRY = {
    h: {"public_key": VECTORS[i]["public_key"], "ipv6": VECTORS[i]["ipv6"]}
    for i, h in enumerate(HOSTS)
}
NODES = {
    "gw": ["mesh_nodes", "hood_river", "gateways"],
    "ann": ["mesh_nodes", "hood_river", "clients"],
    "bob": ["mesh_nodes", "hood_hill", "clients", "bridges"],
    "prom": ["mesh_nodes", "hood_hill", "monitoring"],
}
SETTINGS = {
    "exporter_port": 9100,
    "collect_interval": 15,
    "scrape_interval": "15s",
    "retention": "30d",
    "alert_node_silent_for": "1m",
    "alert_no_tunnel_for": "2m",
    "alert_uplink_down_for": "1m",
}


def test_no_server_means_nothing_to_do():
    assert plan("ann", [], NODES, {}, SETTINGS) == {"enabled": False, "problems": []}


def test_client_gets_its_gateways_by_key_and_the_scrapers():
    got = plan("ann", ["prom"], NODES, REGISTRY, SETTINGS, gateways="gw, bob")
    assert got["enabled"] and not got["server"] and got["problems"] == []
    assert got["address"] == REGISTRY["ann"]["ipv6"]
    assert got["scrapers"] == [REGISTRY["prom"]["ipv6"]]
    assert got["gateways"] == {
        "gw": REGISTRY["gw"]["public_key"],
        "bob": REGISTRY["bob"]["public_key"],
    }
    assert got["names"][REGISTRY["gw"]["public_key"]] == "gw"
    assert got["targets"] == []


def test_server_scrapes_every_node_at_its_cjdns_address_with_labels():
    got = plan("prom", ["prom"], NODES, REGISTRY, SETTINGS)
    assert got["server"]
    by_node = {t["labels"]["node"]: t for t in got["targets"]}
    assert sorted(by_node) == sorted(HOSTS)
    assert by_node["gw"]["targets"] == ["[%s]:9100" % REGISTRY["gw"]["ipv6"]]
    assert by_node["bob"]["labels"] == {
        "node": "bob",
        "neighbourhood": "hill",
        "roles": "clients,bridges",
    }


def test_a_node_not_yet_in_the_registry_is_not_a_target():
    registry = {h: v for h, v in REGISTRY.items() if h != "bob"}
    assert [t["labels"]["node"] for t in scrape_targets(NODES, registry, 9100)] == [
        "ann",
        "gw",
        "prom",
    ]


@pytest.mark.parametrize(
    "servers, settings, registry, culprit",
    [
        (["prometheus"], {}, REGISTRY, "monitoring_servers of ann names prometheus"),
        ("prom", {}, REGISTRY, "monitoring_servers of ann must be a list"),
        (
            ["prom"],
            {},
            {h: v for h, v in REGISTRY.items() if h != "prom"},
            "monitoring server prom has no entry",
        ),
        (
            ["prom"],
            {},
            {h: v for h, v in REGISTRY.items() if h != "ann"},
            "ann has no entry in the key registry",
        ),
        (["prom"], {"exporter_port": 70000}, REGISTRY, "monitoring_exporter_port of ann"),
        (["prom"], {"exporter_port": "9100"}, REGISTRY, "monitoring_exporter_port of ann"),
        (["prom"], {"collect_interval": 1}, REGISTRY, "monitoring_collect_interval of ann"),
        (
            ["prom"],
            {"scrape_interval": "15 seconds"},
            REGISTRY,
            "monitoring_scrape_interval of ann",
        ),
        (["prom"], {"retention": ""}, REGISTRY, "monitoring_retention of ann"),
        (
            ["prom"],
            {"alert_node_silent_for": "soon"},
            REGISTRY,
            "monitoring_alert_node_silent_for of ann",
        ),
    ],
)
def test_bad_input_is_one_sentence_naming_variable_and_host(servers, settings, registry, culprit):
    got = plan("ann", servers, NODES, registry, dict(SETTINGS, **settings))
    assert not got["enabled"]
    assert any(culprit in p for p in got["problems"]), got["problems"]


def test_good_input_has_no_problems():
    assert check("ann", ["prom"], NODES, REGISTRY, SETTINGS) == []


def test_filter_refuses_wrong_shapes():
    with pytest.raises(AnsibleFilterError):
        monitoring_plan("ann", ["prom"], ["not", "a", "mapping"], REGISTRY, SETTINGS)
    assert monitoring_plan("ann", ["prom"], NODES, REGISTRY, SETTINGS)["enabled"]
