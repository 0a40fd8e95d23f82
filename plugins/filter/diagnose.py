# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client diagnosis filter.  Documentation: the sidecar ``diagnose_client.yml``."""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.diagnose import (
    BROKEN,
    diagnose,
    render,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    status_from_result,
)


def _status(result):
    """As the status report reads a result, with the connection's own words when the
    module could not even start (docker: "No such container")."""
    if isinstance(result, dict) and result.get("failed") and result.get("module_stderr"):
        first = str(result["module_stderr"]).strip().splitlines() or [""]
        return {"unreachable": "status failed: %s" % first[0][:200]}
    return status_from_result(result)


def diagnose_client(results, client, gateways, registry=None, hosts=None, inventory=None):
    if not isinstance(results, dict) or not isinstance(gateways, (list, tuple)):
        raise AnsibleFilterError(
            "diagnose_client takes a mapping of host to registered fleet_status result, "
            "the client's name and its list of gateways"
        )
    if inventory and os.path.isabs(str(inventory)):
        # Relative to where the playbook runs, when it is below it: shorter commands.
        relative = os.path.relpath(str(inventory))
        inventory = relative if not relative.startswith("..") else str(inventory)
    links = diagnose(
        {
            "client": client,
            "gateways": list(gateways),
            "inventory": inventory,
            "registry": registry or {},
            "statuses": {
                host: _status(results.get(host)) for host in [client, *gateways]
            },
            "hosts": hosts or {},
        }
    )
    broken = next((link for link in links if link["state"] == BROKEN), None)
    return {"links": links, "broken": broken, "lines": render(client, list(gateways), links)}


class FilterModule:
    def filters(self):
        return {"diagnose_client": diagnose_client}
