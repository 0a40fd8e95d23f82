"""Tests for the meshfleet.mesh.cjdns_udp_peering filter (plugins/filter/peering.py)."""

from __future__ import annotations

import itertools

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.cjdns import FilterModule as CjdnsFilters
from ansible_collections.meshfleet.mesh.plugins.filter.peering import FilterModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_config import (
    merge_parts,
    validate_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from keyvectors import VECTORS

udp_peering = FilterModule().filters()["cjdns_udp_peering"]
peer_password = CjdnsFilters().filters()["cjdns_peer_password"]
SECRET = "fleet-secret-from-vault"
PORT = 41300
HOSTS = ["rs-ben", "rs-cam", "ht-gw", "ht-dan", "br-1", "br-2"]
REGISTRY = {h: {"public_key": v["public_key"], "ipv6": v["ipv6"]}
            for h, v in zip(HOSTS, VECTORS, strict=False)}
ADDRESSES = {"rs-ben": "192.0.2.10", "rs-cam": "192.0.2.11", "ht-gw": "198.51.100.1",
             "ht-dan": "198.51.100.2", "br-1": "fd42::1", "br-2": "fd42::2"}


def fleet(**declared):
    peers = {h: [] for h in HOSTS}
    peers.update({h.replace("_", "-"): v for h, v in declared.items()})
    return peers


def part(host, peers, registry=REGISTRY, addresses=None, secret=SECRET, port=PORT,
         skip_missing=False):
    if addresses is None:
        addresses = ADDRESSES
    return udp_peering(host, peers, addresses, registry, secret, port, skip_missing)


def error(*args, **kwargs):
    with pytest.raises(AnsibleFilterError) as info:
        part(*args, **kwargs)
    return info.value.message


def test_pair_declared_on_one_side():
    peers = fleet(rs_ben=["rs-cam"])
    ben, cam = part("rs-ben", peers), part("rs-cam", peers)
    password = peer_password(SECRET, "rs-ben", "rs-cam")
    assert password == peer_password(SECRET, "rs-cam", "rs-ben")
    assert ben == {
        "connectTo": {"192.0.2.11:41300": {"publicKey": REGISTRY["rs-cam"]["public_key"],
                                           "password": password, "login": "rs-ben",
                                           "peerName": "rs-cam"}},
        "authorizedPasswords": [{"user": "rs-cam", "password": password}],
    }
    # The other end only listens: it authorizes the same password under the login.
    assert cam == {"connectTo": {},
                   "authorizedPasswords": [{"user": "rs-ben", "password": password}]}
    # Uninvolved hosts get nothing.
    assert part("ht-gw", peers) == {"connectTo": {}, "authorizedPasswords": []}


def test_pair_declared_on_both_sides():
    peers = fleet(rs_ben=["rs-cam"], rs_cam=["rs-ben"])
    ben, cam = part("rs-ben", peers), part("rs-cam", peers)
    password = peer_password(SECRET, "rs-ben", "rs-cam")
    assert ben["connectTo"]["192.0.2.11:41300"]["password"] == password
    assert cam["connectTo"]["192.0.2.10:41300"] == {
        "publicKey": REGISTRY["rs-ben"]["public_key"], "password": password,
        "login": "rs-cam", "peerName": "rs-ben"}
    assert ben["authorizedPasswords"] == [{"user": "rs-cam", "password": password}]
    assert cam["authorizedPasswords"] == [{"user": "rs-ben", "password": password}]


def test_every_pair_has_its_own_password():
    peers = fleet(rs_ben=["rs-cam", "ht-gw"], ht_gw=["ht-dan"])
    ben = part("rs-ben", peers)
    gw = part("ht-gw", peers)
    assert [a["user"] for a in ben["authorizedPasswords"]] == ["ht-gw", "rs-cam"]
    assert [a["user"] for a in gw["authorizedPasswords"]] == ["ht-dan", "rs-ben"]
    passwords = {a["password"] for p in (ben, gw) for a in p["authorizedPasswords"]}
    assert len(passwords) == 3
    assert part("rs-ben", peers, secret="another secret") != ben


def test_ipv6_peer_address_is_bracketed():
    peers = fleet(br_1=["br-2"])
    assert list(part("br-1", peers)["connectTo"]) == ["[fd42::2]:41300"]
    assert list(part("br-1", peers, port="4000")["connectTo"]) == ["[fd42::2]:4000"]
    peers = fleet(rs_ben=["rs-cam"])
    assert list(part("rs-ben", peers, port=1)["connectTo"]) == ["192.0.2.11:1"]


def test_unknown_peer():
    assert error("rs-ben", fleet(rs_ben=["rs-cam", "nowhere", "also-not"])) == (
        "cjdns_peers of rs-ben names also-not, nowhere, not in group mesh_nodes")


def test_host_not_in_the_fleet():
    assert error("stranger", fleet()) == "udp_peering: stranger is not a mesh node"


def test_self_peer():
    assert error("rs-ben", fleet(rs_ben=["rs-ben"])) == \
        "cjdns_peers of rs-ben names the host itself"


@pytest.mark.parametrize("secret", ["", None])
def test_missing_secret(secret):
    peers = fleet(rs_ben=["rs-cam", "ht-gw"])
    assert error("rs-ben", peers, secret=secret) == (
        "cjdns_fleet_secret is required for static peers (ht-gw, rs-cam)")
    # The listening end needs it just as much.
    assert error("rs-cam", peers, secret=secret) == (
        "cjdns_fleet_secret is required for static peers (rs-ben)")
    # Without static peers no secret is needed.
    assert part("ht-dan", peers, secret=secret) == {"connectTo": {}, "authorizedPasswords": []}


def test_secret_that_is_not_a_string():
    message = error("rs-ben", fleet(rs_ben=["rs-cam"]), secret=12345)
    assert message == "secret must be a string, got int"


def test_missing_registry_entry():
    peers = fleet(rs_ben=["rs-cam"])
    registry = {h: e for h, e in REGISTRY.items() if h != "rs-cam"}
    assert error("rs-ben", peers, registry=registry) == (
        "rs-ben peers with rs-cam, which has no key in the key registry yet: "
        "converge rs-cam first")
    skipped = part("rs-ben", peers, registry=registry, skip_missing=True)
    assert skipped == {"connectTo": {}, "authorizedPasswords": [
        {"user": "rs-cam", "password": peer_password(SECRET, "rs-ben", "rs-cam")}]}
    # The listening end does not need the other's key.
    assert part("rs-cam", peers, registry=registry)["authorizedPasswords"][0]["user"] == "rs-ben"


def test_missing_peer_address():
    peers = fleet(rs_ben=["rs-cam"])
    for addresses in ({"rs-ben": "192.0.2.10"}, dict(ADDRESSES, **{"rs-cam": ""})):
        assert error("rs-ben", peers, addresses=addresses) == (
            "rs-ben peers with rs-cam but rs-cam has no peering address "
            "(set cjdns_peer_address)")
    # Only the connecting end needs the address.
    assert part("rs-cam", peers, addresses={})["connectTo"] == {}


def test_none_means_no_peers():
    peers = fleet(rs_ben=None, rs_cam=["rs-ben"])
    assert part("rs-ben", peers)["authorizedPasswords"][0]["user"] == "rs-cam"


def test_peers_given_as_a_string_are_refused():
    """A string is not a list: "rs-ben" in "rs-bench" would peer hosts nobody named."""
    peers = fleet(rs_cam="rs-bench")
    peers["rs-bench"] = []
    assert error("rs-ben", peers) == (
        "cjdns_peers of rs-cam must be a list of inventory hostnames, got str")
    assert error("rs-cam", peers) == (
        "cjdns_peers of rs-cam must be a list of inventory hostnames, got str")


def test_result_is_a_valid_cjdns_part():
    """Both ends of every declared pair produce parts that the config model accepts."""
    peers = fleet(rs_ben=["rs-cam", "ht-gw"], br_1=["br-2"])
    for host, bind in (("rs-ben", "0.0.0.0:41300"), ("br-1", "[::]:41300")):  # noqa: S104
        udp = part(host, peers)
        conf = merge_parts([{"name": "cjdns", "config": {
            "admin": {"bind": "127.0.0.1:11234", "password": "x"},
            "authorizedPasswords": udp["authorizedPasswords"],
            "interfaces": {"UDPInterface": [{"bind": bind, "connectTo": udp["connectTo"]}]}}}])
        conf["privateKey"] = VECTORS[10]["private_key"]
        assert validate_config(conf) is conf


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(HOSTS), st.lists(st.sampled_from(HOSTS), max_size=4)))
def test_both_ends_always_agree(declared):
    """Whatever the declarations: every connectTo is matched by the same password under
    the connecting host's login on the other end, and every host authorizes exactly the
    hosts it is paired with (either direction)."""
    peers = {h: [p for p in declared.get(h, []) if p != h] for h in HOSTS}
    parts = {h: part(h, peers) for h in HOSTS}
    endpoint = {h: ("[%s]:%d" if ":" in a else "%s:%d") % (a, PORT)
                for h, a in ADDRESSES.items()}
    for a, b in itertools.permutations(HOSTS, 2):
        paired = b in peers[a] or a in peers[b]
        authorized = {e["user"]: e["password"] for e in parts[a]["authorizedPasswords"]}
        assert (b in authorized) == paired
        if b in peers[a]:
            link = parts[a]["connectTo"][endpoint[b]]
            assert link["login"] == a and link["peerName"] == b
            assert link["publicKey"] == REGISTRY[b]["public_key"]
            other = {e["user"]: e["password"] for e in parts[b]["authorizedPasswords"]}
            assert link["password"] == other[a] == peer_password(SECRET, a, b)
        else:
            assert endpoint[b] not in parts[a]["connectTo"]
