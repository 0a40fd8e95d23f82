"""Tests for plugins/module_utils/registry.py (trust on first use, on the shared
state-file helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils import registry
from keyvectors import VECTORS

KEY_A, KEY_B = VECTORS[0]["public_key"], VECTORS[1]["public_key"]


def test_record_then_load(tmp_path):
    path = str(tmp_path / "cjdns_registry.yml")
    assert registry.record(path, "n1", KEY_A)[0] is True
    assert registry.record(path, "n1", KEY_A)[0] is False
    assert registry.load(path) == {"n1": {"public_key": KEY_A, "ipv6": VECTORS[0]["ipv6"]}}
    assert Path(path).read_text().startswith(registry.HEADER)
    # Only the registry and its lock file: the temporary file was renamed into place.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cjdns_registry.yml.lock",
                                                          "cjdns_registry.yml"]


def test_changed_key_refused_unless_accepted(tmp_path):
    path = str(tmp_path / "r.yml")
    registry.record(path, "n1", KEY_A)
    with pytest.raises(registry.RegistryError, match=KEY_B):
        registry.record(path, "n1", KEY_B)
    assert registry.record(path, "n1", KEY_B, accept_change=True)[0] is True
    assert registry.load(path)["n1"]["public_key"] == KEY_B


def test_check_mode_does_not_write(tmp_path):
    path = tmp_path / "r.yml"
    changed, nodes = registry.record(str(path), "n1", KEY_A, write=False)
    assert changed and "n1" in nodes and not path.exists()


def test_registry_written_before_schema_version_still_loads(tmp_path):
    """An operator's registry from before the field: read as version 1, left as it is by
    a run that changes nothing, given the field by the next run that records a key."""
    path = tmp_path / "cjdns_registry.yml"
    legacy = registry.HEADER + "nodes:\n  n1:\n    ipv6: %s\n    public_key: %s\n" % (
        VECTORS[0]["ipv6"], KEY_A)
    path.write_text(legacy)
    assert registry.record(str(path), "n1", KEY_A)[0] is False
    assert path.read_text() == legacy
    assert registry.record(str(path), "n2", KEY_B)[0] is True
    assert path.read_text().startswith(registry.HEADER + "schema_version: 1\nnodes:\n")
    assert set(registry.load(str(path))) == {"n1", "n2"}


def test_registry_of_a_newer_collection_is_refused(tmp_path):
    path = tmp_path / "cjdns_registry.yml"
    path.write_text("schema_version: %d\nnodes: {}\n" % (registry.SCHEMA_VERSION + 1))
    with pytest.raises(registry.RegistryError, match="written by a newer meshfleet.mesh"):
        registry.record(str(path), "n1", KEY_A)
    assert path.read_text() == "schema_version: %d\nnodes: {}\n" % (registry.SCHEMA_VERSION + 1)
