# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test for cjdns public keys; documented in cjdns_public_key.yml beside this one."""

from __future__ import annotations

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    parse_public_key,
)


def cjdns_public_key(value):
    """True if value is a usable cjdns public key (52 base32 chars + '.k', fc address)."""
    try:
        parse_public_key(value)
    except CjdnsKeyError:
        return False
    return True


class TestModule:
    """meshfleet.mesh cjdns tests."""

    __test__ = False  # not a pytest test class

    def tests(self):
        return {"cjdns_public_key": cjdns_public_key}
