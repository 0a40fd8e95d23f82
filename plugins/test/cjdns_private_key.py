# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: is a string a usable cjdns private key?  Documented in the sidecar YAML."""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    check_private_key,
)


def cjdns_private_key(value):
    """True for 64 hex characters whose cjdns address starts with fc."""
    try:
        check_private_key(str(value))
    except CjdnsKeyError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"cjdns_private_key": cjdns_private_key}
