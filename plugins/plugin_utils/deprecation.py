# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the renames: one Ansible deprecation warning per old name in use.

Ansible shows a given deprecation message once per run, however many hosts and
templates use the old name (the message names no host)."""

from __future__ import annotations

from ansible.utils.display import Display
from ansible_collections.meshfleet.mesh.plugins.module_utils.renames import (
    COLLECTION,
    REMOVAL_VERSION,
    message,
)


def warn_renamed(kind, old, display=None):
    """Emit the deprecation warning for the old ``kind`` name ``old`` (group, variable, test)."""
    (display or Display()).deprecated(
        message(kind, old), version=REMOVAL_VERSION, collection_name=COLLECTION
    )
