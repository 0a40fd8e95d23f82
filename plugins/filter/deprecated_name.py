# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: pass a value through, with the deprecation warning of the old name it came from."""

from __future__ import annotations

DOCUMENTATION = r"""
name: deprecated_name
version_added: 0.1.0
short_description: Pass a value through, warning that the name it was read from is deprecated
description:
  - Returns its input unchanged and emits Ansible's deprecation warning for a name this
    collection renamed (the warning says the new name and the release that removes the old
    one). Ansible shows each such warning once per run.
  - The roles use it to keep an old variable or group working for one release, for example
    C(mesh_point_mesh_interface) defaults to the deprecated C(mesh_point_device) when that is set.
  - Only the names in the collection's table of renames (C(plugins/module_utils/renames.py))
    are accepted; any other name is an error.
options:
  _input:
    description: The value read from the old name.
    type: raw
    required: true
  name:
    description: The old name.
    type: str
    required: true
  kind:
    description: What the name is.
    type: str
    choices: [variable, group, test]
    default: variable
"""

EXAMPLES = r"""
# roles/mesh_point/defaults/main.yml
mesh_point_mesh_interface: >-
  {{ mesh_point_device | meshfleet.mesh.deprecated_name('mesh_point_device')
     if mesh_point_device is defined else 'mesh0' }}
"""

RETURN = r"""
_value:
  description: The input, unchanged.
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils.renames import RENAMED
from ansible_collections.meshfleet.mesh.plugins.plugin_utils.deprecation import warn_renamed


def deprecated_name(value, name, kind="variable"):
    if (kind, name) not in RENAMED:
        raise AnsibleFilterError(
            "deprecated_name: %s %r is not a name meshfleet.mesh renamed (known: %s)"
            % (kind, name, ", ".join("%s %s" % key for key in sorted(RENAMED)))
        )
    warn_renamed(kind, name)
    return value


class FilterModule:
    def filters(self):
        return {"deprecated_name": deprecated_name}
