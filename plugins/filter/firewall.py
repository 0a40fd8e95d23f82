# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Firewall table filter.  Documentation: the sidecar ``firewall_table.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.firewall import assemble


def firewall_table(names, values, chains):
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        raise AnsibleFilterError(
            "firewall_table takes the parts' fact names and their values, two lists of one length"
        )
    return assemble(dict(zip(names, values, strict=True)), chains)


class FilterModule:
    def filters(self):
        return {"firewall_table": firewall_table}
