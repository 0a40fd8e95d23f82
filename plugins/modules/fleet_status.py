#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_status
short_description: Read one node's cjdns, radio and link state in one module execution
version_added: 0.1.0
description:
  - Read-only. Reports the installed cjdroute's version, whether its service runs and
    since when, the node's public key and cjdns address (from C(cjdroute.conf); nothing
    secret is returned), its peers with state and traffic and its IpTunnel connections
    (admin API), the 802.11s stations of its mesh interfaces (C(iw)) and the state and
    addresses of its bridge link ports.
  - A part that cannot be read (the daemon down, no C(iw)) is reported in the result
    instead of failing the module, so one pass over a fleet always gives a full report.
  - Used by C(playbooks/status.yml); the report is built on the controller by
    C(plugins/module_utils/fleet_status.py).
options:
  config_path:
    description: The node's cjdroute.conf (admin address and password are read there).
    type: path
    default: /etc/cjdns/cjdroute.conf
  binary:
    description: The installed cjdroute.
    type: path
    default: /usr/local/sbin/cjdroute
  service:
    description: The systemd unit that runs cjdroute.
    type: str
    default: cjdns.service
  mesh_interfaces:
    description:
      - 802.11s interfaces whose stations to list. Empty means every interface C(iw dev)
        shows in mesh point mode.
    type: list
    elements: str
    default: []
  link_interfaces:
    description: Wired ports facing bridge link radios, whose state and addresses to report.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each admin API reply.
    type: float
    default: 3
  interfaces:
    description:
      - Interfaces whose state and global addresses to report under RV(status.interfaces)
        (the diagnosis reads the cjdns TUN and the peer interface). Off by default.
    type: list
    elements: str
    default: []
  routes:
    description: Report the IPv4 routes of the main table under RV(status.routes).
    type: bool
    default: false
  route_to:
    description:
      - IPv4 addresses to ask the kernel the route to (C(ip route get)), reported under
        RV(status.route_to).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose C(ActiveState) to report under RV(status.units).
    type: list
    elements: str
    default: []
  sysctls:
    description:
      - Kernel settings to report under RV(status.sysctls), by their dotted name (for
        example C(net.ipv4.ip_forward)).
    type: list
    elements: str
    default: []
  nft_table:
    description:
      - Name of an nftables table of family C(inet) whose chains and rules to report
        under RV(status.nft) (C(nft list table)). Empty means none.
    type: str
    default: ""
  tunnel_config:
    description:
      - Report the IpTunnel part of C(cjdroute.conf) under RV(status.tunnel_config), the
        allowed connections (public keys and addresses) and the outgoing connections
        (public keys). Nothing secret is in it.
    type: bool
    default: false
  failover_state:
    description:
      - The JSON state file of the client's gateway failover service, reported under
        RV(status.failover). Unset means not read.
    type: path
  uplink:
    description:
      - Check a gateway's uplink, reported under RV(status.uplink), the interface's state,
        its IPv4 default route, and a C(ping) out of that interface to each probe target.
      - Unset means not checked.
    type: dict
    suboptions:
      interface:
        description: The uplink. Empty means the interface of the IPv4 default route.
        type: str
        default: ""
      probe:
        description:
          - IPv4 addresses to ping out of the uplink. Empty means the next hop of the
            uplink's default route.
        type: list
        elements: str
        default: []
      count:
        description: Echo requests per target.
        type: int
        default: 2
      timeout:
        description: Seconds to wait for each reply.
        type: float
        default: 2
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
author:
  - meshfleet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the node's status
  meshfleet.mesh.fleet_status:
    link_interfaces: [eth1]
  register: node_status

- name: Also read what a diagnosis of a gateway needs
  meshfleet.mesh.fleet_status:
    tunnel_config: true
    sysctls: [net.ipv4.ip_forward]
    nft_table: meshfleet
    uplink:
      interface: wan
      probe: [203.0.113.200]
  register: gateway_status
"""

RETURN = r"""
status:
  description: The node's status; the schema is in C(plugins/module_utils/fleet_status.py).
  returned: always
  type: dict
  contains:
    cjdns:
      description:
        - C(version), C(active), C(uptime_s) (seconds since the service started) and C(error)
          (what could not be read).
      type: dict
    node:
      description: C(public_key), C(ipv6) and C(machine) (the kernel's name for its CPU).
      type: dict
    peers:
      description: Each peer's C(public_key), C(state), C(bytes_in), C(bytes_out) and C(address).
      type: list
      elements: dict
    tunnels:
      description: Each IpTunnel connection's C(public_key), C(outgoing), C(ip4) and C(ip6).
      type: list
      elements: dict
    stations:
      description: Each 802.11s station's C(interface), C(mac), C(signal_dbm) and C(plink_state).
      type: list
      elements: dict
    links:
      description: Each link port's C(interface), C(state) and C(addresses).
      type: list
      elements: dict
    interfaces:
      description: Each of O(interfaces) with its C(interface), C(state) and C(addresses).
      returned: when O(interfaces) is set
      type: list
      elements: dict
    routes:
      description: The main table's IPv4 routes, each C(dst), C(dev), C(gateway), C(prefsrc),
        C(protocol) and C(scope).
      returned: when O(routes) is true
      type: list
      elements: dict
    route_to:
      description: For each of O(route_to), C(target), C(dev), C(src), C(gateway) and
        C(error) (why there is no route).
      returned: when O(route_to) is set
      type: list
      elements: dict
    units:
      description: Each of O(units) with its C(ActiveState) (C(inactive) when it does not exist).
      returned: when O(units) is set
      type: dict
    sysctls:
      description: Each of O(sysctls) with its value (null when it cannot be read).
      returned: when O(sysctls) is set
      type: dict
    nft:
      description: C(table), C(present), C(chains) (chain name to its rules as C(nft) prints
        them) and C(error).
      returned: when O(nft_table) is set
      type: dict
    tunnel_config:
      description: C(allowed) (each C(publicKey) with its address fields) and C(outgoing)
        (public keys), from C(cjdroute.conf).
      returned: when O(tunnel_config) is true
      type: dict
    failover:
      description: The failover service's state file (C(active), C(active_address),
        C(gateways)), null when absent or unreadable.
      returned: when O(failover_state) is set
      type: dict
    uplink:
      description: C(interface), C(state), C(default_gateway), C(default_route), C(probes)
        (each C(target), C(ok), C(rtt_ms), C(error)) and C(error).
      returned: when O(uplink) is set
      type: dict
"""

import json
import platform
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_admin import (
    Admin,
    AdminError,
    admin_settings,
    tunnel_connections,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    parse_nft_table,
    parse_peer,
    parse_ping,
    parse_routes,
    parse_station_dump,
    parse_tunnel,
    parse_units,
)

# The allowedConnections fields reported by tunnel_config (keys and addresses only).
TUNNEL_FIELDS = ("publicKey", "ip4Address", "ip4Prefix", "ip4Alloc", "ip6Address",
                 "ip6Prefix", "ip6Alloc")


def run(module, argv):
    try:
        rc, out, err = module.run_command(argv)
    except OSError as exc:
        return 127, "", str(exc)
    return rc, out, err


def cjdns_state(module):
    state = {"version": None, "active": False, "uptime_s": None, "error": None}
    rc, out, _err = run(module, [module.params["binary"], "--version"])
    match = re.search(r"Cjdns version: (\S+)", out or "")
    state["version"] = match.group(1) if rc == 0 and match else None
    rc, out, _err = run(
        module,
        [
            "systemctl",
            "show",
            module.params["service"],
            "-p",
            "ActiveState",
            "-p",
            "ActiveEnterTimestampMonotonic",
        ],
    )
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state["active"] = props.get("ActiveState") == "active"
    try:
        with open("/proc/uptime") as handle:
            now = float(handle.read().split()[0])
        since = int(props.get("ActiveEnterTimestampMonotonic", "0")) / 1e6
        if state["active"] and since > 0:
            state["uptime_s"] = int(now - since)
    except (OSError, ValueError):
        pass
    return state


def node_identity(path):
    with open(path) as handle:
        conf = json.load(handle)
    return {"public_key": conf.get("publicKey"), "ipv6": conf.get("ipv6"),
            "machine": platform.machine()}


def mesh_interfaces(module):
    if module.params["mesh_interfaces"]:
        return module.params["mesh_interfaces"]
    rc, out, _err = run(module, ["iw", "dev"])
    if rc != 0:
        return []
    found, current = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Interface "):
            current = line.split()[1]
        elif line == "type mesh point" and current:
            found.append(current)
    return found


def link_state(module, interface):
    rc, out, _err = run(module, ["ip", "-j", "addr", "show", "dev", interface])
    if rc != 0:
        return {"interface": interface, "state": None, "addresses": []}
    info = (json.loads(out or "[]") or [{}])[0]
    return {
        "interface": interface,
        "state": info.get("operstate"),
        "addresses": [
            "%s/%s" % (a["local"], a["prefixlen"])
            for a in info.get("addr_info", [])
            if a.get("scope") == "global"
        ],
    }


def ip_json(module, argv):
    rc, out, err = run(module, ["ip", "-j"] + argv)
    if rc != 0:
        return None, (err or out or "ip failed").strip().splitlines()[0]
    try:
        return json.loads(out or "[]"), None
    except ValueError as exc:
        return None, "ip printed no JSON: %s" % exc


def route_to(module, target):
    routes, error = ip_json(module, ["-4", "route", "get", target])
    first = (routes or [{}])[0]
    return {"target": target, "dev": first.get("dev"), "src": first.get("prefsrc"),
            "gateway": first.get("gateway"), "error": error}


def units_state(module, units):
    rc, out, err = run(module, ["systemctl", "show", "-p", "Id", "-p", "ActiveState"] + units)
    states = parse_units(out) if rc == 0 else {}
    # systemctl shows a unit it does not know under the name asked for, as inactive.
    return {unit: states.get(unit, "unknown: %s" % err.strip() if rc else "inactive")
            for unit in units}


def sysctl_values(names):
    out = {}
    for name in names:
        try:
            with open("/proc/sys/" + name.replace(".", "/")) as handle:
                out[name] = handle.read().strip()
        except OSError:
            out[name] = None
    return out


def nft_state(module, table):
    rc, out, err = run(module, ["nft", "list", "table", "inet", table])
    if rc != 0:
        return {"table": "inet %s" % table, "present": False, "chains": {},
                "error": (err or out or "nft failed").strip().splitlines()[0]}
    return {"table": "inet %s" % table, "present": True, "chains": parse_nft_table(out),
            "error": None}


def tunnel_config(path):
    with open(path) as handle:
        tunnel = (json.load(handle).get("router") or {}).get("ipTunnel") or {}
    return {
        "allowed": [{k: v for k, v in entry.items() if k in TUNNEL_FIELDS}
                    for entry in tunnel.get("allowedConnections") or []
                    if isinstance(entry, dict)],
        "outgoing": [k for k in tunnel.get("outgoingConnections") or [] if isinstance(k, str)],
    }


def failover_state(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def uplink_state(module, opts):
    out = {"interface": opts["interface"] or None, "state": None, "default_gateway": None,
           "default_route": False, "probes": [], "error": None}
    if not out["interface"]:
        routes, error = ip_json(module, ["-4", "route", "show", "default"])
        out["interface"] = next((r.get("dev") for r in routes or [] if r.get("dev")), None)
        if out["interface"] is None:
            out["error"] = error or "no IPv4 default route to find the uplink by"
            return out
    links, error = ip_json(module, ["link", "show", "dev", out["interface"]])
    if not links:
        out["error"] = error or "no such interface"
        return out
    out["state"] = links[0].get("operstate")
    routes, error = ip_json(module, ["-4", "route", "show", "default", "dev", out["interface"]])
    out["default_route"] = bool(routes)
    out["default_gateway"] = next((r.get("gateway") for r in routes or [] if r.get("gateway")),
                                  None)
    out["error"] = error
    targets = opts["probe"] or ([out["default_gateway"]] if out["default_gateway"] else [])
    for target in targets:
        rc, text, err = run(module, ["ping", "-n", "-i", "0.2", "-c", str(opts["count"]), "-W",
                                     "%g" % opts["timeout"], "-I", out["interface"], target])
        lines = [line for line in ((text or "") + (err or "")).splitlines() if line.strip()]
        out["probes"].append({"target": target, "ok": rc == 0, "rtt_ms": parse_ping(text),
                              "error": None if rc == 0 else (lines[-1] if lines else "rc %d" % rc)})
    return out


def diagnosis_reads(module, status, errors):
    """The off-by-default reads (playbooks/diagnose.yml); only the keys asked for."""
    params = module.params
    if params["interfaces"]:
        status["interfaces"] = [link_state(module, i) for i in params["interfaces"]]
    if params["routes"]:
        routes, error = ip_json(module, ["-4", "route", "show", "table", "main"])
        status["routes"] = parse_routes(routes)
        if error:
            errors.append("ip route: %s" % error)
    if params["route_to"]:
        status["route_to"] = [route_to(module, t) for t in params["route_to"]]
    if params["units"]:
        status["units"] = units_state(module, params["units"])
    if params["sysctls"]:
        status["sysctls"] = sysctl_values(params["sysctls"])
    if params["nft_table"]:
        status["nft"] = nft_state(module, params["nft_table"])
    if params["tunnel_config"]:
        try:
            status["tunnel_config"] = tunnel_config(params["config_path"])
        except (OSError, ValueError, AttributeError) as exc:
            status["tunnel_config"] = None
            errors.append("cannot read the IpTunnel config: %s" % exc)
    if params["failover_state"]:
        status["failover"] = failover_state(params["failover_state"])
    if params["uplink"] is not None:
        status["uplink"] = uplink_state(module, params["uplink"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_path=dict(type="path", default="/etc/cjdns/cjdroute.conf"),
            binary=dict(type="path", default="/usr/local/sbin/cjdroute"),
            service=dict(type="str", default="cjdns.service"),
            mesh_interfaces=dict(type="list", elements="str", default=[]),
            link_interfaces=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=3),
            interfaces=dict(type="list", elements="str", default=[]),
            routes=dict(type="bool", default=False),
            route_to=dict(type="list", elements="str", default=[]),
            units=dict(type="list", elements="str", default=[]),
            sysctls=dict(type="list", elements="str", default=[]),
            nft_table=dict(type="str", default=""),
            tunnel_config=dict(type="bool", default=False),
            failover_state=dict(type="path"),
            uplink=dict(
                type="dict",
                options=dict(
                    interface=dict(type="str", default=""),
                    probe=dict(type="list", elements="str", default=[]),
                    count=dict(type="int", default=2),
                    timeout=dict(type="float", default=2),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    status = {
        "cjdns": cjdns_state(module),
        "node": {},
        "peers": [],
        "tunnels": [],
        "stations": [],
        "links": [],
    }
    errors = []
    try:
        status["node"] = node_identity(module.params["config_path"])
    except (OSError, ValueError) as exc:
        errors.append("cannot read %s: %s" % (module.params["config_path"], exc))
    if status["cjdns"]["active"] and not errors:
        try:
            admin = Admin(
                *admin_settings(module.params["config_path"]), timeout=module.params["timeout"]
            )
        except (OSError, ValueError) as exc:
            errors.append("cannot read the admin settings: %s" % exc)
        else:
            try:
                status["peers"] = [
                    parse_peer(p)
                    for p in admin.call_all_pages("InterfaceController_peerStats", key="peers")
                ]
                status["tunnels"] = [parse_tunnel(t) for t in tunnel_connections(admin)]
            except AdminError as exc:
                errors.append(str(exc))
            finally:
                admin.close()
    for interface in mesh_interfaces(module):
        rc, out, _err = run(module, ["iw", "dev", interface, "station", "dump"])
        if rc == 0:
            status["stations"].extend(parse_station_dump(interface, out))
        else:
            errors.append("iw could not list the stations of %s" % interface)
    status["links"] = [link_state(module, i) for i in module.params["link_interfaces"]]
    diagnosis_reads(module, status, errors)
    if errors:
        status["cjdns"]["error"] = "; ".join(errors)
    module.exit_json(changed=False, status=status)


if __name__ == "__main__":
    main()
