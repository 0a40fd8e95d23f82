"""playbooks/status.yml on the lab fleet: one read-only pass (at most 3 module executions
per node, nothing changed) whose report and map match the inventory's topology."""

import html
import json
from pathlib import Path

import pytest
import yaml
from meshtest import lab_playbook, real_daemon

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab"
HOSTS = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]
BUDGET = 3


def members(group):
    def walk(node):
        found = set((node or {}).get("hosts") or {})
        for child in ((node or {}).get("children") or {}).values():
            found |= walk(child)
        return found

    def find(tree, name):
        for key, node in (tree or {}).items():
            if key == name:
                return node
            hit = find((node or {}).get("children"), name)
            if hit is not None:
                return hit
        return None

    return walk(find(HOSTS, group))


def declared_edges():
    """(kind, a, b) the inventory declares: UDP peers of each neighbourhood, the bridge
    link, and each client's tunnels to its gateways."""
    edges = set()
    for hood in ("hood_riverside", "hood_hilltop"):
        # group_vars: cjdns_peers = [gateway, bridge] minus the host itself
        hood_vars = (INVENTORY / "group_vars" / (hood + ".yml")).read_text()
        anchors = [h for h in sorted(members(hood)) if "'%s'" % h in hood_vars]
        for host in members(hood):
            for other in anchors:
                if other != host:
                    edges.add(("udp",) + tuple(sorted((host, other))))
    edges.add(("link", "ht-bridge", "rs-bridge"))
    for client in members("clients"):
        hood = "hood_riverside" if client in members("hood_riverside") else "hood_hilltop"
        gateways = yaml.safe_load((INVENTORY / "group_vars" / (hood + ".yml")).read_text())[
            "client_gateways"
        ]
        extra = INVENTORY / "host_vars" / (client + ".yml")
        if extra.exists():
            gateways = yaml.safe_load(extra.read_text()).get("client_gateways", gateways)
        for gateway in gateways:
            edges.add(("tunnel", client, gateway))
    return edges


@pytest.fixture(scope="module")
def status(tmp_path_factory):
    out = tmp_path_factory.mktemp("status")
    proc = lab_playbook(
        "status.yml", "-e", "status_report_dir=%s" % out, budget=out / "budget.json"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return (
        out,
        json.loads((out / "status.json").read_text()),
        json.loads((out / "budget.json").read_text()),
    )


def test_status_is_read_only_within_its_module_budget(status):
    budget = status[2]
    nodes = {h: v for h, v in budget["hosts"].items() if h in members("mesh_nodes")}
    assert set(nodes) == members("mesh_nodes")
    assert {h: v["changed"] for h, v in nodes.items() if v["changed"]} == {}
    over = {h: v["modules"] for h, v in nodes.items() if v["modules"] > BUDGET}
    assert over == {}, "over %d module executions: %s" % (BUDGET, over)


def test_report_lists_every_node_with_its_neighbourhood_and_roles(status):
    report = status[1]
    assert report["schema"] == 1
    assert set(report["nodes"]) == members("mesh_nodes")
    for host, node in report["nodes"].items():
        assert node["reachable"] and node["active"], host
        assert node["hood"] == (
            "hood_riverside" if host in members("hood_riverside") else "hood_hilltop"
        )
        for role in ("gateways", "clients", "bridges"):
            assert (role in node["roles"]) == (host in members(role)), (host, role)


def test_map_edges_match_the_inventory(status):
    out, report = status[0], status[1]
    edges = {(e["kind"], e["a"], e["b"]) for e in report["edges"] if e["declared"]}
    assert edges == declared_edges()
    if real_daemon():
        down = [e for e in report["edges"] if e["declared"] and not e["up"]]
        assert down == [] and report["problems"] == []
    svg = html.unescape((out / "map.svg").read_text())  # Graphviz writes "-" as &#45;
    for host in members("mesh_nodes"):
        assert ">%s<" % host in svg
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "# Fleet status" in (out / "status.md").read_text()
