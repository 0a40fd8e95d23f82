# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""802.11s mesh point planning: what the node's radios and its regulatory data allow.

Pure Python, unit tested, used by the ``mesh_point_probe`` module on the node:

* :func:`parse_iw_list` / :func:`parse_iw_dev` / :func:`parse_iw_reg` read the output of
  ``iw list``, ``iw dev`` and ``iw reg get`` (iw 5.x and 6.x);
* :func:`parse_regdb` reads the kernel's regulatory database (``regulatory.db``, the
  format the kernel loads itself, see net/wireless/reg.c);
* :func:`plan` selects the radio (by interface, MAC or automatically), checks the
  frequency and channel width against the radio and the country's rules, and returns
  the plan or raises :class:`MeshPointError` with a message an operator can act on.
"""

from __future__ import annotations

import re
import struct

MESH_MODE = "mesh point"

# regulatory.db (FWDB) format, version 20.
_FWDB_MAGIC = 0x52474442
_FWDB_VERSION = 20
_FWDB_FLAGS = {0x01: "NO-OFDM", 0x02: "NO-OUTDOOR", 0x04: "DFS", 0x08: "NO-IR", 0x10: "AUTO-BW"}

# 5 GHz channel blocks wider than 20 MHz: the first 20 MHz channel of each block.
_BLOCK_STARTS_5GHZ = {
    40: (36, 44, 52, 60, 100, 108, 116, 124, 132, 140, 149, 157, 165, 173),
    80: (36, 52, 100, 116, 132, 149, 165),
}


class MeshPointError(ValueError):
    """The mesh settings do not fit this node; the message says why and what to do."""


# --- channels ----------------------------------------------------------------------

def channel_to_mhz(channel):
    """Centre frequency of a 2.4 GHz (1-14) or 5 GHz (32-177) channel number."""
    channel = int(channel)
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    if channel == 14:
        return 2484
    if 32 <= channel <= 177:
        return 5000 + 5 * channel
    raise MeshPointError("channel %d is not a 2.4 GHz (1-14) or 5 GHz (32-177) channel; "
                         "give mesh_point_frequency in MHz for other bands" % channel)


def band_of(mhz):
    if 2400 <= mhz <= 2500:
        return "2.4GHz"
    if 4900 <= mhz <= 5900:
        return "5GHz"
    if 5925 <= mhz <= 7125:
        return "6GHz"
    return "other"


def channel_block(mhz, width):
    """The 20 MHz channels (centres, MHz) that a ``width`` MHz channel on ``mhz`` occupies."""
    if width == 20:
        return [mhz]
    band = band_of(mhz)
    if band != "5GHz":
        raise MeshPointError("a %d MHz mesh channel is only supported on 5 GHz; on %s use "
                             "mesh_point_channel_width: 20" % (width, band.replace("GHz", " GHz")))
    primary = (mhz - 5000) // 5
    span = width // 5 - 4  # channel numbers from the first to the last 20 MHz channel
    for start in _BLOCK_STARTS_5GHZ[width]:
        if start <= primary <= start + span:
            return [5000 + 5 * ch for ch in range(start, start + span + 1, 4)]
    raise MeshPointError("%d MHz (channel %d) is not part of any %d MHz channel"
                         % (mhz, primary, width))


# --- iw output ---------------------------------------------------------------------

_FREQ = re.compile(r"^\t\t\t\* (\d+)(?:\.(\d+))? MHz \[(\d+)\](.*)$")


def parse_iw_list(text):
    """``iw list`` -> {phy name: {index, modes, bands: {n: {ht40, vht, frequencies}}}}."""
    phys, phy, band, section = {}, None, None, None
    for line in text.splitlines():
        match = re.match(r"^Wiphy (\S+)", line)
        if match:
            phy = phys.setdefault(match.group(1), {"name": match.group(1), "index": None,
                                                   "modes": [], "bands": {}})
            band = section = None
            continue
        if phy is None:
            continue
        if line.startswith("\t") and not line.startswith("\t\t"):
            band = section = None
            match = re.match(r"^\twiphy index: (\d+)", line)
            if match:
                phy["index"] = int(match.group(1))
            elif line.startswith("\tSupported interface modes:"):
                section = "modes"
            else:
                match = re.match(r"^\tBand (\d+):", line)
                if match:
                    band = phy["bands"].setdefault(int(match.group(1)), {
                        "ht40": False, "vht": False, "frequencies": []})
            continue
        if section == "modes":
            match = re.match(r"^\t\t \* (.+?)\s*$", line)
            if match:
                phy["modes"].append(match.group(1))
            else:
                section = None
            continue
        if band is None:
            continue
        match = re.match(r"^\t\tCapabilities: 0x([0-9a-fA-F]+)", line)
        if match:
            band["ht40"] = bool(int(match.group(1), 16) & 0x2)
            continue
        if re.match(r"^\t\tVHT Capabilities", line):
            band["vht"] = True
            continue
        match = _FREQ.match(line)
        if match:
            rest = match.group(4)
            band["frequencies"].append({
                "mhz": int(match.group(1)),
                "channel": int(match.group(3)),
                "disabled": "disabled" in rest,
                "no_ir": "no IR" in rest or "passive scan" in rest.lower(),
                "radar": "radar detection" in rest,
            })
    return phys


def parse_iw_dev(text):
    """``iw dev`` -> [{phy_index, name, type, mac}] (type as iw prints it: "mesh point")."""
    out, phy_index, iface = [], None, None
    for line in text.splitlines():
        match = re.match(r"^phy#(\d+)", line)
        if match:
            phy_index, iface = int(match.group(1)), None
            continue
        match = re.match(r"^\tInterface (\S+)", line)
        if match and phy_index is not None:
            iface = {"phy_index": phy_index, "name": match.group(1), "type": "", "mac": ""}
            out.append(iface)
            continue
        if iface is None:
            continue
        match = re.match(r"^\t\taddr ([0-9a-fA-F:]{17})", line)
        if match:
            iface["mac"] = match.group(1).lower()
            continue
        match = re.match(r"^\t\ttype (.+?)\s*$", line)
        if match:
            iface["type"] = match.group(1)
    return out


def parse_iw_reg(text):
    """``iw reg get`` -> {country: global alpha2 or None, self_managed: [phy indexes]}."""
    country, self_managed, in_global = None, [], False
    for line in text.splitlines():
        if line.strip() == "global":
            in_global = True
            continue
        match = re.match(r"^phy#(\d+)(.*)$", line)
        if match:
            in_global = False
            if "self-managed" in match.group(2):
                self_managed.append(int(match.group(1)))
            continue
        match = re.match(r"^country (\S\S):", line)
        if match and in_global and country is None:
            country = match.group(1)
    return {"country": country, "self_managed": self_managed}


# --- regulatory.db -----------------------------------------------------------------

def parse_regdb(data):
    """regulatory.db bytes -> {alpha2: {dfs_region, rules: [{start_mhz, end_mhz,
    max_bw_mhz, flags}]}} (frequencies as the kernel reads them: kHz / 1000)."""
    if len(data) < 8:
        raise MeshPointError("the regulatory database is empty or truncated")
    magic, version = struct.unpack_from(">II", data, 0)
    if magic != _FWDB_MAGIC or version != _FWDB_VERSION:
        raise MeshPointError("the regulatory database is not a version %d regulatory.db"
                             % _FWDB_VERSION)
    countries, offset = {}, 8
    while offset + 4 <= len(data):
        alpha2, coll_ptr = struct.unpack_from(">2sH", data, offset)
        offset += 4
        if coll_ptr == 0:
            break
        coll = coll_ptr << 2
        coll_len, n_rules, dfs_region = struct.unpack_from(">BBB", data, coll)
        rules_at = coll + coll_len + (coll_len & 1)
        rules = []
        for i in range(n_rules):
            (rule_ptr,) = struct.unpack_from(">H", data, rules_at + 2 * i)
            _len, flags, _eirp, start, end, max_bw = struct.unpack_from(
                ">BBHIII", data, rule_ptr << 2)
            rules.append({
                "start_mhz": start / 1000,
                "end_mhz": end / 1000,
                "max_bw_mhz": max_bw / 1000,
                "flags": [name for bit, name in sorted(_FWDB_FLAGS.items()) if flags & bit],
            })
        countries[alpha2.decode("ascii", "replace")] = {"dfs_region": dfs_region, "rules": rules}
    return countries


def _contiguous_span(rules, rule):
    """The span (MHz) of the run of touching rules around ``rule`` (kernel's AUTO-BW)."""
    ordered = sorted(rules, key=lambda r: r["start_mhz"])
    i = ordered.index(rule)
    lo, hi = rule["start_mhz"], rule["end_mhz"]
    j = i
    while j > 0 and ordered[j - 1]["end_mhz"] >= lo:
        j -= 1
        lo = ordered[j]["start_mhz"]
    j = i
    while j < len(ordered) - 1 and ordered[j + 1]["start_mhz"] <= hi:
        j += 1
        hi = ordered[j]["end_mhz"]
    return hi - lo


def regulatory_problem(rules, block, width):
    """Why a ``width`` MHz channel made of ``block`` (20 MHz centres) is not usable for a
    mesh under ``rules``, or None when it is."""
    lo, hi = min(block) - 10, max(block) + 10
    covering = [r for r in rules if r["end_mhz"] > lo and r["start_mhz"] < hi]
    covered = lo
    for rule in sorted(covering, key=lambda r: r["start_mhz"]):
        if rule["start_mhz"] > covered:
            break
        covered = max(covered, rule["end_mhz"])
    if not covering or covered < hi:
        return "no rule allows %g-%g MHz" % (lo, hi)
    for rule in covering:
        flags = rule["flags"]
        if "DFS" in flags:
            return ("%g-%g MHz needs radar detection (DFS), which this role does not do for a "
                    "mesh" % (rule["start_mhz"], rule["end_mhz"]))
        if "NO-IR" in flags:
            return ("%g-%g MHz allows no initiated radiation (NO-IR): a mesh point must send "
                    "beacons" % (rule["start_mhz"], rule["end_mhz"]))
        if "NO-OFDM" in flags:
            return "%g-%g MHz allows no OFDM" % (rule["start_mhz"], rule["end_mhz"])
        max_bw = _contiguous_span(rules, rule) if "AUTO-BW" in flags else rule["max_bw_mhz"]
        if max_bw < width:
            return "%g-%g MHz allows at most %g MHz wide channels" % (
                rule["start_mhz"], rule["end_mhz"], max_bw)
    return None


# --- radios ------------------------------------------------------------------------

def describe_radios(radios):
    """One line per radio for error messages: name, MAC, interfaces, modes."""
    if not radios:
        return "this node has no wireless radio at all (no /sys/class/ieee80211/phy*)"
    lines = []
    for radio in radios:
        ifaces = ", ".join(i["name"] for i in radio["interfaces"]) or "none"
        lines.append("%s (MAC %s, interfaces: %s; modes: %s)" % (
            radio["name"], radio["mac"] or "?", ifaces, ", ".join(radio["modes"]) or "none"))
    return "; ".join(lines)


def _in_use(radio, device):
    """Interfaces of ``radio`` (other than the mesh device) that are up with an address."""
    return [i for i in radio["interfaces"] if i["name"] != device and i.get("up")
            and i.get("addresses")]


def select_radio(radios, device, interface="", mac=""):
    """The radio for the mesh: by interface name, by MAC, or automatically."""
    radios = sorted(radios, key=lambda r: (r["index"] is None, r["index"], r["name"]))
    listing = "Radios on this node: " + describe_radios(radios)
    if interface:
        found = [r for r in radios if any(i["name"] == interface for i in r["interfaces"])]
        if not found:
            names = ", ".join("%s (%s)" % (i["name"], r["name"]) for r in radios
                              for i in r["interfaces"]) or "none"
            raise MeshPointError("mesh_point_interface '%s' does not exist on this node; its "
                                 "wireless interfaces: %s. %s" % (interface, names, listing))
        radio, how = found[0], "mesh_point_interface '%s'" % interface
    elif mac:
        mac = mac.lower()
        found = [r for r in radios if mac == r["mac"] or mac in r["addresses"]
                 or any(mac == i["mac"] for i in r["interfaces"])]
        if not found:
            raise MeshPointError("no radio has mesh_point_mac %s. %s" % (mac, listing))
        radio, how = found[0], "mesh_point_mac %s" % mac
    else:
        capable = [r for r in radios if MESH_MODE in r["modes"]]
        if not capable:
            raise MeshPointError(
                "no radio on this node supports mesh point (802.11s). %s. Many onboard chips, "
                "the Raspberry Pi's included, lack it: add a radio that has it (check "
                "`iw list` for \"mesh point\" under \"Supported interface modes\")." % listing)
        holding = [r for r in capable if any(i["name"] == device for i in r["interfaces"])]
        free = [r for r in capable if not _in_use(r, device)]
        if holding:
            radio = holding[0]
        elif free:
            radio = free[0]
        else:
            raise MeshPointError(
                "every radio that supports mesh point is in use (an interface is up with an "
                "address): the mesh takes its radio over. Free one, or name it with "
                "mesh_point_interface or mesh_point_mac. %s" % listing)
        how = "automatic selection"
    if MESH_MODE not in radio["modes"]:
        raise MeshPointError(
            "%s selects %s, which does not support mesh point (802.11s); its modes: %s. %s"
            % (how, radio["name"], ", ".join(radio["modes"]) or "none", listing))
    busy = _in_use(radio, device)
    if busy:
        raise MeshPointError(
            "%s selects %s, but its interface %s is up with address %s: the mesh takes the "
            "radio over (its other interfaces are set down), which would cut that link. "
            "Free the radio or choose another. %s"
            % (how, radio["name"], busy[0]["name"], busy[0]["addresses"][0], listing))
    return radio


def _radio_frequencies(radio):
    return {f["mhz"]: dict(f, ht40=band["ht40"], vht=band["vht"])
            for band in radio["bands"].values() for f in band["frequencies"]}


def usable_channels(radio, rules, width, current_country_matches):
    """Frequencies of ``radio`` where a ``width`` MHz mesh is allowed (for messages)."""
    out = []
    for mhz in sorted(_radio_frequencies(radio)):
        try:
            _check_frequency(radio, rules, mhz, width, current_country_matches)
        except MeshPointError:
            continue
        out.append(mhz)
    return out


def _check_frequency(radio, rules, mhz, width, current_country_matches):
    """Raise MeshPointError unless a ``width`` MHz mesh on ``mhz`` suits radio and rules:
    the radio has every 20 MHz channel of it and the width; the country's rules allow it;
    and, once the country is in force, the radio does not report it restricted."""
    if band_of(mhz) not in ("2.4GHz", "5GHz"):
        raise MeshPointError("%d MHz is not on 2.4 or 5 GHz, the bands this role runs a mesh on"
                             % mhz)
    freqs = _radio_frequencies(radio)
    block = channel_block(mhz, width)
    for centre in block:
        if centre not in freqs:
            raise MeshPointError("%s does not support %d MHz" % (radio["name"], centre))
    if width >= 40 and not freqs[mhz]["ht40"]:
        raise MeshPointError("%s cannot use 40 MHz channels (no HT40) on this band"
                             % radio["name"])
    if width >= 80 and not freqs[mhz]["vht"]:
        raise MeshPointError("%s cannot use 80 MHz channels (no VHT) on this band"
                             % radio["name"])
    problem = regulatory_problem(rules, block, width)
    if problem:
        raise MeshPointError(problem)
    # The flags describe the regulatory domain in force; before it is the target country
    # they say nothing about it ("disabled" may even be the radio's own limit).
    for centre in block if current_country_matches else []:
        info = freqs[centre]
        if info["disabled"] or info["no_ir"] or info["radar"]:
            raise MeshPointError("%s reports %d MHz as %s under the current regulatory domain"
                                 % (radio["name"], centre, ", ".join(
                                     k for k in ("disabled", "no_ir", "radar") if info[k])))
    return block


def plan(radios, regdb, country, frequency=0, channel=0, width=20, device="mesh0",
         interface="", mac="", current_country=None, self_managed=()):
    """Select the radio and check the channel; return the plan or raise MeshPointError."""
    if country not in regdb:
        raise MeshPointError(
            "mesh_point_country '%s' is not in this node's regulatory database; it knows %s"
            % (country, ", ".join(sorted(c for c in regdb if c != "00"))))
    radio = select_radio(radios, device, interface, mac)
    if channel:
        mhz, what = channel_to_mhz(channel), "mesh_point_channel %d" % channel
    else:
        mhz, what = int(frequency), "mesh_point_frequency %d" % frequency
    if band_of(mhz) not in ("2.4GHz", "5GHz"):
        raise MeshPointError("%s (%d MHz) is not on 2.4 or 5 GHz: this role runs meshes on those "
                             "bands only" % (what, mhz))
    rules = regdb[country]["rules"]
    matches = current_country == country and radio["index"] not in self_managed
    try:
        block = _check_frequency(radio, rules, mhz, width, matches)
    except MeshPointError as exc:
        usable = usable_channels(radio, rules, width, matches)
        channels = {f["mhz"]: f["channel"]
                    for b in radio["bands"].values() for f in b["frequencies"]}
        choice = ", ".join("%d (%d MHz)" % (channels[f], f) for f in usable) or "none"
        raise MeshPointError(
            "%s (%d MHz) with mesh_point_channel_width %d cannot be used for a mesh in %s on "
            "%s: %s. Channels %s can use at %d MHz in %s: %s"
            % (what, mhz, width, country, radio["name"], exc, radio["name"], width, country,
               choice)) from None
    return {
        "radio": radio["name"],
        "radio_mac": radio["mac"],
        "radio_interfaces": [i["name"] for i in radio["interfaces"] if i["name"] != device],
        "frequency": mhz,
        "channel": (mhz - 2407) // 5 if mhz < 2484 else (14 if mhz == 2484 else (mhz - 5000) // 5),
        "width": width,
        "block": block,
        "band": band_of(mhz),
    }


def conflicting_units(units, interfaces, network_manager):
    """Debian wpa_supplicant units that would fight over the mesh radio: per-interface units
    of ``interfaces`` that are enabled or running, and the global D-Bus service when no
    NetworkManager (its only user) is installed. ``units``: {name: {load, enabled, active}}."""
    out = []
    for unit, state in sorted(units.items()):
        base, _sep, instance = unit.rpartition("@")
        running = state["active"] in ("active", "activating", "reloading", "failed")
        enabled = state["enabled"] in ("enabled", "enabled-runtime")
        if base in ("wpa_supplicant", "wpa_supplicant-nl80211") and \
                instance[:-len(".service")] in interfaces and (running or enabled):
            out.append(unit)
        elif unit == "wpa_supplicant.service" and not network_manager and \
                state["load"] == "loaded" and (running or enabled):
            out.append(unit)
    return out
