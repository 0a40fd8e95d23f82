# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: the UDP peering part of one node's cjdns config, derived for both ends."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    peer_password,
)


def udp_peering(host, peers, addresses, registry, secret, port, skip_missing=False):
    """Return ``{"connectTo": {...}, "authorizedPasswords": [...]}`` for ``host``.

    ``peers`` maps every node to the nodes it asks to peer with; a pair is peered when
    either end asks, and both ends compute the same password from ``secret``.  ``host``
    connects to the peers it names and authorizes every peer of the pair set.
    """
    if host not in peers:
        raise AnsibleFilterError("udp_peering: %s is not a mesh node" % host)
    for node, wanted in peers.items():
        # A string would be read letter by letter, and "host in wanted" would match
        # substrings ("rs-ben" in "rs-bench"): peering hosts nobody asked for.
        if wanted is not None and not isinstance(wanted, (list, tuple)):
            raise AnsibleFilterError("cjdns_peers of %s must be a list of inventory "
                                     "hostnames, got %s" % (node, type(wanted).__name__))
    names = set(peers[host] or [])
    for other, wanted in peers.items():
        if host in (wanted or []):
            names.add(other)
    unknown = sorted(p for p in names if p not in peers)
    if unknown:
        raise AnsibleFilterError("cjdns_peers of %s names %s, not in group mesh_nodes"
                                 % (host, ", ".join(unknown)))
    if host in names:
        raise AnsibleFilterError("cjdns_peers of %s names the host itself" % host)
    if names and not secret:
        raise AnsibleFilterError("cjdns_fleet_secret is required for static peers (%s)"
                                 % ", ".join(sorted(names)))
    connect, authorized = {}, []
    for peer in sorted(names):
        try:
            password = peer_password(secret, host, peer)
        except (TypeError, ValueError) as exc:
            raise AnsibleFilterError(str(exc)) from None
        authorized.append({"user": peer, "password": password})
        if peer not in (peers[host] or []):
            continue
        if peer not in registry and skip_missing:
            continue
        if peer not in registry:
            raise AnsibleFilterError("%s peers with %s, which has no key in the key registry "
                                     "yet: converge %s first" % (host, peer, peer))
        address = addresses.get(peer)
        if not address:
            raise AnsibleFilterError("%s peers with %s but %s has no peering address "
                                     "(set cjdns_peer_address)" % (host, peer, peer))
        endpoint = ("[%s]:%d" if ":" in address else "%s:%d") % (address, int(port))
        connect[endpoint] = {"publicKey": registry[peer]["public_key"], "password": password,
                             "login": host, "peerName": peer}
    return {"connectTo": connect, "authorizedPasswords": authorized}


def _udp_peering(host, peers, addresses, registry, secret, port, skip_missing=False):
    try:
        return udp_peering(host, peers, addresses, registry, secret, port, skip_missing)
    except CjdnsKeyError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"cjdns_udp_peering": _udp_peering}
