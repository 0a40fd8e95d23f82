# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client planner filter.  Documentation: the sidecar ``client_plan.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.client import ClientError, plan


def client_plan(host, settings, groups, pools, registry, allocations, node,
                check_mode=False):
    if not all(isinstance(v, dict) for v in (settings, groups, node)) or not all(
            isinstance(v, dict) or v is None for v in (pools, registry, allocations)):
        raise AnsibleFilterError(
            "client_plan takes the host name, the client_* settings, the inventory's groups, "
            "the gateways' pools, the key registry, the gateways' allocations, the node's "
            "settings (mappings)")
    try:
        return plan(host, settings, groups, pools or {}, registry or {}, allocations or {},
                    node, check_mode=bool(check_mode))
    except (ClientError, KeyError) as exc:
        raise AnsibleFilterError("client_plan: %s" % exc) from None


class FilterModule:
    """meshfleet.mesh client filters."""

    def filters(self):
        return {"client_plan": client_plan}
