"""Decision logic of roles/client/files/meshfleet-gw-failover (the client's failover service).

The service is one stdlib-only file installed on the node; it is loaded here by path.
"""

import importlib.machinery
import importlib.util
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PATH = Path(__file__).resolve().parents[4] / "roles" / "client" / "files" / "meshfleet-gw-failover"
_loader = importlib.machinery.SourceFileLoader("meshfleet_gw_failover", str(PATH))
_spec = importlib.util.spec_from_loader(_loader.name, _loader)
fo = importlib.util.module_from_spec(_spec)
sys.modules[_loader.name] = fo  # dataclasses look their module up there
_loader.exec_module(fo)

UP, DOWN, UNKNOWN = fo.UP, fo.DOWN, fo.UNKNOWN
ORDER = ["gw1", "gw2", "gw3"]


def fold(results, down_after=2, up_after=3, start=None):
    """Run rounds of probe results ({name: ok}) and return the choice after each."""
    health = {n: fo.Health() for n in ORDER}
    current, chosen = start, []
    for result in results:
        health = {n: fo.observe(health[n], result.get(n, False), down_after, up_after)
                  for n in ORDER}
        current = fo.choose(ORDER, health, current)
        chosen.append(current)
    return chosen, health


ALL = {"gw1": True, "gw2": True, "gw3": True}
NO1 = {"gw1": False, "gw2": True, "gw3": True}


# ---------------------------------------------------------------- hysteresis


def test_unknown_gateway_is_up_on_its_first_good_round():
    assert fo.observe(fo.Health(), True, 2, 3).state == UP


def test_up_goes_down_only_after_down_after_failed_rounds_in_a_row():
    h = fo.Health(UP, 5, 0)
    h = fo.observe(h, False, 2, 3)
    assert h.state == UP and h.bad == 1
    h = fo.observe(h, False, 2, 3)
    assert h.state == DOWN


def test_down_comes_up_only_after_up_after_good_rounds_in_a_row():
    h = fo.Health(DOWN, 0, 4)
    for _i in range(2):
        h = fo.observe(h, True, 2, 3)
        assert h.state == DOWN
    assert fo.observe(h, True, 2, 3).state == UP


def test_a_failure_restarts_the_count_of_good_rounds():
    h = fo.Health(DOWN, 0, 4)
    for ok in (True, True, False, True, True):
        h = fo.observe(h, ok, 2, 3)
    assert h.state == DOWN and h.good == 2


def test_unknown_gateway_that_never_answers_goes_down():
    h = fo.Health()
    h = fo.observe(h, False, 2, 3)
    assert h.state == UNKNOWN
    assert fo.observe(h, False, 2, 3).state == DOWN


# ---------------------------------------------------------------- choice


def test_start_uses_the_first_gateway_in_order_before_any_result():
    assert fo.choose(ORDER, {n: fo.Health() for n in ORDER}, None) == "gw1"


def test_priority_order_not_answer_order():
    chosen, _unused = fold([ALL])
    assert chosen == ["gw1"]


def test_primary_failing_switches_on_the_second_failed_round_to_the_next():
    chosen, _unused = fold([ALL, NO1, NO1, NO1])
    assert chosen == ["gw1", "gw1", "gw2", "gw2"]


def test_fail_back_to_the_primary_after_three_good_rounds():
    chosen, _unused = fold([ALL, NO1, NO1, ALL, ALL, ALL, ALL])
    assert chosen == ["gw1", "gw1", "gw2", "gw2", "gw2", "gw1", "gw1"]


def test_second_gateway_down_too_goes_to_the_third():
    only3 = {"gw3": True}
    chosen, _unused = fold([ALL, only3, only3])
    assert chosen[-1] == "gw3"


def test_all_down_keeps_the_last_choice():
    none = {}
    chosen, health = fold([ALL, NO1, NO1, none, none, none, none])
    assert all(h.state == DOWN for h in health.values())
    assert chosen[-1] == "gw2"


def test_all_down_from_the_start_keeps_the_first_in_order():
    chosen, _unused = fold([{}, {}, {}])
    assert chosen == ["gw1", "gw1", "gw1"]


def test_flapping_primary_never_takes_the_traffic_back():
    flap = [ALL, NO1, NO1] + [ALL, NO1] * 10
    chosen, health = fold(flap)
    assert set(chosen[2:]) == {"gw2"}
    assert health["gw1"].state == DOWN


def test_single_failures_on_the_active_gateway_do_not_switch():
    chosen, _unused = fold([ALL] + [NO1, ALL] * 10)
    assert set(chosen) == {"gw1"}


def test_a_backup_answering_late_does_not_take_the_traffic():
    late = [{"gw1": True}, {"gw1": True}, ALL, ALL]
    chosen, _unused = fold(late)
    assert set(chosen) == {"gw1"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: st.booleans() for n in ORDER}), min_size=1,
                max_size=40))
def test_choice_is_the_first_healthy_or_the_last_choice(rounds):
    health = {n: fo.Health() for n in ORDER}
    current = None
    for result in rounds:
        health = {n: fo.observe(health[n], result[n], 2, 3) for n in ORDER}
        chosen = fo.choose(ORDER, health, current)
        up = [n for n in ORDER if health[n].state == UP]
        assert chosen == (up[0] if up else (current or "gw1"))
        current = chosen


def test_switch_reasons_name_the_cause():
    health = {"gw1": fo.Health(DOWN, 0, 2), "gw2": fo.Health(UP, 9, 0), "gw3": fo.Health()}
    reason = fo.switch_reason("gw1", "gw2", ORDER, health, 2, 3)
    assert "gw1 is down (2 failed rounds)" in reason
    health["gw1"] = fo.Health(UP, 3, 0)
    assert "gw1 is healthy again (3 good rounds)" in fo.switch_reason(
        "gw2", "gw1", ORDER, health, 2, 3)
    assert "start" in fo.switch_reason(None, "gw1", ORDER, health, 2, 3)


# ---------------------------------------------------------------- the TUN plan


class FakeTun:
    """The kernel's behaviour that matters: new addresses go last; deleting an address
    deletes the routes whose src it is; a route's src must be an address of the TUN."""

    def __init__(self, addresses, routes):
        self.addresses = list(addresses)
        self.routes = dict(routes)  # dst: src or None
        self.route_count_low = len(self.routes)

    def apply(self, cmd):
        kind, verb, target = cmd[0], cmd[1], cmd[2]
        if kind == "addr":
            address = target.split("/")[0]
            if verb == "add":
                assert address not in self.addresses, "EEXIST: %s" % address
                self.addresses.append(address)
            else:
                self.addresses.remove(address)
                self.routes = {d: s for d, s in self.routes.items() if s != address}
        else:
            src = cmd[cmd.index("src") + 1]
            assert src in self.addresses, "src %s is not on the TUN" % src
            assert cmd[cmd.index("proto") + 1] == "52", "cjdns must still own its routes"
            self.routes[target] = src
        self.route_count_low = min(self.route_count_low, len(self.routes))

    def view(self):
        return ([fo.Addr(a) for a in self.addresses],
                [{"dst": d, "scope": "link", **({"prefsrc": s} if s else {})}
                 for d, s in self.routes.items()])


def run_plan(addresses, routes, issued, first):
    tun = FakeTun(addresses, routes)
    present, route_list = tun.view()
    cmds = fo.plan("cjdns0", present, route_list, {a: 32 for a in issued}, first)
    for cmd in cmds:
        tun.apply(cmd)
    return tun, cmds


CJDNS_ROUTES = {"0.0.0.0/1": None, "128.0.0.0/1": None}
A, B, C = "10.64.1.7", "10.65.2.9", "10.66.3.4"


def test_plan_is_empty_when_everything_is_in_place():
    routes = {"0.0.0.0/1": A, "128.0.0.0/1": A}
    _unused, cmds = run_plan([A, B], routes, [A, B], A)
    assert cmds == []


def test_plan_moves_the_chosen_address_first_without_losing_a_route():
    tun, cmds = run_plan([A, B], {"0.0.0.0/1": A, "128.0.0.0/1": A}, [A, B], B)
    assert tun.addresses == [B, A]
    assert set(tun.routes.values()) == {B}
    assert tun.route_count_low == 2
    assert cmds[0][:2] == ["route", "replace"]


def test_plan_puts_back_what_cjdns_replaced():
    # cjdns' SIOCSIFADDR for C replaced the first address (A, in use) with C at the end.
    tun, _unused = run_plan([B, C], dict(CJDNS_ROUTES), [A, B, C], A)
    assert tun.addresses[0] == A and sorted(tun.addresses) == sorted([A, B, C])
    assert set(tun.routes.values()) == {A}


def test_plan_never_adds_an_address_cjdns_has_not_issued():
    tun, cmds = run_plan([B], dict(CJDNS_ROUTES), [B], A)
    assert tun.addresses == [B]
    assert not any(A in " ".join(c) for c in cmds)


def test_plan_keeps_a_foreign_address_and_its_prefix_length():
    tun = FakeTun(["192.0.2.5", A], {})
    present = [fo.Addr("192.0.2.5", 24), fo.Addr(A)]
    cmds = fo.plan("cjdns0", present, [], {A: 32}, A)
    assert ["addr", "add", "192.0.2.5/24", "dev", "cjdns0"] in cmds
    for cmd in cmds:
        tun.apply(cmd)
    assert tun.addresses == [A, "192.0.2.5"]


def test_plan_reads_a_default_route_as_0_0_0_0_0():
    cmds = fo.plan("cjdns0", [fo.Addr(A)], [{"dst": "default", "scope": "link"}], {A: 32}, A)
    assert cmds == [["route", "replace", "0.0.0.0/0", "dev", "cjdns0", "proto", "52",
                     "scope", "link", "src", A]]


@settings(max_examples=300, deadline=None)
@given(st.permutations([A, B, C]), st.integers(0, 3), st.sets(st.sampled_from([A, B, C])),
       st.sampled_from([A, B, C, None]), st.sampled_from([A, B, C, None]))
def test_plan_reaches_the_wanted_state_without_dropping_routes(order, keep, issued, first,
                                                               src):
    present = list(order[:keep])
    issued = set(issued) | set(present)
    routes = {"0.0.0.0/1": src if src in present else None,
              "128.0.0.0/1": src if src in present else None}
    tun, _unused = run_plan(present, routes, sorted(issued), first)
    assert sorted(tun.addresses) == sorted(issued)  # all issued back, nothing else added
    assert tun.route_count_low == 2  # no moment without cjdns' routes
    if first in issued:
        assert tun.addresses[0] == first
        assert set(tun.routes.values()) == {first}
    _unused, again = run_plan(tun.addresses, tun.routes, sorted(issued), first)
    assert again == []  # a second pass has nothing to do


# ---------------------------------------------------------------- config, wire formats

GOOD = {"tun_device": "cjdns0", "interval": 1, "down_after": 2, "up_after": 3,
        "probe_targets": ["192.0.2.1"],
        "gateways": [{"name": "gw1", "address": A, "public_key": "k1.k"},
                     {"name": "gw2", "address": B, "public_key": "k2.k"}]}


def test_config_accepts_the_role_s_output():
    cfg = fo.parse_config(GOOD)
    assert [g.name for g in cfg.gateways] == ["gw1", "gw2"]
    assert cfg.interval == 1.0 and cfg.down_after == 2 and cfg.up_after == 3


@pytest.mark.parametrize("change, message", [
    ({"interval": 0.5}, "interval must be at least 1 second"),
    ({"gateways": []}, "gateways is empty"),
    ({"probe_targets": []}, "probe_targets is empty"),
    ({"probe_targets": ["example.org"]}, "probe_targets: 'example.org' is not an IPv4 address"),
    ({"gateways": [{"name": "gw1", "address": A}, {"name": "gw2", "address": A}]},
     "same address"),
    ({"up_after": 0}, "at least 1"),
    ({"gateways": [{"name": "gw1"}]}, "its address or its public_key"),
])
def test_config_refuses_bad_values(change, message):
    with pytest.raises(fo.ConfigError, match=message):
        fo.parse_config({**GOOD, **change})


def test_config_address_is_optional_with_a_public_key():
    cfg = fo.parse_config({**GOOD, "gateways": [{"name": "gw1", "public_key": "k1.k"}]})
    assert cfg.gateways[0].address is None


def test_bencode_round_trip_and_padded_lengths():
    value = {"q": "auth", "args": {"connection": 3}, "list": [1, "x"]}
    assert fo.bdecode(fo.bencode(value))[0] == value
    # cjdns pads string lengths with zeros in some messages
    assert fo.bdecode(b"d0000009:addressesi1ee")[0] == {"addresses": 1}


def test_echo_request_checksum_verifies():
    packet = fo.echo_request(0x1234, 7)
    assert fo.icmp_checksum(packet) == 0
    assert struct.unpack_from("!BBHHH", packet)[3:] == (0x1234, 7)


def test_echo_reply_is_matched_after_the_ip_header():
    icmp = bytearray(fo.echo_request(0x1234, 7))
    icmp[0] = 0  # echo reply
    ip_header = bytes([0x45]) + bytes(19)
    assert fo.is_echo_reply(ip_header + bytes(icmp), 0x1234, 7)
    assert not fo.is_echo_reply(ip_header + bytes(icmp), 0x1234, 8)
    assert not fo.is_echo_reply(ip_header + fo.echo_request(0x1234, 7), 0x1234, 7)
    assert not fo.is_echo_reply(ip_header[:10], 0x1234, 7)


# ---------------------------------------------------------------- reading the TUN


def fake_ip(outputs):
    """Stand in for the `ip` command: argv tuple -> (rc, stdout)."""
    import subprocess

    def run(args):
        rc, out = outputs.get(tuple(args), (1, ""))
        return subprocess.CompletedProcess(["ip", *args], rc, out, "")
    return run


ADDR = ("-j", "addr", "show", "dev", "cjdns0")
ROUTES = ("-j", "-4", "route", "show", "table", "main", "dev", "cjdns0", "proto", "52")


def test_a_tun_without_ipv4_yet_is_there(monkeypatch):
    # cjdns creates the TUN with its fc00::/8 address; gateways' addresses come later.
    link = [{"ifindex": 7, "ifname": "cjdns0", "addr_info": [
        {"family": "inet6", "local": "fc40::1", "prefixlen": 8}]}]
    monkeypatch.setattr(fo, "ip", fake_ip({ADDR: (0, fo.json.dumps(link)), ROUTES: (0, "[]")}))
    tun = fo.read_tun("cjdns0")
    assert tun is not None and tun.ifindex == 7 and tun.addresses == [] and tun.routes == []


def test_tun_addresses_in_kernel_order_and_cjdns_routes(monkeypatch):
    link = [{"ifindex": 7, "addr_info": [
        {"family": "inet", "local": B, "prefixlen": 32},
        {"family": "inet6", "local": "fc40::1", "prefixlen": 8},
        {"family": "inet", "local": A, "prefixlen": 32}]}]
    routes = [{"dst": "0.0.0.0/1", "scope": "link", "prefsrc": B}]
    monkeypatch.setattr(fo, "ip", fake_ip({ADDR: (0, fo.json.dumps(link)),
                                           ROUTES: (0, fo.json.dumps(routes))}))
    tun = fo.read_tun("cjdns0")
    assert tun.addresses == [fo.Addr(B), fo.Addr(A)] and tun.routes == routes


def test_no_tun(monkeypatch):
    monkeypatch.setattr(fo, "ip", fake_ip({}))
    assert fo.read_tun("cjdns0") is None


def test_every_probe_round_is_a_new_flow_for_conntrack(monkeypatch):
    """One ICMP id for ever would let a gateway's stale conntrack entry (made before its
    masquerade rule, say) live on, refreshed by the probes themselves."""
    sent = []

    class FakeSocket:
        def __init__(self, *args):
            pass

        def setsockopt(self, *args):
            pass

        def bind(self, address):
            pass

        def sendto(self, packet, address):
            sent.append(struct.unpack_from("!BBHHH", packet)[3])

        def close(self):
            pass

    monkeypatch.setattr(fo.socket, "socket", FakeSocket)
    monkeypatch.setattr(fo.select, "select", lambda r, w, x, t: ([], [], []))
    prober = fo.Prober(fo.parse_config(GOOD), lambda fd: None)
    ids = set()
    for _i in range(20):
        sent.clear()
        assert prober.run([A, B], [], 0.0) == set()
        assert len(set(sent)) == 1  # one id within a round, for every gateway
        ids.add(sent[0])
    assert len(ids) > 15
