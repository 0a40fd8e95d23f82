# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's status: what each node reports (module ``fleet_status``) compared with what
the inventory declares, as one report (``build_report``), its Markdown summary
(``render_markdown``) and a Graphviz map (``render_dot``).

Pure functions over plain data, unit tested in tests/unit/plugins/module_utils/.

The declared fleet (``expected``), built by playbooks/status.yml from the inventory::

    {"nodes": {host: {"groups": [...], "hood": "hood_x" | None}},
     "peers": {host: [host, ...]},            # cjdns_peers as each host declares them
     "gateways": {client: [gateway, ...]},    # client_gateways, in order
     "links": [{"name": ..., "ends": [host, host]}],   # bridge_links
     "registry": {host: {"public_key": ..., "ipv6": ...}}}

A node's status (the module's ``status``), or ``{"unreachable": msg}``::

    {"cjdns": {"version", "active", "uptime_s", "error"},
     "node": {"public_key", "ipv6", "machine"},
     "peers": [{"public_key", "state", "bytes_in", "bytes_out", "address"}],
     "tunnels": [{"public_key", "outgoing", "ip4", "ip6"}],
     "stations": [{"interface", "mac", "signal_dbm", "plink_state"}],
     "links": [{"interface", "state", "addresses"}]}
"""

from __future__ import annotations

import re

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_admin import peer_key
from ansible_collections.meshfleet.mesh.plugins.module_utils.renames import canonical_groups

SCHEMA_VERSION = 1
# The roles a node can have, in the order that picks its shape and colour on the map.
ROLES = ("gateways", "bridges", "mesh_points", "clients")


def status_from_result(result):
    """A registered fleet_status result -> the node's status, or {"unreachable": why}."""
    if not isinstance(result, dict) or not result:
        return {"unreachable": "no status (not in this run)"}
    if result.get("unreachable"):
        return {"unreachable": str(result.get("msg", "unreachable")).splitlines()[0][:200]}
    if result.get("failed") or "status" not in result:
        return {"unreachable": "status failed: %s" % str(result.get("msg", "?"))[:200]}
    return result["status"]


def parse_peer(peer):
    return {
        "public_key": peer_key(peer.get("addr")),
        "state": str(peer.get("state", "?")),
        "bytes_in": int(peer.get("bytesIn", 0) or 0),
        "bytes_out": int(peer.get("bytesOut", 0) or 0),
        "address": peer.get("lladdr") or peer.get("addr", ""),
    }


def parse_tunnel(conn):
    return {
        "public_key": conn.get("key"),
        "outgoing": bool(conn.get("outgoing")),
        "ip4": conn.get("ip4Address"),
        "ip6": conn.get("ip6Address"),
    }


def parse_station_dump(interface, text):
    """``iw dev IF station dump`` -> [{interface, mac, signal_dbm, plink_state}]."""
    stations, current = [], None
    for line in text.splitlines():
        head = re.match(r"^Station ([0-9a-f:]{17})", line)
        if head:
            current = {
                "interface": interface,
                "mac": head.group(1),
                "signal_dbm": None,
                "plink_state": None,
            }
            stations.append(current)
            continue
        if current is None:
            continue
        key, _sep, value = line.strip().partition(":")
        value = value.strip()
        if key == "signal":
            number = re.match(r"(-?\d+)", value)
            current["signal_dbm"] = int(number.group(1)) if number else None
        elif key == "mesh plink":
            current["plink_state"] = value
    return stations


def parse_routes(routes):
    """``ip -j -4 route show`` (decoded) -> [{dst, dev, gateway, prefsrc, protocol, scope}]."""
    return [
        {
            "dst": r.get("dst"),
            "dev": r.get("dev"),
            "gateway": r.get("gateway"),
            "prefsrc": r.get("prefsrc"),
            "protocol": str(r["protocol"]) if r.get("protocol") is not None else None,
            "scope": r.get("scope"),
        }
        for r in routes or []
        if isinstance(r, dict)
    ]


def parse_units(text):
    """``systemctl show UNIT... -p Id -p ActiveState`` -> {unit: ActiveState}."""
    out = {}
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            out[props["Id"]] = props.get("ActiveState") or "unknown"
    return out


def parse_nft_table(text):
    """``nft list table inet NAME`` -> {chain: [rule, ...]} (the chain's type/policy line
    and braces left out)."""
    chains, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        head = re.match(r"^chain (\S+) \{$", line)
        if head:
            current = chains.setdefault(head.group(1), [])
        elif line == "}":
            current = None
        elif current is not None and line and not line.startswith("type "):
            current.append(line)
    return chains


def parse_ping(text):
    """The round-trip time in ms of ``ping`` output (the first reply), or None."""
    match = re.search(r"time[=<]([0-9.]+) ?ms", text or "")
    return float(match.group(1)) if match else None


def _human(count):
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1000.0
    return str(count)


def _roles(groups):
    groups = canonical_groups(groups)  # a host of the deprecated group mesh_point is a mesh point
    return [role for role in ROLES if role in groups]


def _pair(a, b):
    return tuple(sorted((a, b)))


def build_report(expected, statuses, generated=None):
    """Compare what the nodes report with what the inventory declares.

    Returns {"schema", "generated", "nodes": {...}, "edges": [...], "problems": [...]};
    edges have kind (udp, link, mesh, tunnel), a, b (for a tunnel: client, gateway),
    declared, up, label. Problems are sentences, worst first."""
    nodes_in = expected.get("nodes", {})
    registry = expected.get("registry", {})
    key_to_host = {
        entry.get("public_key"): host for host, entry in registry.items() if entry.get("public_key")
    }
    for host, status in statuses.items():
        key = ((status or {}).get("node") or {}).get("public_key")
        if key:
            key_to_host[key] = host
    problems = []
    nodes = {}
    for host in sorted(nodes_in):
        info = nodes_in[host]
        status = statuses.get(host) or {"unreachable": "no status"}
        node = {
            "hood": info.get("hood"),
            "roles": _roles(info.get("groups", [])),
            "reachable": "unreachable" not in status,
        }
        if not node["reachable"]:
            node["problem"] = "unreachable: %s" % status["unreachable"]
            problems.append("%s is unreachable (%s)" % (host, status["unreachable"]))
        else:
            cjdns = status.get("cjdns", {})
            node.update(
                version=cjdns.get("version"),
                active=bool(cjdns.get("active")),
                uptime_s=cjdns.get("uptime_s"),
                public_key=(status.get("node") or {}).get("public_key"),
                ipv6=(status.get("node") or {}).get("ipv6"),
                machine=(status.get("node") or {}).get("machine"),
                peers=len(status.get("peers", [])),
                established=sum(1 for p in status.get("peers", []) if p["state"] == "ESTABLISHED"),
                tunnels=status.get("tunnels", []),
                stations=status.get("stations", []),
                links=status.get("links", []),
            )
            if not node["active"]:
                node["problem"] = "cjdns is not running"
                problems.append(
                    "%s: cjdns is not running%s"
                    % (host, " (%s)" % cjdns["error"] if cjdns.get("error") else "")
                )
            elif cjdns.get("error"):
                node["problem"] = cjdns["error"]
                problems.append("%s: %s" % (host, cjdns["error"]))
            for link in node["links"]:
                if link.get("state") != "UP":
                    problems.append(
                        "%s: bridge link port %s is %s"
                        % (host, link.get("interface"), link.get("state") or "missing")
                    )
        nodes[host] = node

    # Peerings: observed from each reachable node's peer table, keyed by host pair.
    observed = {}
    for host, status in statuses.items():
        if host not in nodes or not nodes[host]["reachable"]:
            continue
        for peer in status.get("peers", []):
            other = key_to_host.get(peer["public_key"])
            if other is None or other == host:
                continue
            entry = observed.setdefault(_pair(host, other), {"states": {}, "bytes": 0})
            entry["states"][host] = peer["state"]
            entry["bytes"] = max(entry["bytes"], peer["bytes_in"] + peer["bytes_out"])

    declared, link_names = {}, {}
    for host, peers in expected.get("peers", {}).items():
        for other in peers or []:
            if other in nodes and other != host:
                declared[_pair(host, other)] = "udp"
    for link in expected.get("links", []):
        ends = link.get("ends", [])
        if len(ends) == 2 and all(end in nodes for end in ends):
            declared[_pair(*ends)] = "link"
            link_names[_pair(*ends)] = link.get("name")

    edges = []
    for pair in sorted(set(declared) | set(observed)):
        kind = declared.get(pair)
        seen = observed.get(pair)
        if kind is None:
            both_mesh = all("mesh_points" in nodes[h]["roles"] for h in pair)
            same_hood = nodes[pair[0]]["hood"] == nodes[pair[1]]["hood"]
            kind = "mesh" if both_mesh and same_hood else "udp"
        # Up: every reachable end lists the other as ESTABLISHED.
        up = bool(seen) and all(
            seen["states"].get(h) == "ESTABLISHED" for h in pair if nodes[h]["reachable"]
        )
        if seen:
            states = sorted(set(seen["states"].values()))
            label = "%s, %s" % ("/".join(states), _human(seen["bytes"]))
        else:
            label = "no peering"
        if kind == "link":
            label = "%s: %s" % (link_names[pair], label)
        edge = {
            "kind": kind,
            "a": pair[0],
            "b": pair[1],
            "declared": pair in declared,
            "up": up,
            "label": label,
        }
        edges.append(edge)
        if edge["declared"] and not up:
            reachable = [h for h in pair if nodes[h]["reachable"]]
            if reachable:
                problems.append(
                    "%s peering %s - %s is down (%s)"
                    % (
                        {"udp": "UDP", "link": "bridge link"}.get(kind, kind),
                        pair[0],
                        pair[1],
                        label,
                    )
                )

    # Tunnels: each client to each gateway it names, up when the client holds an outgoing
    # connection to that gateway's key with an address.
    for client, gateways in sorted(expected.get("gateways", {}).items()):
        if client not in nodes:
            continue
        for gateway in gateways or []:
            key = (registry.get(gateway) or {}).get("public_key") or (nodes.get(gateway) or {}).get(
                "public_key"
            )
            conns = [
                t
                for t in (nodes[client].get("tunnels") or [])
                if t["outgoing"] and t["public_key"] == key
            ]
            addresses = [a for t in conns for a in (t["ip4"], t["ip6"]) if a]
            up = bool(addresses)
            if not nodes[client]["reachable"]:
                label = "client unreachable"
            elif up:
                label = ", ".join(addresses)
            elif conns:
                label = "no address issued"
            else:
                label = "no tunnel"
            edges.append(
                {
                    "kind": "tunnel",
                    "a": client,
                    "b": gateway,
                    "declared": True,
                    "up": up,
                    "label": label,
                }
            )
            if nodes[client]["reachable"] and not up:
                problems.append("tunnel %s -> %s is not up (%s)" % (client, gateway, label))

    for host, node in nodes.items():
        if node["reachable"] and "mesh_points" in node["roles"] and not node.get("stations"):
            problems.append("%s: no 802.11s neighbour in its mesh" % host)

    unreachable = [p for p in problems if "unreachable" in p]
    problems = unreachable + [p for p in problems if p not in unreachable]
    return {
        "schema": SCHEMA_VERSION,
        "generated": generated,
        "nodes": nodes,
        "edges": edges,
        "problems": problems,
    }


def render_markdown(report):
    lines = ["# Fleet status", ""]
    if report.get("generated"):
        lines += ["Generated %s." % report["generated"], ""]
    lines += ["## Problems", ""]
    lines += ["- %s" % p for p in report["problems"]] or ["None."]
    lines += [
        "",
        "## Nodes",
        "",
        "| node | neighbourhood | roles | cjdns | uptime | peers up | tunnels | address |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for host, node in sorted(report["nodes"].items()):
        if not node["reachable"]:
            lines.append(
                "| %s | %s | %s | UNREACHABLE | | | | |"
                % (host, node["hood"] or "", ", ".join(node["roles"]))
            )
            continue
        uptime = node.get("uptime_s")
        lines.append(
            "| %s | %s | %s | %s | %s | %d/%d | %d | %s |"
            % (
                host,
                node["hood"] or "",
                ", ".join(node["roles"]),
                (node.get("version") or "?") if node.get("active") else "NOT RUNNING",
                "%dh%02dm" % (uptime // 3600, uptime % 3600 // 60)
                if isinstance(uptime, int)
                else "",
                node.get("established", 0),
                node.get("peers", 0),
                len(node.get("tunnels") or []),
                node.get("ipv6") or "",
            )
        )
    lines += [
        "",
        "## Links",
        "",
        "| kind | from | to | up | what the peer table says |",
        "| --- | --- | --- | --- | --- |",
    ]
    for edge in report["edges"]:
        lines.append(
            "| %s | %s | %s | %s | %s |"
            % (edge["kind"], edge["a"], edge["b"], "yes" if edge["up"] else "NO", edge["label"])
        )
    return "\n".join(lines) + "\n"


SHAPES = {
    "gateways": ("doubleoctagon", "#f4b183"),
    "bridges": ("hexagon", "#9dc3e6"),
    "mesh_points": ("diamond", "#a9d18e"),
    "clients": ("ellipse", "#ffe699"),
    None: ("box", "#d9d9d9"),
}
EDGE_STYLES = {
    "udp": 'style=solid color="#595959"',
    "link": 'style=bold penwidth=3 color="#2f5597"',
    "mesh": 'style=dotted penwidth=2 color="#548235"',
    "tunnel": 'style=dashed color="#7f6000"',
}


def _quote(text):
    """A DOT string; a newline in the text becomes a line break in the label."""
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_dot(report):
    """The fleet map in Graphviz DOT: neighbourhoods as clusters, nodes shaped and
    coloured by role, edges by kind with the peer table's word, tunnels dashed arrows,
    whatever is declared but down in red."""
    out = [
        "digraph fleet {",
        '  graph [rankdir=LR fontname="Helvetica" label="meshfleet status" labelloc=t];',
        '  node [style=filled fontname="Helvetica"];',
        '  edge [fontname="Helvetica" fontsize=9];',
    ]
    by_hood = {}
    for host, node in sorted(report["nodes"].items()):
        by_hood.setdefault(node["hood"], []).append(host)
    for hood, hosts in sorted(by_hood.items(), key=lambda kv: str(kv[0])):
        indent = "  "
        if hood:
            out.append("  subgraph %s {" % _quote("cluster_" + hood))
            out.append('    label=%s; style=rounded; color="#bfbfbf";' % _quote(hood))
            indent = "    "
        for host in hosts:
            node = report["nodes"][host]
            primary = node["roles"][0] if node["roles"] else None
            shape, colour = SHAPES[primary]
            down = not node["reachable"] or not node.get("active", False)
            label = "%s\n%s" % (host, ", ".join(node["roles"]) or "mesh node")
            if node.get("machine") and node["machine"] != "x86_64":
                label += " (%s)" % node["machine"]
            if not node["reachable"]:
                label += "\nUNREACHABLE"
            elif not node.get("active"):
                label += "\ncjdns down"
            out.append(
                "%s%s [shape=%s fillcolor=%s%s label=%s];"
                % (
                    indent,
                    _quote(host),
                    shape,
                    _quote(colour),
                    " color=red penwidth=3 fontcolor=red" if down else "",
                    _quote(label),
                )
            )
        if hood:
            out.append("  }")
    for edge in report["edges"]:
        attrs = EDGE_STYLES[edge["kind"]]
        if edge["declared"] and not edge["up"]:
            attrs += " color=red fontcolor=red"
        if edge["kind"] != "tunnel":
            attrs += " dir=none"
        out.append(
            "  %s -> %s [%s label=%s];"
            % (_quote(edge["a"]), _quote(edge["b"]), attrs, _quote(edge["label"]))
        )
    out.append("}")
    return "\n".join(out) + "\n"
