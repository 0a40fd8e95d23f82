# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names this collection renamed, and until when the old ones keep working.

One table for the deprecation messages (``plugins/plugin_utils/deprecation.py``, the
``meshfleet.mesh.deprecated_name`` filter, the old test names) and for reading an
inventory that still uses an old group name (:func:`canonical_groups`, used by the
monitoring and fleet status planners). Pure data: it is also shipped to the nodes.
"""

from __future__ import annotations

COLLECTION = "meshfleet.mesh"
# The old names work, with a deprecation warning, until this release removes them.
REMOVAL_VERSION = "0.2.0"

# (kind, old name) -> new name.
RENAMED = {
    ("group", "mesh_point"): "mesh_points",
    ("variable", "mesh_point_device"): "mesh_point_mesh_interface",
    ("variable", "cjdns_tun_device"): "cjdns_tun_interface",
    ("test", "cjdns_public_key"): "valid_cjdns_public_key",
    ("test", "cjdns_private_key"): "valid_cjdns_private_key",
}

_SENTENCES = {
    "group": "The inventory group {old} is renamed {new}: put its hosts in {new}.",
    "variable": "The variable {old} is renamed {new}: set {new} instead.",
    "test": (
        "The test {collection}.{old} is renamed {collection}.{new}: use `is {collection}.{new}`."
    ),
}


def new_name(kind, old):
    """The name that replaces ``old``; KeyError for a name that was not renamed."""
    return RENAMED[(kind, old)]


def message(kind, old):
    """The deprecation sentence for an old name (without the removal version)."""
    return _SENTENCES[kind].format(old=old, new=new_name(kind, old), collection=COLLECTION)


def canonical_groups(groups):
    """``group_names`` with each old group name replaced by its new one (order kept, no
    duplicates): a host in ``mesh_point`` counts as a host in ``mesh_points``."""
    out = []
    for group in groups or []:
        group = RENAMED.get(("group", group), group)
        if group not in out:
            out.append(group)
    return out
