"""Tests for plugins/module_utils/cjdns_config.py: merge_parts, validate_config, redact.

Keys come from the real key vectors (tests/data/key-vectors.tsv); the reference config is
what a real cjdroute v21.1 ``--genconf | --cleanconf`` printed
(tests/data/genconf-v21.1.clean.json, copied from ../shared/cjdns-reference).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_config import (
    ConfigError,
    merge_parts,
    redact,
    validate_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from keyvectors import VECTORS

DATA = Path(__file__).resolve().parents[3] / "data"
GENCONF = json.loads((DATA / "genconf-v21.1.clean.json").read_text())
OWN, K1, K2, K3 = VECTORS[0], VECTORS[1], VECTORS[2], VECTORS[3]
# A well-formed .k whose address does not start with fc (cjdns refuses such keys).
NON_FC_PUBLIC = "358rcy4vyrbwpby41jyz3q15rlgfu4h7wdpgd4mdtn18f1m19lm0.k"
SECRET = "s3cret-peering-password-XYZ"
UDP = ("interfaces", "UDPInterface")


def part(name, **config):
    return {"name": name, "config": config}


def udp(bind, peers=None, **extra):
    entry = {"bind": bind, **extra}
    if peers is not None:
        entry["connectTo"] = peers
    return {"interfaces": {"UDPInterface": [entry]}}


def creds(key=K1, password=SECRET, **extra):
    return {"publicKey": key["public_key"], "password": password, **extra}


def valid_conf():
    """A complete config that validate_config accepts; tests break one thing each."""
    return {
        "privateKey": OWN["private_key"],
        "publicKey": OWN["public_key"],
        "ipv6": OWN["ipv6"],
        "admin": {"bind": "127.0.0.1:11234", "password": "0123456789abcdef0123456789abcdef"},
        "authorizedPasswords": [{"user": "node2", "password": "pw-node2"},
                                {"user": "node3", "password": "pw-node3"}],
        "interfaces": {
            "UDPInterface": [
                {"bind": "0.0.0.0:41300", "beacon": 0,
                 "connectTo": {"192.0.2.2:41300": creds(K1, "pw-node2")}},
                {"bind": "[::]:41300", "connectTo": {"[2001:db8::3]:41300": creds(K2)}},
            ],
            "ETHInterface": [{"bind": "mesh0", "beacon": 2}],
        },
        "router": {
            "interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
            "ipTunnel": {
                "allowedConnections": [
                    {"publicKey": K1["public_key"], "ip4Address": "10.99.0.2",
                     "ip4Prefix": 0, "ip4Alloc": 32},
                    {"publicKey": K2["public_key"], "ip4Address": "10.99.0.3",
                     "ip6Address": "fd99::3", "ip6Prefix": 64, "ip6Alloc": 128},
                ],
                "outgoingConnections": [K3["public_key"]],
            },
        },
        "version": 2,
    }


def error_of(func, *args):
    with pytest.raises(ConfigError) as info:
        func(*args)
    return str(info.value)


# ----------------------------------------------------------------------------- merge


def test_mappings_merge_recursively_in_order():
    parts = [
        part("cjdns", admin={"bind": "127.0.0.1:11234"},
             router={"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"}}),
        part("gateway", router={"ipTunnel": {"allowedConnections": []}},
             logging={"logTo": "stdout"}),
        part("extra", admin={"password": "kept"}),
    ]
    merged = merge_parts(parts)
    assert merged == {
        "admin": {"bind": "127.0.0.1:11234", "password": "kept"},
        "router": {"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
                   "ipTunnel": {"allowedConnections": []}},
        "logging": {"logTo": "stdout"},
    }
    assert list(merged) == ["admin", "router", "logging"]


def test_same_value_from_two_parts_is_not_a_conflict():
    merged = merge_parts([part("a", noBackground=1, security=[{"setuser": "nobody"}]),
                          part("b", noBackground=1, security=[{"setuser": "nobody"}])])
    assert merged == {"noBackground": 1, "security": [{"setuser": "nobody"}]}


def test_empty_parts():
    assert merge_parts([]) == {}
    assert merge_parts([part("a"), part("b")]) == {}


def test_lists_are_collected_in_part_order_and_deduplicated():
    a = part("a", authorizedPasswords=[{"user": "n2", "password": "p2"}],
             router={"ipTunnel": {
                 "allowedConnections": [{"publicKey": K1["public_key"], "ip4Address": "10.0.0.2"}],
                 "outgoingConnections": [K2["public_key"], K3["public_key"]]}})
    b = part("b", authorizedPasswords=[{"user": "n3", "password": "p3"},
                                       {"user": "n2", "password": "p2"}],
             router={"ipTunnel": {
                 "allowedConnections": [{"publicKey": K2["public_key"], "ip4Address": "10.0.0.3"},
                                        {"publicKey": K1["public_key"],
                                         "ip4Address": "10.0.0.2"}],
                 "outgoingConnections": [K3["public_key"], K1["public_key"]]}})
    merged = merge_parts([a, b])
    assert merged["authorizedPasswords"] == [{"user": "n2", "password": "p2"},
                                             {"user": "n3", "password": "p3"}]
    tunnel = merged["router"]["ipTunnel"]
    assert [e["publicKey"] for e in tunnel["allowedConnections"]] == [K1["public_key"],
                                                                      K2["public_key"]]
    assert tunnel["outgoingConnections"] == [K2["public_key"], K3["public_key"],
                                             K1["public_key"]]
    # Reversed order: the same entries, in the other order.
    swapped = merge_parts([b, a])
    assert [e["user"] for e in swapped["authorizedPasswords"]] == ["n3", "n2"]
    assert swapped["router"]["ipTunnel"]["outgoingConnections"] == [
        K3["public_key"], K1["public_key"], K2["public_key"]]


def test_udp_interfaces_merge_by_bind_with_connect_to_union():
    merged = merge_parts([
        part("cjdns", **udp("0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)}, beacon=0)),
        part("bridge", **udp("0.0.0.0:41300", {"192.0.2.3:41300": creds(K2, "other")})),
        part("v6", **udp("[::]:41300", {"[2001:db8::9]:41300": creds(K3)})),
        part("again", **udp("0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)}, beacon=0)),
    ])
    ifaces = merged["interfaces"]["UDPInterface"]
    assert [i["bind"] for i in ifaces] == ["0.0.0.0:41300", "[::]:41300"]
    assert ifaces[0]["beacon"] == 0
    assert ifaces[0]["connectTo"] == {"192.0.2.2:41300": creds(K1),
                                      "192.0.2.3:41300": creds(K2, "other")}
    assert ifaces[1]["connectTo"] == {"[2001:db8::9]:41300": creds(K3)}


def test_interface_declared_without_peers_then_peers_added():
    merged = merge_parts([
        part("a", **udp("0.0.0.0:41300")),
        part("b", **udp("0.0.0.0:41300", None, beacon=2)),
        part("c", **udp("0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)})),
        part("d", **udp("0.0.0.0:41300", {})),
    ])
    assert merged["interfaces"]["UDPInterface"] == [
        {"bind": "0.0.0.0:41300", "beacon": 2, "connectTo": {"192.0.2.2:41300": creds(K1)}}]


def test_eth_interfaces_merge_by_bind():
    merged = merge_parts([
        part("mesh_point", interfaces={"ETHInterface": [
            {"bind": "mesh0", "beacon": 2, "connectTo": {}}]}),
        part("bridge", interfaces={"ETHInterface": [
            {"bind": "mesh0", "connectTo": {"02:00:00:00:00:01": creds(K1)}},
            {"bind": "eth1", "beacon": 1}]}),
    ])
    assert merged["interfaces"]["ETHInterface"] == [
        {"bind": "mesh0", "beacon": 2, "connectTo": {"02:00:00:00:00:01": creds(K1)}},
        {"bind": "eth1", "beacon": 1},
    ]


@pytest.mark.parametrize("kind", ["UDPInterface", "ETHInterface"])
def test_connect_to_conflict_names_both_parts_and_hides_secrets(kind):
    bind = "0.0.0.0:41300" if kind == "UDPInterface" else "mesh0"
    parts = [
        part("cjdns", interfaces={kind: [{"bind": bind, "beacon": 0}]}),
        part("bridge", interfaces={kind: [{"bind": bind, "connectTo": {
            "192.0.2.2:41300": creds(K1, "first-" + SECRET)}}]}),
        part("gateway", interfaces={kind: [{"bind": bind, "connectTo": {
            "192.0.2.2:41300": creds(K1, "second-" + SECRET)}}]}),
    ]
    message = error_of(merge_parts, parts)
    assert message == ("interfaces.%s[%s].connectTo[192.0.2.2:41300]: parts 'bridge' and "
                       "'gateway' disagree" % (kind, bind))
    assert SECRET not in message


def test_interface_setting_conflict_names_the_part_that_set_it():
    message = error_of(merge_parts, [
        part("cjdns", **udp("0.0.0.0:41300")),
        part("beacons", **udp("0.0.0.0:41300", beacon=2)),
        part("quiet", **udp("0.0.0.0:41300", beacon=0)),
    ])
    assert message == ("interfaces.UDPInterface[0.0.0.0:41300].beacon: part 'quiet' sets 0 "
                       "but part 'beacons' set 2")


def test_scalar_conflict_names_both_parts():
    message = error_of(merge_parts, [
        part("cjdns", admin={"bind": "127.0.0.1:11234"}),
        part("gateway", router={"interface": {"tunDevice": "cjdns0"}}),
        part("extra", admin={"bind": "0.0.0.0:11234"}),
    ])
    assert message == ("admin.bind: part 'extra' sets '0.0.0.0:11234' but part 'cjdns' "
                       "already set '127.0.0.1:11234'")


@pytest.mark.parametrize("config_a, config_b, where", [
    ({"admin": {"password": "first-" + SECRET}}, {"admin": {"password": "second-" + SECRET}},
     "admin.password"),
    ({"privateKey": OWN["private_key"]}, {"privateKey": K1["private_key"]}, "privateKey"),
])
def test_secret_conflicts_show_hidden(config_a, config_b, where):
    message = error_of(merge_parts, [{"name": "a", "config": config_a},
                                     {"name": "b", "config": config_b}])
    assert message == "%s: part 'b' sets '<hidden>' but part 'a' already set '<hidden>'" % where
    assert SECRET not in message
    assert OWN["private_key"] not in message and K1["private_key"] not in message


def test_value_where_a_mapping_was_set_names_both_parts_and_hides_secrets():
    message = error_of(merge_parts, [
        part("cjdns", admin={"bind": "127.0.0.1:11234", "password": SECRET}),
        part("extra", admin="oops"),
    ])
    assert message == "admin: part 'extra' sets a value where part 'cjdns' set a mapping"
    assert SECRET not in message

    # A nested mapping full of secrets against a scalar.
    message = error_of(merge_parts, [
        part("cjdns", **udp("0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)})),
        part("extra", interfaces=None),
    ])
    assert message == "interfaces: part 'extra' sets a value where part 'cjdns' set a mapping"
    assert SECRET not in message


def test_mapping_where_a_value_was_set_names_both_parts():
    message = error_of(merge_parts, [part("a", logging=0), part("b", logging={"logTo": "x"})])
    assert message == "logging: part 'b' sets a mapping where part 'a' set a value"


def test_list_value_conflict_redacts_nested_secrets():
    message = error_of(merge_parts, [
        part("a", router={"supernodes": [{"publicKey": K1["public_key"], "password": SECRET}]}),
        part("b", router={"supernodes": []}),
    ])
    assert message.startswith("router.supernodes: part 'b' sets [] but part 'a' already set ")
    assert "<hidden>" in message and SECRET not in message


def test_different_list_entries_for_one_key_name_both_parts():
    message = error_of(merge_parts, [
        part("gateway", router={"ipTunnel": {"allowedConnections": [
            {"publicKey": K1["public_key"], "ip4Address": "10.99.0.2"}]}}),
        part("extra", router={"ipTunnel": {"allowedConnections": [
            {"publicKey": K1["public_key"], "ip4Address": "10.99.0.9"}]}}),
    ])
    assert message == ("router.ipTunnel.allowedConnections: two different entries for "
                       "publicKey '%s' (parts 'gateway' and 'extra')" % K1["public_key"])

    message = error_of(merge_parts, [
        part("a", authorizedPasswords=[{"user": "n2", "password": "first-" + SECRET}]),
        part("b", authorizedPasswords=[{"user": "n2", "password": "second-" + SECRET}]),
    ])
    assert message == ("authorizedPasswords: two different entries for user 'n2' "
                       "(parts 'a' and 'b')")
    assert SECRET not in message


@pytest.mark.parametrize("parts, message", [
    ([{"config": {}}], "every part needs a 'name' and a 'config' mapping, got ['config']"),
    ([{"name": "a"}], "every part needs a 'name' and a 'config' mapping, got ['name']"),
    ([{"name": "a", "config": []}], "every part needs a 'name' and a 'config' mapping"),
    ([{"name": "", "config": {}}], "every part needs a 'name' and a 'config' mapping"),
    ([part("a"), part("a")], "part 'a' is contributed twice"),
    ([part("a", authorizedPasswords={"user": "x"})],
     "authorizedPasswords: part 'a' must give a list"),
    ([part("a", router={"ipTunnel": {"outgoingConnections": K1["public_key"]}})],
     "router.ipTunnel.outgoingConnections: part 'a' must give a list"),
    ([part("a", authorizedPasswords=[{"password": "x"}])],
     "authorizedPasswords: every entry from part 'a' needs 'user'"),
    ([part("a", interfaces={"UDPInterface": ["0.0.0.0:1"]})],
     "interfaces.UDPInterface: every entry from part 'a' needs 'bind'"),
    ([part("a", router={"ipTunnel": {"allowedConnections": [{"ip4Address": "10.0.0.1"}]}})],
     "router.ipTunnel.allowedConnections: every entry from part 'a' needs 'publicKey'"),
    ([part("a", **udp("0.0.0.0:1", ["192.0.2.1:1"]))],
     "interfaces.UDPInterface[0.0.0.0:1].connectTo: part 'a' must give a mapping"),
])
def test_malformed_parts(parts, message):
    assert message in error_of(merge_parts, parts)


def test_merge_does_not_change_the_parts_passed_in():
    parts = [
        part("a", **udp("0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)})),
        part("b", **udp("0.0.0.0:41300", {"192.0.2.3:41300": creds(K2)}, beacon=1)),
        part("c", router={"ipTunnel": {"outgoingConnections": [K3["public_key"]]}}),
    ]
    before = copy.deepcopy(parts)
    merged = merge_parts(parts)
    assert parts == before
    merged["interfaces"]["UDPInterface"][0]["connectTo"]["x"] = {}
    merged["router"]["ipTunnel"]["outgoingConnections"].append("y")
    assert parts == before
    assert merge_parts(parts) == merge_parts(before)


PEER = st.tuples(st.integers(1, 254), st.integers(1, 65535)).map(
    lambda t: "192.0.2.%d:%d" % t)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(PEER, st.sampled_from(VECTORS[1:6]), max_size=5),
                min_size=1, max_size=5))
def test_connect_to_union_of_any_split(peer_maps):
    """Peers spread over several parts (the same peer always with the same creds) merge
    into their union, whatever the split, and the merge never loses or invents one."""
    everything = {}
    for peers in peer_maps:
        everything.update(peers)
    canonical = {peer: creds(everything[peer]) for peer in everything}
    parts = [part("p%d" % i, **udp("0.0.0.0:41300", {p: canonical[p] for p in peers}))
             for i, peers in enumerate(peer_maps)]
    merged = merge_parts(parts)
    assert merged["interfaces"]["UDPInterface"] == [
        {"bind": "0.0.0.0:41300", "connectTo": canonical}]
    assert merge_parts(parts[::-1])["interfaces"]["UDPInterface"][0]["connectTo"] == canonical


# -------------------------------------------------------------------------- validate


def test_valid_config_passes_and_is_returned():
    conf = valid_conf()
    assert validate_config(conf) is conf
    assert conf == valid_conf()


def test_merged_parts_validate():
    conf = merge_parts([
        part("cjdns", admin={"bind": "127.0.0.1:11234"}, **udp(
            "0.0.0.0:41300", {"192.0.2.2:41300": creds(K1)}, beacon=0),
            router={"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
                    "ipTunnel": {"allowedConnections": [], "outgoingConnections": []}}),
        part("gateway", router={"ipTunnel": {"allowedConnections": [
            {"publicKey": K2["public_key"], "ip4Address": "10.99.0.2", "ip4Prefix": 0}]}}),
        part("client", router={"ipTunnel": {"outgoingConnections": [K3["public_key"]]}}),
    ])
    conf.update(privateKey=OWN["private_key"], publicKey=OWN["public_key"])
    conf["admin"]["password"] = "generated"
    assert validate_config(conf) is conf


def _set(conf, path, value):
    target = conf
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
UDP0 = UDP + (0,)
ALLOWED = ("router", "ipTunnel", "allowedConnections")
OUTGOING = ("router", "ipTunnel", "outgoingConnections")


@pytest.mark.parametrize("path, value, message", [
    # private key
    (("privateKey",), _DELETE, "privateKey: required, 64 lowercase hexadecimal characters"),
    (("privateKey",), OWN["private_key"].upper(), "privateKey: required, 64 lowercase"),
    (("privateKey",), OWN["private_key"][:-1], "privateKey: required, 64 lowercase"),
    (("privateKey",), OWN["private_key"] + "\n", "privateKey: required, 64 lowercase"),
    # admin
    (("admin", "bind"), "0.0.0.0:11234", "admin.bind: 0.0.0.0:11234 is not a loopback address"),
    (("admin", "bind"), "192.0.2.1:11234", "admin.bind: 192.0.2.1:11234 is not a loopback"),
    (("admin", "bind"), "[::]:11234", "admin.bind: [::]:11234 is not a loopback address"),
    (("admin", "bind"), "[fc00::1]:11234", "is not a loopback address"),
    (("admin", "bind"), "localhost:11234",
     "admin.bind: 'localhost:11234' is not IPv4:port or [IPv6]:port"),
    (("admin", "bind"), "127.0.0.1", "admin.bind: '127.0.0.1' is not IPv4:port or [IPv6]:port"),
    (("admin", "bind"), "127.0.0.1:0", "admin.bind: port 0 is outside 1-65535"),
    (("admin", "bind"), _DELETE, "admin.bind: None is not IPv4:port or [IPv6]:port"),
    (("admin",), _DELETE, "admin.bind: None is not IPv4:port"),
    (("admin", "password"), "NONE", "admin.password: a real password is required"),
    (("admin", "password"), "", "admin.password: a real password is required"),
    (("admin", "password"), _DELETE, "admin.password: a real password is required"),
    # authorized passwords
    (("authorizedPasswords", 1, "user"), "node2", "authorizedPasswords[1]: user 'node2' appears "
                                                  "twice"),
    (("authorizedPasswords", 0, "password"), "", "authorizedPasswords[0]: password is empty"),
    (("authorizedPasswords", 0), {"user": "x"}, "authorizedPasswords[0]: password is empty"),
    # UDP endpoints, ports, families, keys
    (UDP0 + ("bind",), "192.0.2.1", "interfaces.UDPInterface[0].bind: '192.0.2.1' is not "
                                    "IPv4:port"),
    (UDP0 + ("bind",), "0.0.0.0:65536", "interfaces.UDPInterface[0].bind: port 65536 is "
                                        "outside 1-65535"),
    (UDP0 + ("bind",), "0.0.0.0:0", "interfaces.UDPInterface[0].bind: port 0 is outside"),
    (UDP0 + ("bind",), "300.0.0.1:41300", "interfaces.UDPInterface[0].bind: '300.0.0.1' is not "
                                          "an IP address"),
    (UDP0 + ("bind",), "[::]:41300", "interfaces.UDPInterface[0].connectTo: 192.0.2.2:41300 is "
                                     "IPv4 but the interface binds IPv6"),
    (UDP0 + ("bind",), ":::41300", "is not IPv4:port or [IPv6]:port"),
    (UDP0 + ("bind",), "[fc00::zz]:41300", "is not IPv4:port or [IPv6]:port"),
    (UDP0 + ("bind",), "[::ffff:1]:41300", "IPv4 but the interface binds IPv6"),
    (UDP0 + ("bind",), "[192.0.2.1]:41300",
     "interfaces.UDPInterface[0].bind: '192.0.2.1' is not an IP address"),
    (UDP0 + ("beacon",), 3, "interfaces.UDPInterface[0].beacon: must be 0, 1 or 2"),
    (UDP0 + ("beacon",), -1, "interfaces.UDPInterface[0].beacon: must be 0, 1 or 2"),
    (UDP0 + ("beacon",), "2", "interfaces.UDPInterface[0].beacon: must be 0, 1 or 2"),
    (UDP0 + ("beacon",), True, "interfaces.UDPInterface[0].beacon: must be 0, 1 or 2"),
    (UDP0 + ("beacon",), 2.0, "interfaces.UDPInterface[0].beacon: must be 0, 1 or 2"),
    (UDP0 + ("connectTo",), {"[2001:db8::2]:41300": creds(K1)},
     "interfaces.UDPInterface[0].connectTo: [2001:db8::2]:41300 is IPv6 but the interface "
     "binds IPv4"),
    (UDP0 + ("connectTo",), {"192.0.2.2:0": creds(K1)},
     "interfaces.UDPInterface[0].connectTo: port 0 is outside 1-65535"),
    (UDP0 + ("connectTo",), {"192.0.2.2": creds(K1)},
     "interfaces.UDPInterface[0].connectTo: '192.0.2.2' is not IPv4:port or [IPv6]:port"),
    (UDP0 + ("connectTo",), {"2001:db8::2:41300": creds(K1)}, "is not IPv4:port or [IPv6]:port"),
    (UDP0 + ("connectTo",), {"peer.example:41300": creds(K1)}, "is not IPv4:port"),
    (UDP0 + ("connectTo",), {"192.0.2.2:41300": creds(K1, "")},
     "interfaces.UDPInterface[0].connectTo[192.0.2.2:41300]: password is empty"),
    (UDP0 + ("connectTo",), {"192.0.2.2:41300": {"password": "x"}},
     "interfaces.UDPInterface[0].connectTo[192.0.2.2:41300].publicKey: public key must be a "
     "string, got NoneType"),
    (UDP0 + ("connectTo",), {"192.0.2.2:41300": {"password": "x", "publicKey": NON_FC_PUBLIC}},
     "connectTo[192.0.2.2:41300].publicKey: public key '%s' is not a valid cjdns key: its "
     "address" % NON_FC_PUBLIC),
    (("interfaces", "UDPInterface", 1, "connectTo"), {"192.0.2.9:1": creds(K1)},
     "interfaces.UDPInterface[1].connectTo: 192.0.2.9:1 is IPv4 but the interface binds IPv6"),
    # ETHInterface
    (("interfaces", "ETHInterface", 0, "bind"), "a-name-too-long0",
     "interfaces.ETHInterface[0].bind: 'a-name-too-long0' is not an interface name"),
    (("interfaces", "ETHInterface", 0, "bind"), "mesh 0", "is not an interface name"),
    (("interfaces", "ETHInterface", 0, "bind"), "mesh0\n", "is not an interface name"),
    (("interfaces", "ETHInterface", 0, "bind"), _DELETE,
     "interfaces.ETHInterface[0].bind: None is not an interface name"),
    (("interfaces", "ETHInterface", 0, "beacon"), 5,
     "interfaces.ETHInterface[0].beacon: must be 0, 1 or 2"),
    (("interfaces", "ETHInterface", 0, "beacon"), False,
     "interfaces.ETHInterface[0].beacon: must be 0, 1 or 2"),
    # TUN device
    (("router", "interface", "tunDevice"), "cjdns0\n",
     "router.interface.tunDevice: 'cjdns0\\n' is not a valid interface name"),
    (("router", "interface", "tunDevice"), "", "router.interface.tunDevice: '' is not a valid"),
    (("router", "interface", "tunDevice"), "tun/0", "is not a valid interface name"),
    (("router", "interface", "tunDevice"), "cjdns-tunnel-0123", "is not a valid interface name"),
    (("router", "interface", "tunDevice"), "..", "is not a valid interface name"),
    (("router", "interface", "tunDevice"), ".", "is not a valid interface name"),
    # allowedConnections
    (ALLOWED + (1, "publicKey"), K1["public_key"],
     "router.ipTunnel.allowedConnections[1]: publicKey %s is already allowed at index 0"
     % K1["public_key"]),
    (ALLOWED + (1, "ip4Address"), "10.99.0.2",
     "router.ipTunnel.allowedConnections[1]: address 10.99.0.2 is already given at index 0"),
    (ALLOWED + (0, "ip6Address"), "fd99::3",
     "router.ipTunnel.allowedConnections[1]: address fd99::3 is already given at index 0"),
    (ALLOWED + (0, "publicKey"), NON_FC_PUBLIC,
     "router.ipTunnel.allowedConnections[0].publicKey: public key '%s' is not a valid cjdns "
     "key" % NON_FC_PUBLIC),
    (ALLOWED + (0, "publicKey"), K1["public_key"][:-2],
     "allowedConnections[0].publicKey: public key '%s' must be 52 base32 characters followed "
     "by '.k', but it does not end in '.k'" % K1["public_key"][:-2]),
    (ALLOWED + (0, "publicKey"), "a" + K1["public_key"][1:],
     "allowedConnections[0].publicKey: public key 'a%s': character 'a' at position 0 is not "
     "in the cjdns base32 alphabet" % K1["public_key"][1:]),
    (ALLOWED + (0, "publicKey"), K1["public_key"].upper(), "allowedConnections[0].publicKey"),
    (ALLOWED + (0, "publicKey"), K1["public_key"][1:], "must be 52 base32 characters followed "
                                                       "by '.k', got 51"),
    (ALLOWED + (0, "publicKey"), _DELETE, "allowedConnections[0].publicKey: public key must be "
                                          "a string, got NoneType"),
    (ALLOWED + (0, "ip4Address"), _DELETE,
     "router.ipTunnel.allowedConnections[0]: needs ip4Address or ip6Address"),
    (ALLOWED + (0, "ip4Address"), "10.99.0.256",
     "router.ipTunnel.allowedConnections[0].ip4Address: '10.99.0.256' is not an IPv4 address"),
    (ALLOWED + (0, "ip4Address"), "fd99::2",
     "router.ipTunnel.allowedConnections[0].ip4Address: 'fd99::2' is not an IPv4 address"),
    (ALLOWED + (0, "ip4Address"), 174260226,
     "router.ipTunnel.allowedConnections[0].ip4Address: 174260226 is not an IPv4 address"),
    (ALLOWED + (1, "ip6Address"), "10.99.0.9",
     "router.ipTunnel.allowedConnections[1].ip6Address: '10.99.0.9' is not an IPv6 address"),
    (ALLOWED + (0, "ip4Prefix"), 33, "allowedConnections[0].ip4Prefix: must be an integer 0-32"),
    (ALLOWED + (0, "ip4Prefix"), -1, "allowedConnections[0].ip4Prefix: must be an integer 0-32"),
    (ALLOWED + (0, "ip4Prefix"), "24", "allowedConnections[0].ip4Prefix: must be an integer"),
    (ALLOWED + (0, "ip4Prefix"), 24.0, "allowedConnections[0].ip4Prefix: must be an integer"),
    (ALLOWED + (0, "ip4Prefix"), True, "allowedConnections[0].ip4Prefix: must be an integer"),
    (ALLOWED + (0, "ip4Alloc"), False, "allowedConnections[0].ip4Alloc: must be an integer 0-32"),
    (ALLOWED + (0, "ip4Alloc"), 40, "allowedConnections[0].ip4Alloc: must be an integer 0-32"),
    (ALLOWED + (1, "ip6Prefix"), 129,
     "allowedConnections[1].ip6Prefix: must be an integer 0-128"),
    (ALLOWED + (1, "ip6Alloc"), True, "allowedConnections[1].ip6Alloc: must be an integer 0-128"),
    # outgoingConnections
    (OUTGOING, [K3["public_key"], K1["public_key"], K3["public_key"]],
     "router.ipTunnel.outgoingConnections[2]: %s is listed twice" % K3["public_key"]),
    (OUTGOING, [OWN["public_key"]],
     "router.ipTunnel.outgoingConnections[0]: a node cannot use itself as its gateway"),
    (OUTGOING, [NON_FC_PUBLIC], "router.ipTunnel.outgoingConnections[0]: public key '%s' is not "
                                "a valid cjdns key" % NON_FC_PUBLIC),
    (OUTGOING, [K1["private_key"]], "router.ipTunnel.outgoingConnections[0]: public key"),
    # Values cjdroute's config reader cannot parse (it knows strings, integers, lists and
    # mappings; in strings no escape but \\xNN).
    (UDP0 + ("connectTo",), None, "interfaces.UDPInterface[0].connectTo: cjdroute reads only "
                                  "strings, integers, lists and mappings, not null"),
    (("noBackground",), True, "noBackground: cjdroute reads only strings, integers, lists and "
                              "mappings, not true"),
    (("logging",), {"logTo": None}, "logging.logTo: cjdroute reads only strings, integers, "
                                    "lists and mappings, not null"),
    (("security",), [{"setuser": "nobody"}, {"seccomp": 1.0}],
     "security[1].seccomp: cjdroute reads only strings, integers, lists and mappings, not 1.0"),
    (("security",), ({"setuser": "nobody"},), "security: cjdroute reads only strings, integers, "
                                              "lists and mappings, not tuple"),
    (UDP0 + ("connectTo", "192.0.2.2:41300", "peerName"), 'say "hi"',
     "interfaces.UDPInterface[0].connectTo[192.0.2.2:41300].peerName: cjdroute cannot read "
     "this string: only printable ASCII without quote or backslash"),
    (UDP0 + ("connectTo", "192.0.2.2:41300", "peerName"), "caf\u00e9",
     "connectTo[192.0.2.2:41300].peerName: cjdroute cannot read this string"),
    (UDP0 + ("connectTo", "192.0.2.2:41300", "password"), "back\\slash-" + SECRET,
     "connectTo[192.0.2.2:41300].password: cjdroute cannot read this string"),
    (("authorizedPasswords", 0, "user"), "node\n2",
     "authorizedPasswords[0].user: cjdroute cannot read this string"),
    (("admin", "password"), "tab\there-" + SECRET, "admin.password: cjdroute cannot read"),
    (("logging",), {"l\u00f6g": "x"}, "logging: key 'l\u00f6g' is not a string cjdroute can read"),
    (("logging",), {1: "x"}, "logging: key 1 is not a string cjdroute can read"),
])
def test_each_rule(path, value, message):
    conf = valid_conf()
    _set(conf, path, value)
    text = error_of(validate_config, conf)
    assert message in text
    # No secret of the config ever shows in a message.
    for secret in (OWN["private_key"], "pw-node2", "pw-node3", SECRET,
                   "0123456789abcdef0123456789abcdef"):
        assert secret not in text


@pytest.mark.parametrize("path, value", [
    (("admin", "bind"), "[::1]:11234"),
    (("admin", "bind"), "127.0.0.53:1"),
    (("admin", "bind"), "127.0.0.1:65535"),
    (UDP0 + ("beacon",), 2),
    (UDP0 + ("beacon",), _DELETE),
    (UDP0 + ("connectTo",), {}),
    (("interfaces", "UDPInterface", 1, "bind"), "[fc00::1]:1"),
    (("interfaces", "ETHInterface", 0, "bind"), "all"),
    (("interfaces", "ETHInterface", 0, "bind"), "wlan0.mesh_1-x"),
    (("interfaces", "ETHInterface"), []),
    (("interfaces",), _DELETE),
    (("router", "interface", "tunDevice"), _DELETE),
    (("router", "interface", "tunDevice"), "tun-0123456789a"),
    (ALLOWED + (0, "ip4Prefix"), 32),
    (ALLOWED + (0, "ip4Prefix"), _DELETE),
    (ALLOWED + (0, "ip6Address"), "fd99::2"),
    (ALLOWED + (1, "ip6Prefix"), 0),
    (ALLOWED + (1, "ip4Address"), _DELETE),
    (ALLOWED, []),
    (OUTGOING, []),
    (("publicKey",), _DELETE),
    (("authorizedPasswords",), []),
])
def test_accepted_variants(path, value):
    conf = valid_conf()
    _set(conf, path, value)
    assert validate_config(conf) is conf


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["ipv6"])
def test_every_real_key_is_accepted_everywhere(vector):
    conf = valid_conf()
    conf["authorizedPasswords"] = []
    conf["interfaces"]["UDPInterface"][0]["connectTo"] = {
        "192.0.2.2:41300": creds(vector)}
    conf["router"]["ipTunnel"]["allowedConnections"] = [
        {"publicKey": vector["public_key"], "ip6Address": "fd99::2"}]
    conf["router"]["ipTunnel"]["outgoingConnections"] = [vector["public_key"]]
    conf["publicKey"] = "somebody else"
    assert validate_config(conf) is conf


def test_genconf_reference_admin_password_none_is_refused():
    """What cjdroute --genconf writes ("password": "NONE") must not pass."""
    conf = copy.deepcopy(GENCONF)
    assert conf["admin"]["password"] == "NONE"
    assert error_of(validate_config, conf) == "admin.password: a real password is required"


def test_genconf_reference_passes_with_a_real_admin_password():
    """The rest of the genconf output is acceptable: two UDP interfaces (0.0.0.0 and [::]),
    beacon 2, the _disabled_ sections ignored, the security list untouched."""
    conf = copy.deepcopy(GENCONF)
    conf["admin"]["password"] = "a real one"
    assert validate_config(conf) is conf
    conf["interfaces"]["UDPInterface"][1]["connectTo"]["192.0.2.1:1"] = creds(K1)
    assert "is IPv4 but the interface binds IPv6" in error_of(validate_config, conf)


def test_genconf_reference_private_key_matches_its_public_key():
    from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
        ipv6_from_public_key,
        public_key_from_private,
    )

    assert public_key_from_private(GENCONF["privateKey"]) == GENCONF["publicKey"]
    assert ipv6_from_public_key(GENCONF["publicKey"]) == GENCONF["ipv6"]


# ---------------------------------------------------------------------------- redact


def test_redact_hides_every_secret_and_keeps_the_rest():
    conf = valid_conf()
    before = copy.deepcopy(conf)
    shown = redact(conf)
    assert conf == before
    assert shown["privateKey"] == "<hidden>"
    assert shown["admin"] == {"bind": "127.0.0.1:11234", "password": "<hidden>"}
    assert shown["authorizedPasswords"] == [{"user": "node2", "password": "<hidden>"},
                                            {"user": "node3", "password": "<hidden>"}]
    assert shown["interfaces"]["UDPInterface"][0]["connectTo"]["192.0.2.2:41300"] == {
        "publicKey": K1["public_key"], "password": "<hidden>"}
    assert shown["publicKey"] == OWN["public_key"]
    assert shown["router"] == conf["router"]
    text = json.dumps(shown)
    for secret in (OWN["private_key"], "pw-node2", "pw-node3", SECRET,
                   "0123456789abcdef0123456789abcdef"):
        assert secret not in text


def test_redact_plain_values():
    assert redact(None) is None
    assert redact("x") == "x"
    assert redact([{"password": None}, 3]) == [{"password": "<hidden>"}, 3]
