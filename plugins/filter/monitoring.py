# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring planner filter.  Documentation: the sidecar ``monitoring_plan.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.monitoring import plan


def monitoring_plan(host, servers, nodes, registry, settings, gateways=None, uplink=""):
    if (
        not isinstance(nodes, dict)
        or not isinstance(registry, dict)
        or not isinstance(settings, dict)
    ):
        raise AnsibleFilterError(
            "monitoring_plan takes the host name, the monitoring servers, a mapping of node "
            "to group_names, the key registry and the role's settings"
        )
    return plan(host, servers, nodes, registry, settings, gateways=gateways, uplink=uplink)


class FilterModule:
    def filters(self):
        return {"monitoring_plan": monitoring_plan}
