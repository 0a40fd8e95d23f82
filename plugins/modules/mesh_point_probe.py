#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mesh_point_probe
short_description: Check 802.11s mesh settings against a node's radios and regulatory data
version_added: 0.1.0
description:
  - Looks at the node's wireless radios (C(iw list), C(iw dev), sysfs), its regulatory
    database (C(regulatory.db), the file the kernel loads) and the regulatory domain in
    force (C(iw reg get)); selects the radio for the mesh (by interface name, by MAC
    address, or the first radio whose supported interface modes include mesh point) and
    checks the frequency and channel width against the radio and the country's rules.
  - Fails, changing nothing, with a message naming the setting and listing what would work
    (the node's radios and their modes, or the channels the radio may use in that country).
  - Also reports what the M(meshfleet.mesh.mesh_point) role needs to skip work on a
    rerun (checksum, mode and owner of the given files; the state of the mesh unit, of
    NetworkManager and of Debian's wpa_supplicant units that would fight over the radio).
  - Read-only. When C(iw) or the regulatory database is missing it reports the Debian
    packages to install in RV(missing_packages) and checks nothing.
options:
  device:
    description: Name of the mesh interface the role creates.
    type: str
    default: mesh0
  interface:
    description: Select the radio that carries this existing interface.
    type: str
    default: ""
  mac:
    description: Select the radio with this MAC address (the radio's or one of its interfaces').
    type: str
    default: ""
  country:
    description: ISO 3166 alpha-2 regulatory country the mesh runs under.
    type: str
    required: true
  frequency:
    description: Primary channel frequency in MHz (or give O(channel)).
    type: int
    default: 0
  channel:
    description: Channel number, 1-14 (2.4 GHz) or 32-177 (5 GHz) (or give O(frequency)).
    type: int
    default: 0
  channel_width:
    description: Channel width in MHz; 40 and 80 only on 5 GHz.
    type: int
    choices: [20, 40, 80]
    default: 20
  files:
    description:
      - Files and directories whose sha1 (C(directory) for a directory), mode, owner and group
        are reported in RV(files).
    type: list
    elements: path
    default: []
  regdb_path:
    description: The regulatory database.
    type: path
    default: /lib/firmware/regulatory.db
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
- name: Check the neighbourhood's mesh settings against this node's radios
  meshfleet.mesh.mesh_point_probe:
    country: CA
    channel: 36
    channel_width: 20
    mac: "00:c0:ca:12:34:56"
  register: probe
"""

RETURN = r"""
plan:
  description: The selected radio and the checked channel; empty when nothing was checked.
  returned: always
  type: dict
  sample:
    radio: phy1
    radio_mac: "02:00:00:00:01:00"
    radio_interfaces: [wlan1]
    frequency: 5180
    channel: 36
    width: 20
    block: [5180]
    band: 5GHz
radios:
  description: Every radio, with its MAC addresses, interface modes, bands and interfaces.
  returned: always
  type: list
  elements: dict
regdomain:
  description: The regulatory domain in force (C(country)) and the self-managed radios.
  returned: always
  type: dict
missing_packages:
  description: Debian packages the role needs that are not installed.
  returned: always
  type: list
  elements: str
network_manager:
  description: Whether NetworkManager is installed.
  returned: always
  type: bool
units:
  description: Per unit name C(load), C(enabled) (unit file state) and C(active).
  returned: always
  type: dict
conflicting_units:
  description:
    - Debian wpa_supplicant units that would fight over the mesh radio and are enabled or
      running (per-interface units of the radio's interfaces; the global D-Bus service when
      NetworkManager, its only user, is not installed).
  returned: always
  type: list
  elements: str
files:
  description:
    - Per existing path C(sha1) (C(directory) for a directory), C(mode) (4 octal digits),
      C(owner), C(group).
  returned: always
  type: dict
"""

import grp
import hashlib
import json
import os
import pwd
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.mesh_point import (
    MeshPointError,
    conflicting_units,
    parse_iw_dev,
    parse_iw_list,
    parse_iw_reg,
    parse_regdb,
    plan,
)

SYSFS = "/sys/class/ieee80211"


def _read(path, default=""):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return default


def _run(module, *argv):
    rc, out, err = module.run_command(list(argv))
    if rc != 0:
        module.fail_json(msg="%s failed (rc %d): %s" % (" ".join(argv), rc, err.strip()))
    return out


def _addresses(module):
    """{ifname: {up, addresses}} from `ip -j addr` (global addresses only)."""
    if not shutil.which("ip"):
        return {}
    out = {}
    for link in json.loads(_run(module, "ip", "-j", "addr", "show") or "[]"):
        out[link.get("ifname")] = {
            "up": "UP" in link.get("flags", []),
            "addresses": [a["local"] for a in link.get("addr_info", [])
                          if a.get("scope") == "global" and a.get("local")],
        }
    return out


def _radios(module, iw):
    listed = parse_iw_list(_run(module, iw, "list"))
    interfaces = parse_iw_dev(_run(module, iw, "dev"))
    links = _addresses(module)
    radios = []
    for name in sorted(os.listdir(SYSFS)) if os.path.isdir(SYSFS) else []:
        info = listed.get(name, {"modes": [], "bands": {}})
        index = _read(os.path.join(SYSFS, name, "index"))
        index = int(index) if index.isdigit() else info.get("index")
        rfkill = {}
        for entry in sorted(os.listdir(os.path.join(SYSFS, name))):
            if entry.startswith("rfkill"):
                rfkill = {k: _read(os.path.join(SYSFS, name, entry, k)) == "1"
                          for k in ("soft", "hard")}
        radios.append({
            "name": name,
            "index": index,
            "mac": _read(os.path.join(SYSFS, name, "macaddress")).lower(),
            "addresses": _read(os.path.join(SYSFS, name, "addresses")).lower().split(),
            "modes": info["modes"],
            "bands": info["bands"],
            "rfkill": rfkill,
            "interfaces": [dict(i, **links.get(i["name"], {"up": False, "addresses": []}))
                           for i in interfaces if i["phy_index"] == index],
        })
    return radios


def _units(module, names):
    if not names or not shutil.which("systemctl"):
        return {}
    out = _run(module, "systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState",
               "--", *names)
    states, current = {}, {}
    for line in out.splitlines() + [""]:
        if not line.strip():
            if current.get("Id"):
                states[current["Id"]] = {"load": current.get("LoadState", ""),
                                         "enabled": current.get("UnitFileState", ""),
                                         "active": current.get("ActiveState", "")}
            current = {}
            continue
        key, _sep, value = line.partition("=")
        current[key] = value
    # systemctl shows units in the order asked; Id is the canonical name.
    return states


def _files(paths):
    out = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            digest = "directory"
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                digest = hashlib.sha1(handle.read()).hexdigest()  # noqa: S324 - a content check
        else:
            out[path] = {"sha1": "", "mode": "", "owner": "", "group": ""}
            continue
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        out[path] = {"sha1": digest, "mode": "%04o" % stat.S_IMODE(st.st_mode),
                     "owner": owner, "group": group}
    return out


def main():
    module = AnsibleModule(
        argument_spec={
            "device": {"type": "str", "default": "mesh0"},
            "interface": {"type": "str", "default": ""},
            "mac": {"type": "str", "default": ""},
            "country": {"type": "str", "required": True},
            "frequency": {"type": "int", "default": 0},
            "channel": {"type": "int", "default": 0},
            "channel_width": {"type": "int", "default": 20, "choices": [20, 40, 80]},
            "files": {"type": "list", "elements": "path", "default": []},
            "regdb_path": {"type": "path", "default": "/lib/firmware/regulatory.db"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if bool(p["frequency"]) == bool(p["channel"]):
        module.fail_json(msg="give exactly one of frequency and channel")
    if p["interface"] and p["mac"]:
        module.fail_json(msg="give interface or mac, not both")
    result = {"changed": False, "plan": {}, "radios": [], "regdomain": {},
              "missing_packages": [], "conflicting_units": [],
              "network_manager": bool(shutil.which("NetworkManager")
                                      or os.path.exists("/usr/sbin/NetworkManager")),
              "files": _files(p["files"])}

    iw = shutil.which("iw") or ("/usr/sbin/iw" if os.path.exists("/usr/sbin/iw") else None)
    wpa = os.path.exists("/sbin/wpa_supplicant") or bool(shutil.which("wpa_supplicant"))
    regdb = None
    if os.path.exists(p["regdb_path"]):
        with open(p["regdb_path"], "rb") as handle:
            try:
                regdb = parse_regdb(handle.read())
            except MeshPointError as exc:
                module.fail_json(msg="%s: %s" % (p["regdb_path"], exc))
    result["missing_packages"] = [pkg for pkg, ok in (("iw", iw), ("wpasupplicant", wpa),
                                                      ("wireless-regdb", regdb)) if not ok]

    units = ["wpa_supplicant.service", "NetworkManager.service",
             "meshfleet-mesh@%s.service" % p["device"]]
    if iw:
        result["radios"] = _radios(module, iw)
        result["regdomain"] = parse_iw_reg(_run(module, iw, "reg", "get"))
        for radio in result["radios"]:
            for iface in radio["interfaces"]:
                units += ["wpa_supplicant@%s.service" % iface["name"],
                          "wpa_supplicant-nl80211@%s.service" % iface["name"]]
    units += ["wpa_supplicant@%s.service" % p["device"],
              "wpa_supplicant-nl80211@%s.service" % p["device"]]
    result["units"] = _units(module, sorted(set(units)))

    if not iw or regdb is None:
        module.exit_json(**result)
    try:
        result["plan"] = plan(
            result["radios"], regdb, p["country"], frequency=p["frequency"], channel=p["channel"],
            width=p["channel_width"], device=p["device"], interface=p["interface"], mac=p["mac"],
            current_country=result["regdomain"].get("country"),
            self_managed=result["regdomain"].get("self_managed", []))
    except MeshPointError as exc:
        module.fail_json(msg=str(exc))

    radio = next(r for r in result["radios"] if r["name"] == result["plan"]["radio"])
    if radio["rfkill"].get("hard"):
        module.fail_json(msg="%s is blocked by a hardware switch (rfkill hard block); "
                             "turn the switch on" % radio["name"])
    result["conflicting_units"] = conflicting_units(
        result["units"], result["plan"]["radio_interfaces"] + [p["device"]],
        result["network_manager"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
