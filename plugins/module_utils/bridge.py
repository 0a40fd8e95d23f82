# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bridge role puts on one host, from plain data (the planner of the role).

:func:`plan` takes the host's name, ``bridge_links``, the inventory's hosts, the host's
facts, the key registry and the role's settings, and returns a dictionary whose
``problems`` are sentences naming the variable, the host and the fix (empty when all is
well); without problems it also holds this host's side of its links (``mine``), the
interfaces to probe, its part of cjdroute.conf and its nftables rules.

The role calls it twice: before anything changes, and once more with the output of the
read-only probe of the node's network managers (``probe``), which adds the backend of
every link interface, the networkd drop-ins to write and to remove, the hooks to install,
and the problems a networkd backend would have.  The link addresses themselves come
from :func:`addressing.link_plan`, the peering passwords from :func:`cjdns.peer_password`.
"""

from __future__ import annotations

import re

from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import (
    AddressingError,
    link_plan,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import peer_password

__all__ = ["BACKENDS", "BridgeError", "ICMPV6", "plan", "session_ips"]

BACKENDS = ("auto", "unit", "networkd", "networkmanager", "ifupdown")
HOOK_BACKENDS = ("ifupdown", "networkmanager")
# Where each network manager runs the hook that re-applies the link addresses.
HOOK_PATHS = {
    "networkmanager": "/etc/NetworkManager/dispatcher.d/60-meshfleet-link-addr",
    "ifupdown": "/etc/network/if-up.d/meshfleet-link-addr",
}
DROPIN_NAME = "60-meshfleet-bridge.conf"

# Neighbour discovery, MLD queries (so snooping switches keep forwarding to us), and the
# errors path MTU discovery needs.
ICMPV6 = (
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-router-solicit",
    "nd-router-advert",
    "mld-listener-query",
    "packet-too-big",
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
)

_ADDRESS_TEXT = re.compile(r"^[0-9a-fA-F:.]+$")


class BridgeError(ValueError):
    """Input of the wrong shape (a caller's mistake, not the operator's)."""


def session_ips(facts, ansible_host=""):
    """Addresses of this host the operator's session may arrive on.

    The server side of ``SSH_CONNECTION`` ("client port server port") in the facts'
    environment, and ``ansible_host`` when it is an address; zone ids dropped, lower case.
    """
    env = (facts or {}).get("env") or {}
    fields = str(env.get("SSH_CONNECTION") or "").split(" ")
    candidates = [fields[2] if len(fields) > 2 else "", str(ansible_host or "")]
    out = []
    for text in candidates:
        text = text.split("%", 1)[0]
        if _ADDRESS_TEXT.match(text) and ("." in text or ":" in text):
            text = text.lower()
            if text not in out:
                out.append(text)
    return out


def _unique(values):
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _interface_addresses(facts, interface):
    """(IPv4, IPv6) addresses of an interface from the facts (IPv6 lower case)."""
    fact = facts.get(interface.replace("-", "_").replace(":", "_")) or {}
    v6 = [str(a.get("address", "")).lower() for a in fact.get("ipv6") or []]
    ipv4 = fact.get("ipv4")
    v4 = [ipv4["address"]] if isinstance(ipv4, dict) and "address" in ipv4 else []
    v4 += [a.get("address") for a in fact.get("ipv4_secondaries") or []]
    return v4, v6


def _check_shapes(host, inventory, facts, registry, settings, probe):
    if not isinstance(host, str) or not host:
        raise BridgeError("bridge_plan: the host must be an inventory hostname, got %r" % (host,))
    for name, value in (("inventory", inventory), ("facts", facts), ("registry", registry),
                        ("settings", settings)):
        if not isinstance(value, dict):
            raise BridgeError("bridge_plan: %s must be a mapping, got %s"
                              % (name, type(value).__name__))
    if probe is not None and not isinstance(probe, (list, tuple)):
        raise BridgeError("bridge_plan: probe must be the probe's output lines, got %s"
                          % type(probe).__name__)


def _links_problems(links, inventory, settings):
    """(problems, link plan) of the fleet's links, the same on every host."""
    if not links:
        return [], {}
    try:
        links_plan = link_plan(links, settings.get("link_prefix"), settings.get("fleet_id"))
    except AddressingError as exc:
        text = str(exc)
        return ["bridge_links / bridge_link_prefix / bridge_fleet_id is invalid: %s%s"
                % (text, "" if text.endswith(".") else ".")], {}
    everyone = list(inventory.get("all") or [])
    bridge_hosts = list(inventory.get("bridges") or [])
    unknown, outside = [], []
    for link in links_plan.values():
        for end in link["ends"]:
            what = "host '%s' (link '%s')" % (end["host"], link["name"])
            if end["host"] not in everyone:
                unknown.append(what)
            elif end["host"] not in bridge_hosts:
                outside.append(what)
    problems = []
    if unknown:
        problems.append("bridge_links names %s, which is not in the inventory."
                        % ", ".join(unknown))
    if outside:
        problems.append("bridge_links names %s, which is not in both groups bridges and "
                        "mesh_nodes, so this role or cjdns would never run on it."
                        % ", ".join(outside))
    return problems, links_plan


def _mine(host, links_plan, facts, sessions):
    """This host's side of each of its links, in link name order."""
    mine = []
    for link in links_plan.values():
        ends = link["ends"]
        me = [end for end in ends if end["host"] == host]
        if not me:
            continue
        far = [end for end in ends if end["host"] != host][0]
        v4, v6 = _interface_addresses(facts, me[0]["interface"])
        mine.append({
            "link": link["name"],
            "prefix": link["prefix"],
            "interface": me[0]["interface"],
            "address": me[0]["address"],
            "far_host": far["host"],
            "far_address": far["address"],
            "present": me[0]["address"] in v6,
            "carries_session": any(ip in v4 + v6 for ip in sessions),
        })
    return mine


def _host_problems(host, mine, facts, registry, settings, sessions):
    if not mine:
        return []
    problems = []
    interfaces = list(facts.get("interfaces") or [])
    missing = [i for i in _unique(m["interface"] for m in mine) if i not in interfaces]
    if missing:
        problems.append("bridge_links: %s has no interface %s (it has %s)."
                        % (host, ", ".join(missing), ", ".join(sorted(interfaces, key=str.lower))))
    if not settings.get("fleet_secret"):
        problems.append("cjdns_fleet_secret must be set (from Vault) for %s: the link's "
                        "peering password derives from it." % host)
    bind = str(settings.get("udp_bind_address") or "")
    if bind.replace("[", "").replace("]", "") in ("::", ""):
        problems.append("cjdns_udp_bind_address %s of %s would take the cjdns port on every "
                        "IPv6 address, so cjdns could not bind it on the link address; use "
                        "0.0.0.0 or an address." % (bind, host))
    if not settings.get("check_mode"):
        # A check run on a fleet that was never converged: those peers are left out.
        unregistered = sorted(set(m["far_host"] for m in mine) - set(registry))
        if unregistered:
            problems.append("%s ends links to %s, which have no key in the registry %s yet: "
                            "converge them (the cjdns role) first."
                            % (host, ", ".join(unregistered), settings.get("registry_path", "")))
    risky = [m for m in mine if m["carries_session"] and not m["present"]]
    if risky and not settings.get("allow_ssh_interface_change"):
        problems.append(
            "This run would change the addresses of %s, which carries your connection to %s "
            "(%s), and would close that interface to everything but cjdns. Connect over "
            "another interface (or over cjdns), or set bridge_allow_ssh_interface_change: true."
            % (", ".join("%s (link '%s' adds %s/64)" % (m["interface"], m["link"], m["address"])
                         for m in risky), host, ", ".join(sessions)))
    return problems


def _cjdns_part(host, mine, registry, settings):
    secret = str(settings["fleet_secret"])
    port = int(settings["udp_port"])
    authorized, udp = [], []
    for m in mine:
        password = peer_password(secret, host, m["far_host"])
        authorized.append({"user": m["far_host"], "password": password})
        connect = {}
        if m["far_host"] in registry:
            connect["[%s]:%s" % (m["far_address"], port)] = {
                "publicKey": registry[m["far_host"]]["public_key"],
                "password": password,
                "login": host,
                "peerName": m["far_host"],
            }
        udp.append({"bind": "[%s]:%s" % (m["address"], port), "beacon": 0, "connectTo": connect})
    return {"name": "bridge",
            "config": {"authorizedPasswords": authorized, "interfaces": {"UDPInterface": udp}}}


def _nft_part(interfaces, settings):
    rules = []
    for interface in interfaces:
        match = 'iifname "%s"' % interface
        rules.append("%s udp dport %s counter accept" % (match, int(settings["udp_port"])))
        if settings.get("firewall_drop_other", True):
            rules += [
                "%s ct state established,related accept" % match,
                "%s icmpv6 type { %s } accept" % (match, ", ".join(ICMPV6)),
                "%s counter drop" % match,
            ]
    return {"input": rules}


def _parse_probe(lines):
    """{interface: what manages it} and this role's drop-ins found, from the probe."""
    found, dropins = {}, []
    for line in lines:
        line = str(line)
        if line.startswith("dropin "):
            dropins.append(line[len("dropin "):])
            continue
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        found[fields[0]] = {
            "nm": fields[1] == "1",
            "ifupdown": fields[2] == "1",
            "network_file": "" if fields[3] == "-" else fields[3],
            "shared": [] if fields[4] == "-" else fields[4].split(","),
            "dropin_dir": fields[5] == "1",
        }
    return found, _unique(dropins)


def _backends(interfaces, probe, settings):
    """Backend of each link interface, what to write and remove, and the problems."""
    found, present_dropins = _parse_probe(probe)
    wanted = settings.get("network_backend") or "auto"
    backends = {}
    for interface in interfaces:
        p = dict(found.get(interface) or {"nm": False, "ifupdown": False, "network_file": "",
                                          "shared": [], "dropin_dir": False})
        if wanted != "auto":
            backend = wanted
        elif p["nm"]:
            backend = "networkmanager"
        elif p["network_file"]:
            backend = "networkd"
        elif p["ifupdown"]:
            backend = "ifupdown"
        else:
            backend = "unit"
        p["backend"] = backend
        p["dropin"] = "/etc/systemd/network/%s.d/%s" % (
            p["network_file"].rsplit("/", 1)[-1], settings.get("dropin_name") or DROPIN_NAME)
        backends[interface] = p
    problems = []
    networkd = [(i, p) for i, p in backends.items() if p["backend"] == "networkd"]
    for interface, p in networkd:
        if not p["network_file"]:
            problems.append("systemd-networkd does not manage %s (no .network file matches it): "
                            "set bridge_network_backend to unit or auto, or give %s a .network "
                            "file." % (interface, interface))
    for interface, p in networkd:
        if p["network_file"] and p["shared"]:
            problems.append("%s configures %s and also %s: an Address= drop-in for it would "
                            "put the link address on those too. Give %s a .network file of its "
                            "own (or set bridge_network_backend: unit)."
                            % (p["network_file"], interface, ", ".join(p["shared"]), interface))
    dropins = [{"interface": i, "network_file": p["network_file"], "path": p["dropin"],
                "directory": p["dropin"].rsplit("/", 1)[0], "directory_exists": p["dropin_dir"]}
               for i, p in networkd]
    kept = [d["path"] for d in dropins]
    stale = [path for path in present_dropins if path not in kept]
    hooks = sorted(set(p["backend"] for p in backends.values()) & set(HOOK_BACKENDS))
    return {
        "backends": backends,
        "dropins": dropins,
        "stale_dropins": stale,
        "hooks": hooks,
        # The drop-ins and hooks as meshfleet.mesh.node_files entries (the role adds its
        # script and unit): each drop-in's template sees it as ``item``.
        "files": ([{"template": "networkd-dropin.conf.j2", "dest": d["path"], "vars": {"item": d}}
                   for d in dropins]
                  + [{"dest": path, "state": "absent"} for path in stale]
                  + [{"template": "%s-hook.j2" % hook, "dest": HOOK_PATHS[hook], "mode": "0755"}
                     for hook in hooks]),
        "problems": problems,
    }


def plan(host, links, inventory, facts, registry, settings, probe=None):
    """This host's side of the fleet's bridge links, or the problems with the inputs.

    :param host: the inventory hostname of the host being planned.
    :param links: ``bridge_links`` (see :func:`addressing.link_plan`).
    :param inventory: ``{"all": every inventory host, "bridges": the hosts in both groups
        bridges and mesh_nodes}``.
    :param facts: the host's ``ansible_facts`` (``interfaces``, one entry per interface
        with ``ipv4``/``ipv4_secondaries``/``ipv6``, and ``env`` for ``SSH_CONNECTION``).
    :param registry: the key registry, ``{host: {"public_key", "ipv6"}}``.
    :param settings: ``link_prefix``, ``fleet_id``, ``udp_port``, ``udp_bind_address``,
        ``fleet_secret``, ``registry_path`` (for messages), ``allow_ssh_interface_change``,
        ``firewall_drop_other``, ``network_backend``, ``check_mode``, ``ansible_host`` and
        optionally ``dropin_name``.
    :param probe: the output lines of the role's network manager probe, or None before it.
    :returns: ``{"problems", "links", "mine", "interfaces", "session_ips",
        "addresses_present", "cjdns_part", "nft_part"}``, and with ``probe`` also
        ``backends``, ``dropins``, ``stale_dropins`` and ``hooks``.
    :raises BridgeError: when an argument has the wrong type.
    """
    _check_shapes(host, inventory, facts, registry, settings, probe)
    result = {"problems": [], "links": {}, "mine": [], "interfaces": [], "session_ips": [],
              "addresses_present": True, "cjdns_part": {}, "nft_part": {}}
    problems, links_plan = _links_problems(links, inventory, settings)
    if problems:
        result["problems"] = problems
        return result
    sessions = session_ips(facts, settings.get("ansible_host"))
    mine = _mine(host, links_plan, facts, sessions)
    interfaces = _unique(m["interface"] for m in mine)
    result.update(links=links_plan, mine=mine, interfaces=interfaces, session_ips=sessions,
                  addresses_present=all(m["present"] for m in mine))
    problems = _host_problems(host, mine, facts, registry, settings, sessions)
    if problems:
        result["problems"] = problems
        return result
    if mine:
        result["cjdns_part"] = _cjdns_part(host, mine, registry, settings)
        result["nft_part"] = _nft_part(interfaces, settings)
    if probe is not None:
        applied = _backends(interfaces, probe, settings)
        result["problems"] = applied.pop("problems")
        result.update(applied)
    return result
