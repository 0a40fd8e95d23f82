#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cjdns_admin
short_description: Call a function of the local cjdroute admin API
version_added: 0.1.0
description:
  - Calls one function of cjdroute's admin API on the node (bencode over UDP with cookie
    and sha256 authentication), reading the admin address and password from the node's
    C(cjdroute.conf), so the password never passes through Ansible.
  - Used by the validation playbook to read peer state and tunnel connections, and to
    ask for a tunnel that the gateway should refuse.
  - Functions whose name does not start with a read-only verb are not called in check mode.
options:
  function:
    description: The admin function, for example C(InterfaceController_peerStats).
    type: str
    required: true
  args:
    description: Its arguments.
    type: dict
    default: {}
  all_pages:
    description:
      - Follow the C(more)/C(page) pagination and return the concatenated list found
        under this key of each reply (for example C(peers)).
    type: str
  config_path:
    description: The node's cjdroute.conf.
    type: path
    default: /etc/cjdns/cjdroute.conf
  timeout:
    description: Seconds to wait for each reply.
    type: float
    default: 3
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details: Read-only functions (names containing C(_list), C(_show), C(Stats), C(_get),
      C(ping)) run in check mode; others are skipped.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
author:
  - meshfleet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Peer states
  meshfleet.mesh.cjdns_admin:
    function: InterfaceController_peerStats
    all_pages: peers
  register: peers
"""

RETURN = r"""
reply:
  description: The decoded reply (or, with O(all_pages), the concatenated list).
  returned: success
  type: raw
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_admin import (
    Admin,
    AdminError,
    admin_settings,
)

READ_ONLY = ("_list", "_show", "Stats", "_get", "ping", "_dump", "Info")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            function=dict(type="str", required=True),
            args=dict(type="dict", default={}),
            all_pages=dict(type="str"),
            config_path=dict(type="path", default="/etc/cjdns/cjdroute.conf"),
            timeout=dict(type="float", default=3),
        ),
        supports_check_mode=True,
    )
    function = module.params["function"]
    read_only = any(part in function for part in READ_ONLY)
    if module.check_mode and not read_only:
        module.exit_json(changed=True, skipped=True, msg="not called in check mode")
    try:
        admin = Admin(*admin_settings(module.params["config_path"]),
                      timeout=module.params["timeout"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="cannot read the admin settings from %s: %s"
                         % (module.params["config_path"], exc))
    try:
        if module.params["all_pages"]:
            reply = admin.call_all_pages(function, module.params["args"],
                                         module.params["all_pages"])
        else:
            reply = admin.call(function, module.params["args"])
    except AdminError as exc:
        module.fail_json(msg=str(exc))
    finally:
        admin.close()
    module.exit_json(changed=not read_only, reply=reply)


if __name__ == "__main__":
    main()
