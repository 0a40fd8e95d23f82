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
    parse_peer,
    parse_station_dump,
    parse_tunnel,
)


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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_path=dict(type="path", default="/etc/cjdns/cjdroute.conf"),
            binary=dict(type="path", default="/usr/local/sbin/cjdroute"),
            service=dict(type="str", default="cjdns.service"),
            mesh_interfaces=dict(type="list", elements="str", default=[]),
            link_interfaces=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=3),
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
    if errors:
        status["cjdns"]["error"] = "; ".join(errors)
    module.exit_json(changed=False, status=status)


if __name__ == "__main__":
    main()
