"""Tests for the cjdns filter and test plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.cjdns import FilterModule
from ansible_collections.meshfleet.mesh.plugins.test import cjdns as cjdns_tests
from ansible_collections.meshfleet.mesh.plugins.test import cjdns_private_key as private_key_tests
from keyvectors import VECTORS

FILTERS = FilterModule().filters()
TESTS = {**cjdns_tests.TestModule().tests(), **private_key_tests.TestModule().tests()}
NON_FC_PRIVATE = "fefe3f428cc83bea845c3dc07c94e2b24f44ebc2c380b566f199402e81795f78"
NON_FC_PUBLIC = "358rcy4vyrbwpby41jyz3q15rlgfu4h7wdpgd4mdtn18f1m19lm0.k"


def test_filter_names():
    assert set(FILTERS) == {"cjdns_ipv6", "cjdns_public_key", "cjdns_peer_password"}
    assert set(TESTS) == {
        "valid_cjdns_public_key", "valid_cjdns_private_key",
        # deprecated, until 0.2.0
        "cjdns_public_key", "cjdns_private_key",
    }


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["ipv6"])
def test_filters_on_vectors(vector):
    assert FILTERS["cjdns_public_key"](vector["private_key"]) == vector["public_key"]
    assert FILTERS["cjdns_ipv6"](vector["public_key"]) == vector["ipv6"]
    assert TESTS["valid_cjdns_public_key"](vector["public_key"]) is True
    assert TESTS["valid_cjdns_private_key"](vector["private_key"]) is True


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc.k", "public key 'abc.k' must be 52 base32 characters followed by '.k', got 3"),
        (NON_FC_PUBLIC, "does not start with fc"),
        (None, "public key must be a string"),
    ],
)
def test_cjdns_ipv6_errors(value, message):
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["cjdns_ipv6"](value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "value, message",
    [
        ("ab" * 31 + "a", "private key must be 64 hexadecimal characters, got 63"),
        (NON_FC_PRIVATE, "which does not start with fc, so cjdns would reject it"),
        ("x" * 64, "character 0 (counting from 0) is not hexadecimal"),
    ],
)
def test_cjdns_public_key_errors(value, message):
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["cjdns_public_key"](value)
    assert message in str(info.value)
    assert value[:16] not in str(info.value)


def test_cjdns_peer_password():
    secret = "correct horse battery staple"
    password = FILTERS["cjdns_peer_password"](secret, "node1", "node2")
    assert password == "hfp6vx5pu6q5vlqj1dhu9545rs1xr7dg"
    assert FILTERS["cjdns_peer_password"](secret, "node2", "node1") == password
    with pytest.raises(AnsibleFilterError, match="cannot peer with itself"):
        FILTERS["cjdns_peer_password"](secret, "node1", "node1")
    with pytest.raises(AnsibleFilterError, match="secret must not be empty"):
        FILTERS["cjdns_peer_password"]("", "node1", "node2")
    with pytest.raises(AnsibleFilterError, match="host_b must be a string, got int"):
        FILTERS["cjdns_peer_password"](secret, "node1", 2)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "abc.k",
        NON_FC_PUBLIC,
        VECTORS[0]["public_key"][:-2],
        VECTORS[0]["public_key"].upper(),
        ["x"],
    ],
)
def test_valid_cjdns_public_key_test_false(value):
    assert TESTS["valid_cjdns_public_key"](value) is False


@pytest.mark.parametrize("value", ["", "ab" * 31 + "a", NON_FC_PRIVATE, "x" * 64, None])
def test_valid_cjdns_private_key_test_false(value):
    assert TESTS["valid_cjdns_private_key"](value) is False


@pytest.mark.parametrize(
    "old, new, good, bad",
    [
        ("cjdns_public_key", "valid_cjdns_public_key", VECTORS[0]["public_key"], NON_FC_PUBLIC),
        ("cjdns_private_key", "valid_cjdns_private_key", VECTORS[0]["private_key"], NON_FC_PRIVATE),
    ],
)
def test_old_test_names_still_work_and_warn(monkeypatch, old, new, good, bad):
    """The old test names answer as the new ones until 0.2.0, each use with Ansible's
    deprecation warning naming the new test."""
    from ansible.utils.display import Display

    warned = []
    monkeypatch.setattr(Display, "deprecated", lambda self, msg, **kw: warned.append((msg, kw)))
    assert TESTS[old](good) is True
    assert TESTS[old](bad) is False
    assert len(warned) == 2
    msg, kw = warned[0]
    assert "meshfleet.mesh.%s is renamed meshfleet.mesh.%s" % (old, new) in msg
    assert kw == {"version": "0.2.0", "collection_name": "meshfleet.mesh"}


TEMPLAR_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.template import Templar, trust_as_template
templar = Templar(loader=None, variables=json.loads(sys.argv[2]))
out = [templar.template(trust_as_template(sys.argv[3]))]
try:
    templar.template(trust_as_template("{{ 'x.k' | meshfleet.mesh.cjdns_ipv6 }}"))
except Exception as exc:
    out.append(str(exc))
print(json.dumps(out))
"""


def test_through_templar():
    """The plugins load by their collection names in a real template (own process, so the
    global collection loader of this test process is left alone)."""
    collections = next(p for p in sys.path if p.endswith(os.path.join(".build", "collections")))
    vector = VECTORS[0]
    template = (
        "{{ priv | meshfleet.mesh.cjdns_public_key | meshfleet.mesh.cjdns_ipv6 }} "
        "{{ pub is meshfleet.mesh.valid_cjdns_public_key }} "
        "{{ 'x.k' is meshfleet.mesh.valid_cjdns_public_key }} "
        "{{ priv is meshfleet.mesh.valid_cjdns_private_key }} "
        "{{ 's' | meshfleet.mesh.cjdns_peer_password('node1', 'node2') | length }}"
    )
    variables = {"priv": vector["private_key"], "pub": vector["public_key"]}
    proc = subprocess.run(
        [sys.executable, "-c", TEMPLAR_SCRIPT, collections, json.dumps(variables), template],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rendered, error = json.loads(proc.stdout)
    assert rendered == f"{vector['ipv6']} True False True 32"
    assert "public key 'x.k' must be 52 base32 characters followed by '.k', got 1" in error
