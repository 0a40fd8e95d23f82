"""Tests for the meshfleet.mesh.cjdns_registry lookup (in-process)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError
from ansible_collections.meshfleet.mesh.plugins.lookup.cjdns_registry import LookupModule
from ansible_collections.meshfleet.mesh.plugins.module_utils import registry
from keyvectors import VECTORS, entry

A, B = VECTORS[0], VECTORS[1]


def lookup(*terms):
    return LookupModule().run(list(terms), variables={})


def test_returns_the_mapping_as_one_item(tmp_path):
    path = str(tmp_path / "cjdns_registry.yml")
    registry.record(path, "gw1", A["public_key"])
    registry.record(path, "rs-ben", B["public_key"])
    assert lookup(path) == [{"gw1": entry(A), "rs-ben": entry(B)}]


def test_missing_registry_is_empty(tmp_path):
    assert lookup(str(tmp_path / "never-written.yml")) == [{}]


@pytest.mark.parametrize("text, message", [
    ("nodes: {gw1: [\n", "is not valid YAML"),
    ("nodes:\n  gw1: {public_key: %s, ipv6: '%s'}\n" % (A["public_key"], B["ipv6"]),
     "node 'gw1' lists ipv6 %s but its key gives %s" % (B["ipv6"], A["ipv6"])),
    ("nodes:\n  gw1: {public_key: %s}\n" % A["public_key"][:-2], "node 'gw1': public key"),
    ("[]\n", "must be a mapping with a 'nodes' mapping"),
])
def test_bad_registry_raises_lookup_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "cjdns_registry.yml"
    path.write_text(text)
    with pytest.raises(AnsibleLookupError) as info:
        lookup(str(path))
    assert info.value.message.startswith("key registry %s" % path)
    assert message in info.value.message


def test_unreadable_registry_raises_lookup_error(tmp_path):
    with pytest.raises(AnsibleLookupError) as info:
        lookup(str(tmp_path))
    assert info.value.message == "key registry %s cannot be read: Is a directory" % tmp_path


@pytest.mark.parametrize("terms", [(), ("a.yml", "b.yml")])
def test_exactly_one_path(terms):
    with pytest.raises(AnsibleLookupError) as info:
        lookup(*terms)
    assert info.value.message == "cjdns_registry takes exactly one path"
