# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network filters.  Documentation: the sidecar ``cidr_overlaps.yml`` next to this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils import addressing


def cidr_overlaps(network, others, what="network"):
    """The entries of ``others`` that share an address with ``network``."""
    try:
        return addressing.cidr_overlaps(network, others, what)
    except addressing.AddressingError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """meshfleet.mesh network filters."""

    def filters(self):
        return {"cidr_overlaps": cidr_overlaps}
