# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side action: record a node's public key in the fleet's key registry."""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import CjdnsKeyError
from ansible_collections.meshfleet.mesh.plugins.module_utils.registry import (
    RegistryError,
    record,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "host", "public_key", "accept_change"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        host = args.get("host") or task_vars["inventory_hostname"]
        public_key = args.get("public_key") or ""
        if not args.get("path"):
            return dict(result, failed=True, msg="path is required")
        if not public_key:
            # Check mode on a node that has no key yet: nothing to record.
            return dict(result, changed=self._task.check_mode, skipped_reason="no key yet")
        try:
            # Not bool(): "false" from -e or an inventory file is a non-empty string.
            accept_change = args.get("accept_change")
            accept_change = accept_change is not None and boolean(accept_change, strict=True)
        except TypeError:
            return dict(result, failed=True, msg="accept_change: %r is not a boolean"
                        % args.get("accept_change"))
        try:
            changed, nodes = record(args["path"], host, public_key,
                                    accept_change=accept_change,
                                    write=not self._task.check_mode)
        except (RegistryError, CjdnsKeyError) as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(changed=changed, path=args["path"], entry=nodes[host])
        return result
