# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: is a string a usable cjdns private key?  Documented in the sidecar YAML
(valid_cjdns_private_key.yml; the deprecated old name in cjdns_private_key.yml)."""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    check_private_key,
)
from ansible_collections.meshfleet.mesh.plugins.plugin_utils.deprecation import warn_renamed


def valid_cjdns_private_key(value):
    """True for 64 hex characters whose cjdns address starts with fc."""
    try:
        check_private_key(str(value))
    except CjdnsKeyError:
        return False
    return True


def cjdns_private_key(value):
    """Deprecated name of valid_cjdns_private_key."""
    warn_renamed("test", "cjdns_private_key")
    return valid_cjdns_private_key(value)


class TestModule:
    __test__ = False  # not a pytest test class

    def tests(self):
        return {
            "valid_cjdns_private_key": valid_cjdns_private_key,
            "cjdns_private_key": cjdns_private_key,
        }
