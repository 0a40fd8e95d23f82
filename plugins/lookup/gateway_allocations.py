# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gateway_allocations
short_description: Read the fleet's gateway client allocations
version_added: 0.1.0
description:
  - "Returns the allocation file written by M(meshfleet.mesh.gateway_allocations) as one
    mapping C({gateway: {ipv4: {pool, address, clients}, ipv6: {...}}}); C({}) when the
    file does not exist yet (before any gateway ran). A file that is not valid YAML, has
    the wrong shape or was written by a newer meshfleet.mesh is an error that names it."
options:
  _terms:
    description: The allocation file (one path).
    required: true
"""

EXAMPLES = r"""
- name: The address gw1 gave this client
  ansible.builtin.debug:
    msg: >-
      {{ lookup('meshfleet.mesh.gateway_allocations', gateway_allocations_path)['gw1']
         .ipv4.clients[inventory_hostname] }}
"""

RETURN = r"""
_raw:
  description: "One mapping of gateway inventory hostname to its allocation per family."
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.meshfleet.mesh.plugins.module_utils.gateway import (
    GatewayError,
    load,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if len(terms) != 1:
            raise AnsibleLookupError("gateway_allocations takes exactly one path")
        try:
            return [load(terms[0])]
        except GatewayError as exc:
            raise AnsibleLookupError(str(exc)) from None
