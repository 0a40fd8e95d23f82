# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the client role puts on one host, from plain data (the planner of the role).

:func:`plan` takes the host's name, its ``client_*`` settings, the inventory's groups,
the gateways' pools, the key registry and the gateways' allocations, and returns either
``problems`` (sentences naming the variable, the host and the fix) or everything the
role's tasks use: the gateways in priority order with their keys and the addresses they
issued this client, the cjdns part (``router.ipTunnel.outgoingConnections``), the
failover service's config, LAN sharing's firewall part and the DNS settings.

Standard library only; the controller runs it (filter ``meshfleet.mesh.client_plan``).
"""

from __future__ import annotations

import ipaddress
import numbers
import re

from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import (
    AddressingError,
    cidr_overlaps,
)

__all__ = ["ClientError", "check", "gateway_names", "plan"]

# As the role has always matched them (leading zeros included).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
IPV4 = re.compile(r"^(%s\.){3}%s$" % (_OCTET, _OCTET))
IPV6 = re.compile(r"^[0-9a-fA-F:]*:[0-9a-fA-F:.]*$")
# Where the failover service keeps its state (RuntimeDirectory of its unit).
STATE_FILE = "/run/meshfleet-gw-failover/state.json"
COMMENT = "Written by Ansible (meshfleet.mesh role client); local changes are overwritten."
# systemd-resolved answers on this address when the host uses it.
RESOLVED_STUB = "127.0.0.53"
SETTINGS = ("gateways", "failover_probe_targets", "failover_interval", "failover_down_after",
            "failover_up_after", "lan_prefix", "dns_servers")


class ClientError(ValueError):
    """The planner was called with inputs of the wrong shape (a bug in the caller, not in
    the inventory: the inventory's mistakes come back as problems)."""


def gateway_names(value):
    """``client_gateways`` as a list; a comma-separated string is a list, as
    argument_specs (type list) reads it."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value or [])


def _is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _gateway_problems(host, gateways, groups, registry, check_mode):
    """What is wrong with ``client_gateways``, each as a sentence."""
    found = []
    if not gateways and host in (groups.get("clients") or []):
        found.append("a host in group clients needs at least one gateway: name its gateways "
                     "(hosts of group gateways) in client_gateways")
    hosts = set(groups.get("all") or [])
    in_gateways = set(groups.get("gateways") or [])
    for gw in gateways:
        if gw == host:
            found.append("%s is this host itself; a client cannot be its own gateway" % gw)
        elif gw not in hosts:
            found.append("%s is not in the inventory: fix the name or add the host" % gw)
        elif gw not in in_gateways:
            found.append("%s is not in group gateways: add it there or name a gateway" % gw)
        elif gw not in registry and not check_mode:
            # In check mode on a fresh fleet the registry is not written yet.
            found.append("%s has no key in the key registry yet: converge %s first" % (gw, gw))
    seen = []
    for gw in gateways:
        if gw not in seen and gateways.count(gw) > 1:
            found.append("%s is listed more than once: name each gateway once" % gw)
        seen.append(gw)
    prefix = "client_gateways of %s (%s): " % (host, ", ".join(gateways) or "empty")
    return [prefix + p for p in found]


def _settings_problems(host, settings, pools):
    """What is wrong with the failover, LAN sharing and DNS settings, each as a sentence."""
    found = []
    interval = settings["failover_interval"]
    if not _is_number(interval) or interval < 1:
        found.append("client_failover_interval is %s: it must be at least 1 (seconds)" % interval)
    for name in ("failover_down_after", "failover_up_after"):
        value = settings[name]
        if not _is_integer(value) or value < 1:
            found.append("client_%s must be a whole number of rounds, at least 1" % name)
    targets = settings["failover_probe_targets"]
    if not targets:
        found.append("client_failover_probe_targets is empty: give IPv4 addresses reachable "
                     "through every gateway")
    for target in targets:
        if not IPV4.match(str(target)):
            found.append("client_failover_probe_targets: %s is not an IPv4 address" % target)
    prefix = settings["lan_prefix"]
    if prefix:
        try:
            overlaps = cidr_overlaps(prefix, _valid_pools(pools), "client_lan_prefix")
        except AddressingError as exc:
            found.append(str(exc))
        else:
            if ":" in prefix:
                found.append("client_lan_prefix %s is IPv6; LAN sharing masquerades an IPv4 prefix"
                             % prefix)
            elif overlaps:
                found.append("client_lan_prefix %s overlaps the gateway pool(s) %s: choose a LAN "
                             "prefix outside every gateway pool" % (prefix, ", ".join(overlaps)))
    for server in settings["dns_servers"]:
        if not (IPV4.match(str(server)) or IPV6.match(str(server))):
            found.append("client_dns_servers: %s is not an IP address" % server)
    return ["Client settings of %s: %s" % (host, p) for p in found]


def _valid_pools(pools):
    """The gateways' pools that parse; a bad one is its gateway's run's problem."""
    out = []
    for pool in pools:
        try:
            ipaddress.ip_network(str(pool).strip(), strict=False)
        except ValueError:
            continue
        out.append(pool)
    return out


def _settings(settings):
    if not isinstance(settings, dict):
        raise ClientError("settings must be a mapping of the client_* variables without the "
                          "prefix, got %r" % type(settings).__name__)
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise ClientError("settings lack %s" % ", ".join(missing))
    out = dict(settings)
    out["gateways"] = gateway_names(settings["gateways"])
    out["failover_probe_targets"] = list(settings["failover_probe_targets"] or [])
    out["dns_servers"] = list(settings["dns_servers"] or [])
    out["lan_prefix"] = settings["lan_prefix"] or ""
    return out


def check(host, settings, groups, pools, registry, check_mode=False):
    """Problems with the inputs, as sentences (gateways first); empty when all is well."""
    settings = _settings(settings)
    return (_gateway_problems(host, settings["gateways"], groups or {}, registry or {}, check_mode)
            + _settings_problems(host, settings, list((pools or {}).values())))


def _issued(allocations, gateway, host):
    """The IPv4 address ``gateway`` allocated ``host`` ('' when not known yet)."""
    entry = allocations.get("gateways") if isinstance(allocations, dict) else None
    for key in (gateway, "ipv4", "clients", host):
        if not isinstance(entry, dict) or key not in entry:
            return ""
        entry = entry[key]
    return entry


def plan(host, settings, groups, pools, registry, allocations, node, check_mode=False):
    """The client role's plan for ``host``, or its problems.

    :param settings: the role's ``client_*`` variables without the prefix (see
        :data:`SETTINGS`).
    :param groups: the inventory's groups (``all``, ``gateways``, ``clients`` are read).
    :param pools: ``{gateway: gateway_pool}`` of every host of group gateways.
    :param registry: the key registry, ``{host: {public_key, ipv6}}``.
    :param allocations: the gateways' allocations file as read (``{gateways: {...}}``;
        ``{}`` before any gateway ran).
    :param node: ``tun_device``, ``cjdns_config`` (path of cjdroute.conf), ``nameservers``
        (the host's, from its facts), ``program`` and ``failover_config`` (the paths of the
        failover program and of its config).
    :param check_mode: a gateway not registered yet is no problem then, and is left out.
    :returns: ``{"problems": [...]}`` when there are problems; otherwise ``problems``
        (empty), ``gateways`` ([{name, address, public_key}] in priority order),
        ``cjdns_part``, ``failover_config``, ``lan`` ({prefix, shared}), ``nft_part``,
        and ``dns`` ({servers, resolved, dropin, resolv_conf}).
    """
    registry = registry or {}
    problems = check(host, settings, groups, pools, registry, check_mode)
    if problems:
        return {"problems": problems}
    settings = _settings(settings)
    if not isinstance(node, dict):
        raise ClientError("node must be a mapping")
    tun = node["tun_device"]
    gateways = [
        {"name": gw,
         "address": _issued(allocations, gw, host),
         "public_key": (registry.get(gw) or {}).get("public_key", "")}
        for gw in settings["gateways"]
    ]
    failover_config = {
        "_comment": COMMENT,
        "tun_device": tun,
        "cjdns_config": node["cjdns_config"],
        "state_file": STATE_FILE,
        "interval": settings["failover_interval"],
        "down_after": settings["failover_down_after"],
        "up_after": settings["failover_up_after"],
        "probe_targets": settings["failover_probe_targets"],
        "gateways": gateways,
    }
    prefix = settings["lan_prefix"]
    servers = settings["dns_servers"]
    resolved = RESOLVED_STUB in (node.get("nameservers") or [])
    # LAN sharing: forward the LAN prefix into the TUN and what belongs to it back, and
    # masquerade only that prefix out of the TUN (the failover's probes keep their own
    # source address, the gateway they test); clamp the MSS to what the TUN carries.
    nft_part = {
        "policy": {"forward": "drop"},
        "forward": [
            'ip saddr %s oifname "%s" accept' % (prefix, tun),
            'iifname "%s" ip daddr %s ct state established,related accept' % (tun, prefix),
        ],
        "forward_mangle": [
            'ip saddr %s oifname "%s" tcp flags syn tcp option maxseg size set rt mtu'
            % (prefix, tun),
        ],
        "postrouting": ['ip saddr %s oifname "%s" masquerade' % (prefix, tun)],
    } if prefix else {}
    return {
        "problems": [],
        "gateways": gateways,
        "cjdns_part": {
            "name": "client",
            "config": {"router": {"ipTunnel": {"outgoingConnections": [
                g["public_key"] for g in gateways if g["name"] in registry]}}},
        },
        "failover_config": failover_config,
        "lan": {"prefix": prefix, "shared": bool(prefix)},
        "nft_part": nft_part,
        "dns": {"servers": servers, "resolved": resolved,
                "dropin": bool(servers) and resolved,
                "resolv_conf": bool(servers) and not resolved},
    }
