# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for cjdns keys; documented in the cjdns_*.yml files beside this one."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    ipv6_from_public_key,
    peer_password,
    public_key_from_private,
)


def cjdns_ipv6(public_key):
    """cjdns IPv6 address (full form) of a ``.k`` public key."""
    try:
        return ipv6_from_public_key(public_key)
    except CjdnsKeyError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cjdns_public_key(private_key):
    """``.k`` public key of a 64-hex-character private key."""
    try:
        return public_key_from_private(private_key)
    except CjdnsKeyError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cjdns_peer_password(secret, host_a, host_b):
    """Per-pair peering password derived from one fleet secret."""
    try:
        return peer_password(secret, host_a, host_b)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """meshfleet.mesh cjdns filters."""

    def filters(self):
        return {
            "cjdns_ipv6": cjdns_ipv6,
            "cjdns_public_key": cjdns_public_key,
            "cjdns_peer_password": cjdns_peer_password,
        }
