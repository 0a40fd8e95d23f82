"""Tests for the live tunnel change logic of plugins/module_utils/cjdns_config.py: which
config changes a running cjdroute can take through its admin API, and the admin calls
that make it allow exactly the new allowedConnections.

Live connections are given as cjdroute v21.1's IpTunnel_showConnection replies look
(tunnel/IpTunnel_admin.c, showConn: ip4Address/ip6Address printed without port,
prefix and alloc as integers, ``key``, ``outgoing``), with their number under
``connection`` as IpTunnel_listConnections gives it.
"""

from __future__ import annotations

import copy

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_config import (
    allow_args,
    allowed_changes,
    allowed_connections,
    live_tunnel_plan,
    tunnel_only_change,
)
from keyvectors import VECTORS

K1, K2, K3, GW = (v["public_key"] for v in VECTORS[:4])


def entry(key, last, ip6=True):
    """An entry as the gateway role contributes it."""
    out = {"publicKey": key, "ip4Address": "10.99.0.%d" % last, "ip4Prefix": 0, "ip4Alloc": 32}
    if ip6:
        out.update(ip6Address="2001:db8:99::%x" % last, ip6Prefix=0, ip6Alloc=128)
    return out


def shown(number, key, last, outgoing=0, ip6=True):
    """IpTunnel_showConnection's reply for a connection that entry(key, last) made."""
    out = {"connection": number, "key": key, "outgoing": outgoing}
    if not outgoing:
        out.update(ip4Address="10.99.0.%d" % last, ip4Prefix=0, ip4Alloc=32)
        if ip6:
            out.update(ip6Address="2001:db8:99::%x" % last, ip6Prefix=0, ip6Alloc=128)
    return out


def config(allowed, outgoing=(), peers=None):
    """A written cjdroute.conf, reduced to what matters here."""
    return {
        "admin": {"bind": "127.0.0.1:11234", "password": "p" * 32},
        "interfaces": {"UDPInterface": [{"bind": "0.0.0.0:41300", "beacon": 0,
                                         "connectTo": peers or {}}]},
        "privateKey": "0" * 64,
        "router": {"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
                   "ipTunnel": {"allowedConnections": list(allowed),
                                "outgoingConnections": list(outgoing)}},
        "version": 2,
    }


# ------------------------------------------------------------ which changes go live

def test_adding_a_client_is_live():
    assert tunnel_only_change(config([entry(K1, 2)]), config([entry(K1, 2), entry(K2, 3)]))


def test_removing_and_changing_clients_is_live():
    old = config([entry(K1, 2), entry(K2, 3)])
    assert tunnel_only_change(old, config([entry(K2, 3)]))
    assert tunnel_only_change(old, config([entry(K1, 9), entry(K2, 3)]))
    assert tunnel_only_change(old, config([]))
    assert tunnel_only_change(config([]), old)


def test_no_change_is_not_a_live_change():
    assert not tunnel_only_change(config([entry(K1, 2)]), config([entry(K1, 2)]))


@pytest.mark.parametrize("edit", [
    pytest.param(lambda c: c["router"]["ipTunnel"]["outgoingConnections"].append(GW),
                 id="outgoingConnections"),
    pytest.param(lambda c: c["interfaces"]["UDPInterface"][0]["connectTo"].update(
        {"192.0.2.2:41300": {"publicKey": GW, "password": "x"}}), id="a UDP peer"),
    pytest.param(lambda c: c["admin"].update(password="q" * 32), id="admin password"),
    pytest.param(lambda c: c["router"]["interface"].update(tunDevice="tun9"), id="TUN name"),
    pytest.param(lambda c: c.update(privateKey="1" * 64), id="private key"),
    pytest.param(lambda c: c["router"]["ipTunnel"].update(extra=1), id="other ipTunnel key"),
])
def test_any_other_change_needs_a_restart(edit):
    old = config([entry(K1, 2)])
    for allowed in ([entry(K1, 2)], [entry(K1, 2), entry(K2, 3)]):
        new = config(allowed)
        edit(new)
        assert not tunnel_only_change(old, new)


def test_nothing_to_compare_needs_a_restart():
    assert not tunnel_only_change(None, config([entry(K1, 2)]))
    assert not tunnel_only_change(["not", "a", "config"], config([]))


def test_a_config_without_iptunnel_counts_as_no_clients():
    old = config([])
    del old["router"]["ipTunnel"]
    new = config([entry(K1, 2)])
    del new["router"]["ipTunnel"]["outgoingConnections"]
    assert tunnel_only_change(old, new)
    assert allowed_connections(old) == [] and allowed_connections(None) == []


def test_the_configs_passed_in_are_not_changed():
    old, new = config([entry(K1, 2)]), config([entry(K1, 2), entry(K2, 3)])
    before = copy.deepcopy((old, new))
    tunnel_only_change(old, new)
    assert (old, new) == before


# ------------------------------------------------------- added, removed and changed

def test_allowed_changes_by_key_in_list_order():
    old = [entry(K1, 2), entry(K2, 3), entry(GW, 5)]
    new = [entry(K3, 4), entry(K2, 7), entry(K1, 2)]
    assert allowed_changes(old, new) == {"added": [K3], "removed": [GW], "changed": [K2]}
    assert allowed_changes(new, new) == {"added": [], "removed": [], "changed": []}
    # A reordered list changes nothing that cjdroute holds.
    assert allowed_changes(old, old[::-1]) == {"added": [], "removed": [], "changed": []}


def test_allow_args_as_cjdroute_passes_a_config_entry():
    assert allow_args(entry(K1, 2)) == {
        "publicKeyOfAuthorizedNode": K1, "ip4Address": "10.99.0.2", "ip4Prefix": 0,
        "ip4Alloc": 32, "ip6Address": "2001:db8:99::2", "ip6Prefix": 0, "ip6Alloc": 128}
    # Fields left out are left out: the admin function's defaults apply, as at start.
    assert allow_args({"publicKey": K1, "ip4Address": "10.0.0.2"}) == {
        "publicKeyOfAuthorizedNode": K1, "ip4Address": "10.0.0.2"}


# ---------------------------------------------------- the plan against the live daemon

def test_plan_adds_a_new_client_and_keeps_the_others():
    live = [shown(0, K1, 2), shown(1, K2, 3)]
    plan = live_tunnel_plan(live, [entry(K1, 2), entry(K2, 3), entry(K3, 4)])
    assert plan == {"remove": [], "add": [entry(K3, 4)]}


def test_plan_removes_a_client_that_is_gone():
    plan = live_tunnel_plan([shown(0, K1, 2), shown(1, K2, 3)], [entry(K2, 3)])
    assert plan == {"remove": [{"connection": 0, "key": K1}], "add": []}


def test_plan_replaces_a_client_whose_addresses_changed():
    live = [shown(0, K1, 2), shown(1, K2, 3)]
    for new in (entry(K1, 9), dict(entry(K1, 2), ip4Alloc=31), entry(K1, 2, ip6=False)):
        plan = live_tunnel_plan(live, [new, entry(K2, 3)])
        assert plan == {"remove": [{"connection": 0, "key": K1}], "add": [new]}


def test_plan_never_touches_outgoing_connections():
    # A gateway that is also a client: its own tunnel to another gateway stays.
    live = [shown(0, GW, 0, outgoing=1), shown(1, K1, 2)]
    assert live_tunnel_plan(live, [entry(K1, 2)]) == {"remove": [], "add": []}
    plan = live_tunnel_plan(live, [entry(GW, 6)])
    assert plan == {"remove": [{"connection": 1, "key": K1}], "add": [entry(GW, 6)]}


def test_plan_removes_duplicates_for_one_key():
    live = [shown(3, K1, 2), shown(1, K1, 2)]
    assert live_tunnel_plan(live, [entry(K1, 2)]) == {
        "remove": [{"connection": 3, "key": K1}], "add": []}


def test_plan_uses_cjdroute_defaults_and_canonical_addresses():
    # An entry without prefix/alloc is granted /32 and /128 by IpTunnel_allowConnection.
    bare = {"publicKey": K1, "ip4Address": "10.0.0.2", "ip6Address": "2001:DB8:0::2"}
    live = [{"connection": 0, "key": K1, "outgoing": 0, "ip4Address": "10.0.0.2",
             "ip4Prefix": 32, "ip4Alloc": 32, "ip6Address": "2001:db8::2",
             "ip6Prefix": 128, "ip6Alloc": 128}]
    assert live_tunnel_plan(live, [bare]) == {"remove": [], "add": []}
    # Printed with a port or in brackets, the address is still the same.
    for v4, v6 in (("10.0.0.2:0", "[2001:db8::2]:0"), ("10.0.0.2", "[2001:db8::2]")):
        live[0].update(ip4Address=v4, ip6Address=v6)
        assert live_tunnel_plan(live, [bare]) == {"remove": [], "add": []}
    live[0]["ip4Prefix"] = 0
    assert live_tunnel_plan(live, [bare])["add"] == [bare]


def test_plan_from_nothing_and_to_nothing():
    assert live_tunnel_plan([], [entry(K1, 2)]) == {"remove": [], "add": [entry(K1, 2)]}
    assert live_tunnel_plan([shown(4, K1, 2)], []) == {
        "remove": [{"connection": 4, "key": K1}], "add": []}
    assert live_tunnel_plan([], []) == {"remove": [], "add": []}


def test_applying_the_plan_gives_what_a_restart_gives():
    """Simulate the daemon's list: after the plan, it grants exactly what starting from
    the new config would grant (every entry once, outgoing kept)."""
    live = [shown(0, K1, 2), shown(1, K2, 3), shown(2, GW, 0, outgoing=1), shown(5, K2, 3)]
    desired = [entry(K2, 8), entry(K3, 4)]
    plan = live_tunnel_plan(live, desired)
    gone = {r["connection"] for r in plan["remove"]}
    after = [c for c in live if c["connection"] not in gone]
    after += [shown(10 + i, e["publicKey"], int(e["ip4Address"].split(".")[-1]))
              for i, e in enumerate(plan["add"])]
    incoming = sorted((c["key"], c["ip4Address"]) for c in after if not c["outgoing"])
    assert incoming == sorted((e["publicKey"], e["ip4Address"]) for e in desired)
    assert [c["key"] for c in after if c["outgoing"]] == [GW]
    assert live_tunnel_plan(after, desired) == {"remove": [], "add": []}
