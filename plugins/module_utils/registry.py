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
operator accepts the change.  The file is read and written only through
:class:`statefile.StateFile` (lock, atomic write, ``schema_version``).  Used on the
controller only.
"""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    ipv6_from_public_key,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import (
    StateFile,
)

__all__ = ["HEADER", "SCHEMA_VERSION", "RegistryError", "dump", "load", "record", "state_file"]

HEADER = (
    "# cjdns key registry of this fleet, written by meshfleet.mesh (role cjdns).\n"
    "# Public keys and addresses only: review changes like code. A changed key is\n"
    "# refused until the operator accepts it (cjdns_accept_key_change: true).\n"
)


SCHEMA_VERSION = 1


class RegistryError(ValueError):
    """The registry file cannot be used, or a node's key conflicts with it."""


def state_file(path):
    """The registry at ``path`` as a :class:`StateFile` (its one reader and writer)."""
    return StateFile(path, "key registry", "nodes", RegistryError,
                     schema_version=SCHEMA_VERSION, header=HEADER,
                     check=lambda nodes: _check(path, nodes))


def _check(path, nodes):
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


def load(path):
    """Return ``{host: {public_key, ipv6}}`` from ``path`` ({} when it does not exist)."""
    return state_file(path).read()


def dump(nodes):
    """The registry file's text for ``nodes``."""
    return state_file("").dump(nodes)


def record(path, host, public_key, accept_change=False, write=True):
    """Record ``host``'s key; return (changed, nodes).  Raises RegistryError on a conflict."""
    ipv6 = ipv6_from_public_key(public_key)
    with state_file(path).update(write=write) as update:
        nodes = update.data
        old = nodes.get(host)
        if old and old["public_key"] != public_key and not accept_change:
            raise RegistryError(
                "host %s presents cjdns key %s but the key registry %s records %s. If the "
                "node was reinstalled on purpose, rerun with cjdns_accept_key_change=true "
                "for this host; otherwise find out why its key changed."
                % (host, public_key, path, old["public_key"]))
        nodes[host] = {"public_key": public_key, "ipv6": ipv6}
    return update.changed, nodes
