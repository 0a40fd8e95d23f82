"""Metrics over the mesh (roles/monitoring) on the lab fleet: every node's exporter on its
cjdns address only, Prometheus on the monitoring host scraping all of them over cjdns,
alert rules checked by promtool, and an alert that fires when a gateway's cjdns stops.

It runs once (docker exec on the lab's containers), and leaves the fleet as it found it:
the gateway it stops is started again and every tunnel is back before it returns."""

import ipaddress
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from meshtest import REAL_REASON, real_daemon, wait_for

ROOT = Path(__file__).resolve().parents[3]
HOSTS = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())["all"]["children"]
SERVER = next(iter(HOSTS["monitoring"]["hosts"]))
# A gateway that is a client too (rs-ben): stopping it exercises both kinds of series.
STOPPED = "rs-ben"
ALERT_WITHIN = 120
MEASURED = ROOT / ".build" / "measurements"


def mesh_nodes():
    nodes = set()
    for hood in HOSTS["mesh_nodes"]["children"].values():
        nodes |= set(hood["hosts"])
    return nodes


def sh(host, command, check=True, timeout=60):
    proc = subprocess.run(
        ["docker", "exec", host, "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert proc.returncode == 0, "%s: %s -> %s %s" % (host, command, proc.stdout, proc.stderr)
    return proc


def address(host):
    return json.loads(sh(host, "cat /etc/cjdns/cjdroute.conf").stdout)["ipv6"]


def query(expr):
    """Prometheus' instant query, on the monitoring host: {node: value} (with a gateway
    label, {(node, gateway): value})."""
    out = sh(
        SERVER,
        "curl -sfG http://localhost:9090/api/v1/query --data-urlencode 'query=%s'" % expr,
        check=False,
    ).stdout
    try:
        result = json.loads(out)["data"]["result"]
    except (ValueError, KeyError):
        return {}
    return {
        (r["metric"].get("node"), r["metric"]["gateway"])
        if "gateway" in r["metric"]
        else r["metric"].get("node"): float(r["value"][1])
        for r in result
    }


def firing(alert, node):
    out = sh(SERVER, "curl -sf http://localhost:9090/api/v1/alerts", check=False).stdout
    try:
        alerts = json.loads(out)["data"]["alerts"]
    except (ValueError, KeyError):
        return False
    return any(
        a["labels"].get("alertname") == alert
        and a["labels"].get("node") == node
        and a["state"] == "firing"
        for a in alerts
    )


def declared_tunnels():
    tunnels = set()
    group_vars = ROOT / "inventories/lab/group_vars"
    for hood, node in HOSTS["mesh_nodes"]["children"].items():
        gateways = yaml.safe_load((group_vars / (hood + ".yml")).read_text())["client_gateways"]
        for host in node["hosts"]:
            if host not in HOSTS["clients"]["hosts"]:
                continue
            extra = ROOT / "inventories/lab/host_vars" / (host + ".yml")
            mine = (yaml.safe_load(extra.read_text()) if extra.exists() else {}) or {}
            tunnels |= {(host, g) for g in mine.get("client_gateways", gateways)}
    return tunnels


def all_tunnels_up():
    seen = query("meshfleet_cjdns_tunnel_up")
    return set(seen) == declared_tunnels() and all(v == 1 for v in seen.values())


def test_alert_rules_and_config_pass_promtool():
    out = sh(SERVER, "promtool check config /etc/prometheus/prometheus.yml").stdout
    assert "SUCCESS" in out and "4 rules found" in out, out


def test_exporter_listens_on_the_cjdns_address_only():
    for host in sorted(mesh_nodes()):
        listening = sh(host, "ss -Hltn 'sport = :9100' | awk '{print $4}'").stdout.split()
        want = ipaddress.ip_address(address(host))
        assert [
            (ipaddress.ip_address(a.rpartition(":")[0].strip("[]")), a.rpartition(":")[2])
            for a in listening
        ] == [(want, "9100")], (host, listening)


@pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
def test_only_the_monitoring_host_may_scrape():
    target = "http://[%s]:9100/metrics" % address("rs-gw")
    scraped = sh(SERVER, "curl -sf -m 10 %s" % target, check=False)
    assert scraped.returncode == 0 and "meshfleet_cjdns_up 1" in scraped.stdout, scraped.stderr
    assert 'meshfleet_gateway_uplink_up{interface="wan"} 1' in scraped.stdout
    refused = sh("rs-ana", "curl -sf -m 5 %s" % target, check=False)
    assert refused.returncode != 0, "rs-ana (not a monitoring host) could scrape rs-gw"


@pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
def test_prometheus_has_every_nodes_figures_over_cjdns():
    nodes = mesh_nodes()

    def every_node(expr, good=lambda value: True):
        seen = query(expr)
        return seen if set(seen) == nodes and all(good(v) for v in seen.values()) else None

    up = wait_for(lambda: every_node('up{job="meshfleet"}', lambda v: v == 1), 90, 3)
    assert up, "nodes up in Prometheus: %s, want all of %s" % (
        query('up{job="meshfleet"}'),
        sorted(nodes),
    )
    peers = wait_for(lambda: every_node('meshfleet_cjdns_peers{state="ESTABLISHED"}'), 60, 3)
    assert peers and all(v >= 1 for v in peers.values()), peers
    assert wait_for(all_tunnels_up, 60, 3), query("meshfleet_cjdns_tunnel_up")
    uplinks = query("meshfleet_gateway_uplink_up")
    assert uplinks == {g: 1.0 for g in HOSTS["gateways"]["hosts"]}, uplinks


@pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
def test_a_stopped_gateway_fires_its_alert_within_two_minutes():
    assert wait_for(lambda: query('up{job="meshfleet"}').get(STOPPED) == 1, 60, 3)
    sh(STOPPED, "systemctl stop cjdns")
    started = time.monotonic()
    try:
        fired = wait_for(lambda: firing("MeshNodeSilent", STOPPED), ALERT_WITHIN + 30, 5)
        took = time.monotonic() - started
    finally:
        sh(STOPPED, "systemctl start cjdns")
    MEASURED.mkdir(parents=True, exist_ok=True)
    (MEASURED / "monitoring-alert.json").write_text(
        json.dumps(
            {
                "alert": "MeshNodeSilent",
                "node": STOPPED,
                "fired": bool(fired),
                "seconds": round(took, 1),
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        + "\n"
    )
    assert fired and took <= ALERT_WITHIN, "MeshNodeSilent for %s after %.0f s (want <= %d)" % (
        STOPPED,
        took,
        ALERT_WITHIN,
    )
    # Leave the fleet as found: the gateway answers again and every tunnel is back.
    assert wait_for(lambda: query('up{job="meshfleet"}').get(STOPPED) == 1, 120, 3)
    assert wait_for(all_tunnels_up, 180, 5), query("meshfleet_cjdns_tunnel_up")
    assert wait_for(lambda: not firing("MeshNodeSilent", STOPPED), 60, 5)


def test_grafana_dashboard_reads_the_published_series():
    dashboard = json.loads((ROOT / "roles/monitoring/files/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    published = sh("rs-gw", "cat /var/lib/prometheus/node-exporter/meshfleet_cjdns.prom").stdout
    names = {line.split()[2] for line in published.splitlines() if line.startswith("# TYPE")}
    used = {name for name in names if any(name in e for e in exprs)}
    assert used == names, sorted(names - used)
