# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge planner filter.  Documentation: the sidecar ``bridge_plan.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.bridge import BridgeError, plan


def bridge_plan(host, links, inventory, facts, registry, settings, probe=None):
    """This host's side of the fleet's bridge links, or the problems with the inputs."""
    try:
        return plan(host, links, inventory, facts, registry, settings, probe=probe)
    except BridgeError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """meshfleet.mesh bridge planner filter."""

    def filters(self):
        return {"bridge_plan": bridge_plan}
