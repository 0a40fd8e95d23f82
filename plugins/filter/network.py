# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network filters.  Documentation: the sidecar ``cidr_overlaps.yml`` next to this file."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def _network(value, what):
    if not isinstance(value, str) or "/" not in value:
        raise AnsibleFilterError("%s %r is not a network in CIDR notation (e.g. 192.168.50.0/24)"
                                 % (what, value))
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise AnsibleFilterError("%s %r is not a valid network: %s"
                                     % (what, value, exc)) from None
        raise AnsibleFilterError("%s %r has host bits set; did you mean %s?"
                                 % (what, value, loose)) from None


def cidr_overlaps(network, others, what="network"):
    """The entries of ``others`` that share an address with ``network``."""
    mine = _network(network, what)
    if isinstance(others, str):
        others = [others]
    out = []
    for other in others or []:
        if other is None or (isinstance(other, str) and not other.strip()):
            continue  # an unset pool
        theirs = ipaddress.ip_network(str(other).strip(), strict=False)
        if theirs.version == mine.version and theirs.overlaps(mine):
            out.append(other)
    return out


class FilterModule:
    """meshfleet.mesh network filters."""

    def filters(self):
        return {"cidr_overlaps": cidr_overlaps}
