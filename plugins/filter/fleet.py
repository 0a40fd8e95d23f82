# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet status filter.  Documentation: the sidecar ``fleet_status_report.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.fleet_status import (
    build_report,
    render_dot,
    render_markdown,
    status_from_result,
)


def fleet_status_report(
    results, groups, peers=None, gateways=None, links=None, registry=None, generated=None
):
    if not isinstance(results, dict) or not isinstance(groups, dict):
        raise AnsibleFilterError(
            "fleet_status_report takes a mapping of host to registered "
            "result, and a mapping of host to its group_names"
        )
    expected = {
        "nodes": {
            host: {
                "groups": list(names or []),
                "hood": next((g for g in sorted(names or []) if g.startswith("hood_")), None),
            }
            for host, names in groups.items()
        },
        "peers": peers or {},
        "gateways": gateways or {},
        "links": [
            {"name": link.get("name"), "ends": [end.get("host") for end in link.get("ends", [])]}
            for link in links or []
        ],
        "registry": registry or {},
    }
    statuses = {host: status_from_result(results.get(host)) for host in groups}
    report = build_report(expected, statuses, generated=generated)
    return {"report": report, "markdown": render_markdown(report), "dot": render_dot(report)}


class FilterModule:
    def filters(self):
        return {"fleet_status_report": fleet_status_report}
