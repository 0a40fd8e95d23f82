# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the monitoring role puts on one host, from plain data (the planner of the role).

``plan()`` takes the host's name, the monitoring servers, every node's groups, the key
registry and the role's settings, and returns either problems (sentences naming the
variable, the host and the fix) or everything the templates need: the exporter's listen
address, who may scrape it, the names the cjdns collector gives to keys, the client's
gateways, and on a server Prometheus' scrape targets with their labels.
"""

from __future__ import annotations

import re

from ansible_collections.meshfleet.mesh.plugins.module_utils.client import gateway_names
from ansible_collections.meshfleet.mesh.plugins.module_utils.renames import canonical_groups

# A Prometheus duration as the role's options take them: 30s, 1m, 2h, 30d, 1h30m.
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
ROLES = ("gateways", "clients", "bridges", "mesh_points")


def _hood(groups):
    return next((g for g in sorted(groups or []) if g.startswith("hood_")), "")


def check(host, servers, nodes, registry, settings):
    """Problems with the inputs, as sentences; empty when all is well."""
    problems = []
    if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
        return ["monitoring_servers of %s must be a list of host names (got %r)" % (host, servers)]
    for server in servers:
        if server not in nodes:
            problems.append(
                "monitoring_servers of %s names %s, which is not a host of group mesh_nodes: "
                "Prometheus scrapes over cjdns, so the monitoring host must be a mesh node "
                "(add it to mesh_nodes, or fix the name)" % (host, server)
            )
        elif server not in registry:
            problems.append(
                "monitoring server %s has no entry in the key registry: run site.yml "
                "(the cjdns role records every node's key) before the monitoring role" % server
            )
    if servers and host not in registry:
        problems.append(
            "%s has no entry in the key registry, so its exporter has no cjdns address to "
            "listen on: run the cjdns role on it first" % host
        )
    port = settings.get("exporter_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.append(
            "monitoring_exporter_port of %s must be a TCP port, 1 to 65535 (got %r)" % (host, port)
        )
    interval = settings.get("collect_interval")
    if not isinstance(interval, int) or isinstance(interval, bool) or not 5 <= interval <= 300:
        problems.append(
            "monitoring_collect_interval of %s must be 5 to 300 seconds (got %r)" % (host, interval)
        )
    for name in (
        "scrape_interval",
        "retention",
        "alert_node_silent_for",
        "alert_no_tunnel_for",
        "alert_uplink_down_for",
    ):
        value = settings.get(name)
        if not isinstance(value, str) or not DURATION.match(value):
            problems.append(
                "monitoring_%s of %s must be a Prometheus duration such as 15s, 1m or 30d "
                "(got %r)" % (name, host, value)
            )
    return problems


def scrape_targets(nodes, registry, port):
    """Prometheus static_configs: one per node that has a cjdns address, labelled with
    its name, neighbourhood and roles."""
    out = []
    for host in sorted(nodes):
        entry = registry.get(host) or {}
        if not entry.get("ipv6"):
            continue
        groups = canonical_groups(nodes[host])  # the deprecated group mesh_point is mesh_points
        out.append(
            {
                "targets": ["[%s]:%d" % (entry["ipv6"], port)],
                "labels": {
                    "node": host,
                    "neighbourhood": _hood(groups).replace("hood_", "", 1),
                    "roles": ",".join(r for r in ROLES if r in groups),
                },
            }
        )
    return out


def plan(host, servers, nodes, registry, settings, gateways=None, uplink=""):
    """The role's plan for ``host``.

    nodes: {host: group_names} of every mesh node; registry: {host: {public_key, ipv6}};
    settings: the role's options without the ``monitoring_`` prefix; gateways: the
    host's client_gateways when it is a client; uplink: its uplink interface when it is a
    gateway.
    """
    problems = check(host, servers, nodes, registry, settings)
    if problems or not servers:
        return {"enabled": False, "problems": problems}
    names = gateway_names(gateways)
    return {
        "enabled": True,
        "problems": [],
        "server": host in servers,
        "address": registry[host]["ipv6"],
        "scrapers": sorted(registry[s]["ipv6"] for s in servers),
        "names": {e["public_key"]: h for h, e in sorted(registry.items()) if e.get("public_key")},
        "gateways": {g: registry[g]["public_key"] for g in names if g in registry},
        "uplink": uplink or "",
        "targets": scrape_targets(nodes, registry, settings["exporter_port"])
        if host in servers
        else [],
    }
