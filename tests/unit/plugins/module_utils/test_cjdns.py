"""Tests for plugins/module_utils/cjdns.py against keys made by a real cjdroute."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import random
import sys

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils import cjdns
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    base32_decode,
    base32_encode,
    check_private_key,
    generate_keypair,
    ipv6_from_public_key,
    parse_public_key,
    peer_password,
    public_key_from_private,
)
from hypothesis import given
from hypothesis import strategies as st
from keyvectors import VECTORS

# sha256(b"meshfleet non-fc 0"): a private key whose address is b450:..., not fc.
NON_FC_PRIVATE = "fefe3f428cc83bea845c3dc07c94e2b24f44ebc2c380b566f199402e81795f78"
NON_FC_PUBLIC = "358rcy4vyrbwpby41jyz3q15rlgfu4h7wdpgd4mdtn18f1m19lm0.k"
GOOD_PUBLIC = VECTORS[0]["public_key"]
GOOD_PRIVATE = VECTORS[0]["private_key"]

BACKENDS = {"pure-python": cjdns._x25519_base_pure}
if cjdns._X25519 is not None:
    BACKENDS["cryptography"] = cjdns._x25519_base_cryptography


def test_vectors_loaded():
    assert len(VECTORS) == 20


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, monkeypatch):
    monkeypatch.setattr(cjdns, "_x25519_base", BACKENDS[request.param])
    return request.param


def test_both_backends_available():
    assert set(BACKENDS) == {"pure-python", "cryptography"}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["ipv6"])
def test_public_key_from_private(vector, backend):
    assert public_key_from_private(vector["private_key"]) == vector["public_key"]
    assert public_key_from_private(vector["private_key"].upper()) == vector["public_key"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["ipv6"])
def test_ipv6_from_public_key(vector):
    assert ipv6_from_public_key(vector["public_key"]) == vector["ipv6"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["ipv6"])
def test_parse_public_key_roundtrip(vector):
    raw = parse_public_key(vector["public_key"])
    assert len(raw) == 32
    assert base32_encode(raw) + ".k" == vector["public_key"]


def test_pure_python_used_without_cryptography(monkeypatch):
    """A node without `cryptography` loads the module and gets the same answers."""
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    spec = importlib.util.spec_from_file_location("cjdns_without_cryptography", cjdns.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.X25519_BACKEND == "pure-python"
    for vector in VECTORS:
        assert module.public_key_from_private(vector["private_key"]) == vector["public_key"]


def test_check_private_key_normalizes():
    assert check_private_key(f" {GOOD_PRIVATE.upper()}\n") == GOOD_PRIVATE


# --- base32 -----------------------------------------------------------------------------


def test_base32_known_values():
    assert base32_encode(b"") == ""
    assert base32_encode(b"\x00") == "00"
    assert base32_encode(b"\xff") == "z7"  # low 5 bits first, then the remaining 3
    assert base32_decode("z7") == b"\xff"
    assert len(base32_encode(bytes(32))) == 52


@given(st.binary(max_size=80))
def test_base32_roundtrip(data):
    text = base32_encode(data)
    assert len(text) == (len(data) * 8 + 4) // 5
    assert set(text) <= set(cjdns.ALPHABET)
    assert base32_decode(text) == data


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0a", "character 'a' at position 1"),
        ("0B", "character 'B' at position 1"),
        ("0_1", "character '_' at position 1"),
        (" 00", "character ' ' at position 0"),
        ("0", "1 base32 characters is not a length"),
        ("000", "3 base32 characters is not a length"),
        ("zz", "sets bits past the end of 1 bytes"),
    ],
)
def test_base32_decode_rejects(text, fragment):
    with pytest.raises(CjdnsKeyError, match=fragment):
        base32_decode(text)


# --- malformed keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, message",
    [
        ("abc.k", "public key 'abc.k' must be 52 base32 characters followed by '.k', got 3"),
        (GOOD_PUBLIC[:-2], "does not end in '.k'"),
        (GOOD_PUBLIC[:-3] + ".k", "got 51"),
        ("0" + GOOD_PUBLIC, "got 53"),
        (GOOD_PUBLIC.upper()[:-2] + ".k", "is not in the cjdns base32 alphabet"),
        ("a" + GOOD_PUBLIC[1:], "character 'a' at position 0"),
        (GOOD_PUBLIC[:51] + "z.k", "sets bits past the end of 32 bytes"),
        (NON_FC_PUBLIC, "is not a valid cjdns key: its address b450:69b6:"),
        (42, "public key must be a string, got int"),
        (None, "public key must be a string, got NoneType"),
    ],
)
def test_malformed_public_keys(key, message):
    for func in (parse_public_key, ipv6_from_public_key):
        with pytest.raises(CjdnsKeyError) as info:
            func(key)
        assert message in str(info.value)


def test_non_fc_message_wording():
    with pytest.raises(CjdnsKeyError) as info:
        parse_public_key(NON_FC_PUBLIC)
    assert str(info.value) == (
        f"public key '{NON_FC_PUBLIC}' is not a valid cjdns key: its address "
        "b450:69b6:7bf0:5af9:d2ec:2182:5986:4acf does not start with fc"
    )


def test_long_public_key_shortened_in_message():
    with pytest.raises(CjdnsKeyError) as info:
        parse_public_key("0" * 500 + ".k")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "key, message",
    [
        (GOOD_PRIVATE[:-1], "private key must be 64 hexadecimal characters, got 63"),
        (GOOD_PRIVATE + "0", "got 65"),
        ("", "got 0"),
        (GOOD_PRIVATE[:10] + "g" + GOOD_PRIVATE[11:], "character 10 (counting from 0)"),
        (
            NON_FC_PRIVATE,
            "gives address b450:69b6:7bf0:5af9:d2ec:2182:5986:4acf, which does not start with fc",
        ),
        (12345, "private key must be a string, got int"),
    ],
)
def test_malformed_private_keys(key, message, backend):
    for func in (check_private_key, public_key_from_private):
        with pytest.raises(CjdnsKeyError) as info:
            func(key)
        text = str(info.value)
        assert message in text
        if isinstance(key, str) and len(key) > 8:
            # No piece of the secret longer than a few characters may leak.
            for start in range(len(key) - 8):
                assert key[start : start + 8].lower() not in text.lower()


def test_key_error_is_value_error():
    assert issubclass(CjdnsKeyError, ValueError)


# --- generation -------------------------------------------------------------------------


def test_generate_keypair_consistent(backend):
    for _i in range(3):
        private, public, ipv6 = generate_keypair()
        assert ipv6.startswith("fc")
        assert check_private_key(private) == private
        assert public_key_from_private(private) == public
        assert ipv6_from_public_key(public) == ipv6
        assert len(ipv6) == 39


def test_generate_keypair_retries_until_fc():
    """Feed a non-fc key first, then a known good one: the good one is returned."""
    draws = [bytes.fromhex(NON_FC_PRIVATE), bytes.fromhex(GOOD_PRIVATE)]
    calls = []

    def randbytes(n):
        calls.append(n)
        return draws.pop(0)

    private, public, ipv6 = generate_keypair(randbytes)
    assert calls == [32, 32]
    assert (private, public, ipv6) == (GOOD_PRIVATE, GOOD_PUBLIC, VECTORS[0]["ipv6"])


def test_generate_keypair_seeded_is_deterministic():
    first = generate_keypair(random.Random(7).randbytes)
    assert first == generate_keypair(random.Random(7).randbytes)
    assert first != generate_keypair(random.Random(8).randbytes)


def test_generate_keypair_rejects_short_randomness():
    with pytest.raises(ValueError, match="returned 31 bytes"):
        generate_keypair(lambda n: bytes(n - 1))


# --- peer passwords ---------------------------------------------------------------------

SECRET = "correct horse battery staple"


def test_peer_password_pinned():
    """Changing the derivation would break every existing peering: catch it."""
    assert peer_password(SECRET, "node1", "node2") == "hfp6vx5pu6q5vlqj1dhu9545rs1xr7dg"


def test_peer_password_derivation():
    mac = hmac.new(SECRET.encode(), b"meshfleet.mesh peer v1\0gw\0n\xc3\xb6de", hashlib.sha256)
    assert peer_password(SECRET, "nöde", "gw") == base32_encode(mac.digest()[:20])


def test_peer_password_symmetric_and_distinct():
    hosts = ["gw1", "gw2", "node1", "node2", "node10", "ñ", "a", "b"]
    seen = {}
    for a in hosts:
        for b in hosts:
            if a == b:
                continue
            password = peer_password(SECRET, a, b)
            assert password == peer_password(SECRET, b, a)
            assert len(password) == 32 and set(password) <= set(cjdns.ALPHABET)
            seen.setdefault(password, set()).add(frozenset((a, b)))
    assert all(len(pairs) == 1 for pairs in seen.values())
    assert len(seen) == len(hosts) * (len(hosts) - 1) // 2
    assert peer_password("other secret", "gw1", "gw2") != peer_password(SECRET, "gw1", "gw2")


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
def test_peer_password_property(secret, a, b):
    if a == b or "\0" in a + b:
        return
    assert peer_password(secret, a, b) == peer_password(secret, b, a)


@pytest.mark.parametrize(
    "args, message",
    [
        (("", "a", "b"), "secret must not be empty"),
        ((SECRET, "a", "a"), "cannot peer with itself"),
        ((SECRET, "", "b"), "host_a must not be empty"),
        ((SECRET, "a", None), "host_b must be a string"),
        ((SECRET, "a\0b", "c"), "NUL"),
    ],
)
def test_peer_password_rejects(args, message):
    with pytest.raises((TypeError, ValueError)) as info:
        peer_password(*args)
    assert message in str(info.value)
    assert SECRET not in str(info.value)
