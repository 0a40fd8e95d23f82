# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key registry: the controller's record of every node's cjdns public key and IPv6.

A YAML file kept beside the inventory (public data, meant to be reviewed in git)::

    nodes:
      pi-riverside-1:
        public_key: q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k
        ipv6: fcfb:a2bb:0db5:f5d0:83d6:c0b7:a756:94c8

Pinning reads it, so a ``--limit`` run still pins hosts that were not in the run.
Trust on first use: a key that differs from the recorded one is refused unless the
operator accepts the change.  Used on the controller only.
"""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    ipv6_from_public_key,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import (
    atomic_write,
    load_mapping,
    locked,
)

__all__ = ["HEADER", "RegistryError", "dump", "load", "locked", "record"]

HEADER = (
    "# cjdns key registry of this fleet, written by meshfleet.mesh (role cjdns).\n"
    "# Public keys and addresses only: review changes like code. A changed key is\n"
    "# refused until the operator accepts it (cjdns_accept_key_change: true).\n"
)


class RegistryError(ValueError):
    """The registry file cannot be used, or a node's key conflicts with it."""


def load(path):
    """Return ``{host: {public_key, ipv6}}`` from ``path`` ({} when it does not exist)."""
    nodes = load_mapping(path, "key registry", "nodes", RegistryError)
    for host, entry in nodes.items():
        if not isinstance(entry, dict) or "public_key" not in entry:
            raise RegistryError("key registry %s: node %r has no public_key" % (path, host))
        try:
            expected = ipv6_from_public_key(entry["public_key"])
        except CjdnsKeyError as exc:
            raise RegistryError("key registry %s: node %r: %s" % (path, host, exc)) from None
        if entry.get("ipv6") != expected:
            raise RegistryError("key registry %s: node %r lists ipv6 %s but its key gives %s"
                                % (path, host, entry.get("ipv6"), expected))
    return nodes


def dump(nodes):
    import yaml  # controller only, like statefile.load_mapping: not needed to import this

    # str(): Ansible hands over tagged str subclasses that safe_dump refuses.
    plain = {str(h): {str(k): str(v) for k, v in nodes[h].items()} for h in sorted(nodes)}
    body = yaml.safe_dump({"nodes": plain},
                          default_flow_style=False, sort_keys=True)
    return HEADER + body


def record(path, host, public_key, accept_change=False, write=True):
    """Record ``host``'s key; return (changed, nodes).  Raises RegistryError on a conflict."""
    ipv6 = ipv6_from_public_key(public_key)
    with locked(path):
        nodes = load(path)
        old = nodes.get(host)
        if old and old["public_key"] != public_key and not accept_change:
            raise RegistryError(
                "host %s presents cjdns key %s but the key registry %s records %s. If the "
                "node was reinstalled on purpose, rerun with cjdns_accept_key_change=true "
                "for this host; otherwise find out why its key changed."
                % (host, public_key, path, old["public_key"]))
        entry = {"public_key": public_key, "ipv6": ipv6}
        if old == entry:
            return False, nodes
        nodes[host] = entry
        if write:
            atomic_write(path, dump(nodes), prefix=".registry.")
        return True, nodes
