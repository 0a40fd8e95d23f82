# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test for cjdns public keys; documented in valid_cjdns_public_key.yml beside this one
(and the deprecated old name in cjdns_public_key.yml)."""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    parse_public_key,
)
from ansible_collections.meshfleet.mesh.plugins.plugin_utils.deprecation import warn_renamed


def valid_cjdns_public_key(value):
    """True if value is a usable cjdns public key (52 base32 chars + '.k', fc address)."""
    try:
        parse_public_key(value)
    except CjdnsKeyError:
        return False
    return True


def cjdns_public_key(value):
    """Deprecated name of valid_cjdns_public_key (it read like the filter of the same name,
    which derives a public key)."""
    warn_renamed("test", "cjdns_public_key")
    return valid_cjdns_public_key(value)


class TestModule:
    """meshfleet.mesh cjdns tests."""

    __test__ = False  # not a pytest test class

    def tests(self):
        return {
            "valid_cjdns_public_key": valid_cjdns_public_key,
            "cjdns_public_key": cjdns_public_key,
        }
