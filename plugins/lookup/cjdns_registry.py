# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cjdns_registry
short_description: Read the fleet's cjdns key registry
version_added: 0.1.0
description:
  - "Returns the registry written by M(meshfleet.mesh.cjdns_registry) as one mapping
    C({host: {public_key, ipv6}}), after checking that every entry's address matches
    its key. A file that is not valid YAML is an error that names it."
options:
  _terms:
    description: The registry file (one path).
    required: true
"""

EXAMPLES = r"""
- name: Public key of the gateway named in the inventory
  ansible.builtin.debug:
    msg: "{{ lookup('meshfleet.mesh.cjdns_registry', cjdns_registry_path)['gw1'].public_key }}"
"""

RETURN = r"""
_raw:
  description: "One mapping of inventory hostname to C({public_key, ipv6})."
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.meshfleet.mesh.plugins.module_utils.registry import (
    RegistryError,
    load,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if len(terms) != 1:
            raise AnsibleLookupError("cjdns_registry takes exactly one path")
        try:
            return [load(terms[0])]
        except RegistryError as exc:
            raise AnsibleLookupError(str(exc)) from None
