#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cjdns_registry
short_description: Record a node's cjdns public key in the fleet's key registry
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin); nothing executes on the node.
  - Keeps a YAML file beside the inventory that lists each node's public key and cjdns
    IPv6 address. Roles that pin keys read it with the
    P(meshfleet.mesh.cjdns_registry#lookup) lookup, so a C(--limit) run still pins
    nodes that were not part of the run.
  - Trust on first use. A node whose key differs from the recorded one fails, with a
    message naming the host and both keys, unless O(accept_change=true).
  - Safe with many forks, since writes are serialised with a file lock.
  - The file carries a C(schema_version); one written by a newer meshfleet.mesh is refused.
options:
  path:
    description: The registry file on the controller.
    type: path
    required: true
  host:
    description: The inventory name to record the key under.
    type: str
    default: the current inventory_hostname
  public_key:
    description:
      - The node's public key (C(....k)). When empty (check mode on a node without a
        key yet), nothing is recorded.
    type: str
    required: true
  accept_change:
    description: Accept a key that differs from the recorded one and overwrite the entry.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
author:
  - meshfleet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record this node's key
  meshfleet.mesh.cjdns_registry:
    path: "{{ inventory_dir }}/cjdns_registry.yml"
    public_key: "{{ keypair.public_key }}"
"""

RETURN = r"""
entry:
  description: What the registry now lists for the host.
  returned: success
  type: dict
  sample: {public_key: q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k,
           ipv6: "fcfb:a2bb:0db5:f5d0:83d6:c0b7:a756:94c8"}
"""
