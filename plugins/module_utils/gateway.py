# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gateway planning on the controller: find a gateway's clients and the inventory's pools
(:func:`clients_of`, :func:`gateway_pools`) and the networks on its interfaces
(:func:`local_networks`), check its client pools, allocate its clients' addresses stably,
and build its cjdns ``allowedConnections`` and its firewall part (:func:`nft_part`).

The allocation of every gateway is kept in one YAML file beside the inventory (public
data, like the key registry)::

    gateways:
      gw-riverside:
        ipv4:
          pool: 10.99.0.0/24
          address: 10.99.0.1
          clients: {pi-garden: 10.99.0.57, pi-library: 10.99.0.183}
        ipv6:                      # only when the gateway tunnels IPv6
          pool: 2001:db8:99::/64
          address: "2001:db8:99::1"
          clients: {pi-garden: "2001:db8:99::6c2e", ...}

Each run passes the stored ``clients`` as ``previous`` to
:func:`addressing.allocate_addresses`, so adding or removing a client never moves any
other client; the file is then rewritten with exactly the current clients (a removed
client loses its entry).  The file is read and written only through
:class:`statefile.StateFile` (lock, atomic write, ``schema_version``).  Error messages
name the role variables (``gateway_pool`` ...) because they are written for the operator
of the ``gateway`` role.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import (
    AddressingError,
    allocate_addresses,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.client import gateway_names
from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import StateFile

__all__ = [
    "FAMILIES",
    "SCHEMA_VERSION",
    "TUN_MTU",
    "GatewayError",
    "allowed_connections",
    "check_pools",
    "clients_of",
    "dump",
    "gateway_pools",
    "load",
    "local_networks",
    "nft_part",
    "parse_pool",
    "plan",
    "state_file",
    "unregistered",
]

SCHEMA_VERSION = 1

HEADER = (
    "# Client addresses of this fleet's gateways, written by meshfleet.mesh (role gateway).\n"
    "# Kept so that adding or removing a client never moves another one: review changes\n"
    "# like code, and do not edit by hand (pin addresses with gateway_pinned instead).\n"
)

# family -> (role variable of the pool, IP version)
FAMILIES = {"ipv4": ("gateway_pool", 4), "ipv6": ("gateway_pool6", 6)}
_VARIABLES = {
    "ipv4": {"address": "gateway_address", "pinned": "gateway_pinned",
             "reserved": "gateway_reserved"},
    "ipv6": {"address": "gateway_address6", "pinned": "gateway_pinned6",
             "reserved": "gateway_reserved6"},
}
# Pools that can never be a client pool, whatever the fleet.
_NEVER = {
    4: [("0.0.0.0/8", "'this network'"), ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"), ("224.0.0.0/3", "multicast and reserved")],
    6: [("::/8", "loopback and IPv4-compatible"), ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast")],
}


# cjdns' TUN MTU (cjdroute sets 1304); the MSS clamp keeps segments inside it.
TUN_MTU = 1304


class GatewayError(ValueError):
    """A gateway's inputs are not acceptable.  The message is written for operators."""


def _unset(value):
    return value is None or (isinstance(value, str) and not value.strip())


def parse_pool(value, variable, version, host):
    """A client pool as an ``ip_network`` of ``version``, or None when unset."""
    if _unset(value):
        return None
    if not isinstance(value, str) or "/" not in value:
        raise GatewayError("%s of %s is %r: not a CIDR such as %s" % (
            variable, host, value, "10.99.0.0/24" if version == 4 else "2001:db8:99::/64"))
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise GatewayError("%s of %s is %r: not a valid CIDR (%s)"
                               % (variable, host, value, exc)) from None
        raise GatewayError("%s of %s is %r: host bits are set; did you mean %s?"
                           % (variable, host, value, loose)) from None
    if network.version != version:
        raise GatewayError("%s of %s is %s: an IPv%d pool is needed here"
                           % (variable, host, network, version))
    for cidr, what in _NEVER[version]:
        if network.overlaps(ipaddress.ip_network(cidr)):
            raise GatewayError("%s of %s is %s, which overlaps %s (%s)"
                               % (variable, host, network, cidr, what))
    return network


def _networks(entries, what):
    out = []
    for entry in entries or []:
        text = entry.get("network") if isinstance(entry, dict) else entry
        try:
            out.append((ipaddress.ip_network(str(text).strip(), strict=False), entry))
        except ValueError:
            raise GatewayError("%s: %r is not a network" % (what, text)) from None
    return out


def check_pools(host, pools, gateways=None, local_networks=None, mesh_ranges=None):
    """Refuse pools that would collide with anything the gateway or the mesh uses.

    :param pools: ``{"ipv4": network or None, "ipv6": network or None}`` of ``host``.
    :param gateways: ``{gateway: {"gateway_pool": str, "gateway_pool6": str}}`` for every
        gateway of the inventory (``host`` itself is skipped): a client with several
        gateways needs a distinct address from each, so pools must not overlap.
    :param local_networks: ``[{"interface", "network", "uplink": bool}]``, the networks on
        the gateway's own interfaces (the TUN excluded).
    :param mesh_ranges: ``[{"network", "what"}]``: cjdns' fc00::/8, the bridge link prefix.
    """
    for family, network in pools.items():
        if network is None:
            continue
        variable = FAMILIES[family][0]
        for other in sorted(gateways or {}):
            if other == host:
                continue
            other_value = (gateways[other] or {}).get(variable)
            if _unset(other_value):
                continue
            try:
                other_net = ipaddress.ip_network(str(other_value).strip(), strict=False)
            except ValueError:
                continue  # that gateway's own run reports it
            if other_net.version == network.version and other_net.overlaps(network):
                raise GatewayError(
                    "%s of %s (%s) overlaps %s of gateway %s (%s): every gateway needs its "
                    "own pool, since a client with several gateways gets an address from "
                    "each" % (variable, host, network, variable, other, other_net))
        for local, entry in _networks(local_networks, "local networks"):
            if local.version == network.version and local.overlaps(network):
                where = "uplink interface" if entry.get("uplink") else "interface"
                raise GatewayError(
                    "%s of %s (%s) overlaps %s, the network of %s %s: choose a pool that no "
                    "interface of the gateway uses" % (
                        variable, host, network, local, where, entry.get("interface")))
        for mesh, entry in _networks(mesh_ranges, "mesh ranges"):
            if mesh.version == network.version and mesh.overlaps(network):
                what = entry.get("what", "the mesh") if isinstance(entry, dict) else "the mesh"
                raise GatewayError("%s of %s (%s) overlaps %s (%s), which the mesh uses itself"
                                   % (variable, host, network, mesh, what))


def _gateway_address(family, network, value, host):
    variable = _VARIABLES[family]["address"]
    if _unset(value):
        return network[1]
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise GatewayError("%s of %s is %r: not an IP address" % (variable, host, value)) from None
    if address not in network:
        raise GatewayError("%s of %s (%s) is not inside %s %s"
                           % (variable, host, address, FAMILIES[family][0], network))
    if address == network.network_address or (
            network.version == 4 and address == network.broadcast_address):
        raise GatewayError("%s of %s (%s) is the network or broadcast address of %s"
                           % (variable, host, address, network))
    return address


def state_file(path):
    """The allocations at ``path`` as a :class:`StateFile` (their one reader and writer)."""
    def check(gateways):
        for name, entry in gateways.items():
            if not isinstance(entry, dict) or not all(
                    isinstance(v, dict) and isinstance(v.get("clients", {}), dict)
                    for v in entry.values()):
                raise GatewayError("gateway allocations %s: entry of %r is malformed"
                                   % (path, name))

    return StateFile(path, "gateway allocations", "gateways", GatewayError,
                     schema_version=SCHEMA_VERSION, header=HEADER, check=check)


def load(path):
    """``{gateway: {family: {pool, address, clients}}}`` from ``path`` ({} when missing)."""
    return state_file(path).read()


def _stored(gateways):
    """What the file keeps of ``gateways``: pool, address and clients of each family."""
    return {
        gw: {family: {"pool": str(entry["pool"]), "address": str(entry["address"]),
                      "clients": {str(c): str(a) for c, a in entry["clients"].items()}}
             for family, entry in gateways[gw].items()}
        for gw in gateways
    }


def dump(gateways):
    """The allocation file's text for ``gateways``."""
    return state_file("").dump(_stored(gateways))


def unregistered(host, clients, registry, skip=False):
    """The clients of ``host`` without a key in ``registry``, sorted.

    That is an error (naming the first one and saying to converge it first) unless
    ``skip``; the caller then leaves them out of ``allowedConnections`` until they are
    registered (they keep their allocated address meanwhile).
    """
    missing = sorted(c for c in set(clients) if c != host and c not in (registry or {}))
    if missing and not skip:
        raise GatewayError(
            "client %s of gateway %s has no key in the key registry yet: converge %s first "
            "(its cjdns role records the key), or set gateway_skip_unregistered_clients: "
            "true to leave it out until then" % (missing[0], host, missing[0]))
    return missing


def allowed_connections(allocations, registry):
    """cjdns ``allowedConnections`` entries for the registered clients, sorted by name.

    Every client gets all the tunnel: ``ip4Prefix`` 0 makes cjdns on the client route
    0.0.0.0/1 and 128.0.0.0/1 through the TUN (the Internet, not only the pool), and
    ``ip4Alloc`` 32 gives it exactly one address; likewise ``ip6Prefix`` 0 and
    ``ip6Alloc`` 128 when IPv6 is tunnelled.  Clients without a registry entry are left
    out (see :func:`unregistered`).
    """
    clients = sorted(set().union(*(set(a) for a in allocations.values())))
    entries = []
    for client in clients:
        entry = (registry or {}).get(client)
        if not entry:
            continue
        item = {"publicKey": entry["public_key"]}
        if client in allocations.get("ipv4", {}):
            item.update(ip4Address=allocations["ipv4"][client], ip4Prefix=0, ip4Alloc=32)
        if client in allocations.get("ipv6", {}):
            item.update(ip6Address=allocations["ipv6"][client], ip6Prefix=0, ip6Alloc=128)
        entries.append(item)
    return entries


def plan(path, host, clients, pools, gateways=None, local_networks=None, mesh_ranges=None,
         write=True):
    """Check ``host``'s pools, allocate ``clients`` in each, keep the result in ``path``.

    :param pools: ``{"ipv4": {"pool", "address", "pinned", "reserved"}, "ipv6": {...}}``
        with the role's values; an IPv6 entry with an empty pool is skipped.  IPv4 is
        required.
    :param gateways: every gateway of the inventory with its ``gateway_pool`` and
        ``gateway_pool6``; also prunes the file of gateways no longer in the inventory.
    :returns: ``(changed, {"ipv4": {"pool", "address", "clients"}, "ipv6": {...}})``.
    """
    if not isinstance(clients, (list, tuple, set)) or not all(
            isinstance(c, str) and c for c in clients):
        raise GatewayError("the clients of %s must be a list of inventory hostnames, got %r"
                           % (host, clients))
    networks = {}
    for family, (variable, version) in FAMILIES.items():
        networks[family] = parse_pool((pools.get(family) or {}).get("pool"), variable,
                                      version, host)
    if networks["ipv4"] is None:
        raise GatewayError("gateway_pool of %s is empty: an IPv4 client pool (CIDR) is "
                           "required" % host)
    check_pools(host, networks, gateways, local_networks, mesh_ranges)
    clients = sorted(set(clients) - {host})

    with state_file(path).update(write=write) as update:
        stored = update.data
        previous = stored.get(host) or {}
        result = {}
        for family, network in networks.items():
            if network is None:
                continue
            spec = pools[family]
            names = _VARIABLES[family]
            address = _gateway_address(family, network, spec.get("address"), host)
            try:
                allocation = allocate_addresses(
                    clients, str(network),
                    pinned=spec.get("pinned") or {},
                    reserved=spec.get("reserved") or [],
                    gateway_address=str(address),
                    previous=(previous.get(family) or {}).get("clients") or {})
            except AddressingError as exc:
                raise GatewayError("%s of %s: %s (%s and %s taken into account)" % (
                    FAMILIES[family][0], host, exc, names["pinned"], names["reserved"])) from None
            result[family] = {"pool": str(network), "address": str(address),
                              "clients": allocation}
        new = dict(stored)
        new[host] = result
        if gateways is not None:
            new = {gw: entry for gw, entry in new.items() if gw in gateways or gw == host}
        update.data = _stored(new)
    return update.changed, result


# ------------------------------------------------------------ inputs and firewall part


def clients_of(host, groups, hostvars):
    """The hosts of group ``clients`` whose ``client_gateways`` (a list or a
    comma-separated string) name ``host``, in the group's order.

    :param groups: the inventory's groups; :param hostvars: host to its variables (any
        mapping of mappings, such as Ansible's ``hostvars``).
    """
    return [client for client in groups.get("clients") or []
            if host in gateway_names(hostvars[client].get("client_gateways", []))]


def gateway_pools(groups, hostvars):
    """Every host of group ``gateways`` with its ``gateway_pool`` and ``gateway_pool6``
    (empty when unset), the ``gateways`` input of :func:`check_pools` and :func:`plan`."""
    return {gw: {variable: hostvars[gw].get(variable, "")
                 for variable in ("gateway_pool", "gateway_pool6")}
            for gw in groups.get("gateways") or []}


def local_networks(facts, tun, uplink):
    """The networks on the gateway's own interfaces from its facts, each
    ``{"interface", "uplink": bool, "network"}``: the primary and secondary IPv4 addresses
    and the global IPv6 ones, in the facts' interface order; loopback and the TUN excluded.
    """
    out = []
    for name in facts.get("interfaces") or []:
        if name in ("lo", tun):
            continue
        found = facts.get(name.replace("-", "_")) or {}
        networks = ["%s/%s" % (a["address"], a["netmask"]) for a in
                    ([found["ipv4"]] if "ipv4" in found else [])
                    + list(found.get("ipv4_secondaries") or [])]
        networks += ["%s/%s" % (a["address"], a["prefix"]) for a in found.get("ipv6") or []
                     if a.get("scope") == "global"]
        out.extend({"interface": name, "uplink": name == uplink, "network": network}
                   for network in networks)
    return out


def nft_part(tun, uplink, allocation, mss_clamp=True, tun_mtu=TUN_MTU):
    """The gateway's part of the collection's nftables table (role ``firewall``).

    Forward only new traffic from the TUN with a source in a pool out of the uplink, and
    what belongs to it back; masquerade the IPv4 pool out of the uplink only (the IPv6
    prefix is routed, not translated); with ``mss_clamp``, clamp the MSS on that path
    (towards the clients to the TUN's route MTU, towards the Internet to what the TUN
    carries: ``tun_mtu`` less the IP and TCP headers).

    :param allocation: the result of :func:`plan` (``{"ipv4": {"pool"}, "ipv6": ...}``).
    """
    out = 'iifname "%s" oifname "%s"' % (tun, uplink)
    back = 'iifname "%s" oifname "%s"' % (uplink, tun)
    families = [("ip", allocation["ipv4"]["pool"], tun_mtu - 40)]
    if "ipv6" in allocation:
        families.append(("ip6", allocation["ipv6"]["pool"], tun_mtu - 60))
    forward, mangle = [], []
    for ip, pool, mss in families:
        forward += ["%s %s saddr %s ct state new,established,related accept" % (out, ip, pool),
                    "%s %s daddr %s ct state established,related accept" % (back, ip, pool)]
        if mss_clamp:
            mangle += ["%s %s daddr %s tcp flags syn tcp option maxseg size set rt mtu"
                       % (back, ip, pool),
                       "%s %s saddr %s tcp flags syn tcp option maxseg size > %d "
                       "tcp option maxseg size set %d" % (out, ip, pool, mss, mss)]
    return {"policy": {"forward": "drop"}, "forward": forward, "forward_mangle": mangle,
            "postrouting": ['oifname "%s" ip saddr %s masquerade'
                            % (uplink, allocation["ipv4"]["pool"])]}
