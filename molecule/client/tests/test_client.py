"""What an operator relies on after the client role ran: its gateways pinned in order, the
failover service watching them, the LAN shared through the tunnel only, and (with the
real daemon) traffic that moves to the other gateway and back when the first fails.
"""

import ipaddress
import json
import os
import time
from pathlib import Path

import pytest
import testinfra
import udp_flow
import yaml
from meshtest import REAL_REASON, cjdns_conf, real_daemon, registry

REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
GATEWAYS = ["cl-gw1", "cl-gw2"]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
# Measured outages are kept here (git-ignored), since Molecule prunes its own directory.
REPORT = Path(__file__).resolve().parents[3] / ".build" / "reports" / "client-failover.json"
STEP = 0.05  # seconds between the flows' datagrams
LAN = "10.77.0.0/24"  # client_lan_prefix: namespace lanhost inside cl-client (prepare.yml)


def node(name):
    return testinfra.get_host("docker://" + name)


def ipv4(name, interface):
    out = json.loads(node(name).check_output("ip -j -4 addr show dev %s" % interface))
    info = out[0]["addr_info"][0]
    return info["local"], ipaddress.ip_interface("%s/%s" % (info["local"], info["prefixlen"]))


def allocations():
    return yaml.safe_load((EPHEMERAL / "gateway_allocations.yml").read_text())["gateways"]


def issued(gateway):
    """The address the gateway allocated cl-client (its registry of allocations)."""
    return allocations()[gateway]["ipv4"]["clients"]["cl-client"]


def failover_config():
    return json.loads(node("cl-client").file("/etc/meshfleet/gw-failover.json").content_string)


# ------------------------------------------------------------------ pinning and config


def test_outgoing_connections_are_the_gateways_keys_in_priority_order():
    conf = cjdns_conf(node("cl-client"))
    keys = [registry()[gw]["public_key"] for gw in GATEWAYS]
    assert conf["router"]["ipTunnel"]["outgoingConnections"] == keys


def test_each_gateway_allows_the_client_with_the_address_in_the_config():
    client_key = registry()["cl-client"]["public_key"]
    for gw, entry in zip(GATEWAYS, failover_config()["gateways"], strict=True):
        allowed = cjdns_conf(node(gw))["router"]["ipTunnel"]["allowedConnections"]
        mine = [a for a in allowed if a["publicKey"] == client_key]
        assert len(mine) == 1 and mine[0]["ip4Address"] == entry["address"]


def test_failover_config_lists_the_gateways_in_order_with_their_addresses_and_keys():
    config = failover_config()
    assert [g["name"] for g in config["gateways"]] == GATEWAYS
    for entry in config["gateways"]:
        gw = entry["name"]
        assert entry["address"] == issued(gw)
        pool = ipaddress.ip_network(allocations()[gw]["ipv4"]["pool"])
        assert ipaddress.ip_address(entry["address"]) in pool
        assert entry["public_key"] == registry()[gw]["public_key"]
    assert config["probe_targets"] == [ipv4("cl-inet", "uplink")[0]]
    assert (config["interval"], config["down_after"], config["up_after"]) == (1, 2, 3)
    assert config["tun_device"] == "cjdns0"


def test_the_service_accepts_its_config():
    client = node("cl-client")
    program = client.file("/usr/local/sbin/meshfleet-gw-failover")
    assert program.user == "root" and program.mode == 0o755
    out = client.run("/usr/local/sbin/meshfleet-gw-failover --check "
                     "--config /etc/meshfleet/gw-failover.json")
    assert out.rc == 0, out.stderr


def test_failover_service_enabled_running_and_watching_the_gateways_in_order():
    client = node("cl-client")
    service = client.service("meshfleet-gw-failover")
    assert service.is_enabled and service.is_running
    for _i in range(20):  # the service writes its view after its first round
        state = client.file("/run/meshfleet-gw-failover/state.json")
        if state.exists:
            break
        time.sleep(0.5)
    view = json.loads(state.content_string)
    assert [g["name"] for g in view["gateways"]] == GATEWAYS


def test_gateways_run_no_failover_service():
    for gw in GATEWAYS:
        assert not node(gw).file("/etc/systemd/system/meshfleet-gw-failover.service").exists


# ------------------------------------------------------------------ LAN sharing, DNS


def test_lan_is_masqueraded_out_of_the_tun_only():
    client = node("cl-client")
    lan = LAN
    nat = client.check_output("nft list chain inet meshfleet postrouting")
    masquerades = [line.strip() for line in nat.splitlines() if "masquerade" in line]
    # Only the LAN's prefix: the failover's probes leave with their gateway's address.
    assert masquerades and all(
        line.startswith('ip saddr %s oifname "cjdns0" masquerade' % lan) for line in masquerades)


def test_only_the_lan_to_the_tunnel_is_forwarded():
    client = node("cl-client")
    lan = LAN
    forward = client.check_output("nft list chain inet meshfleet forward")
    assert "policy drop;" in forward
    rules = [line.strip().split(" comment")[0] for line in forward.splitlines()
             if line.strip().endswith("accept") or "accept comment" in line]
    assert rules == ['ip saddr %s oifname "cjdns0" accept' % lan,
                     'iifname "cjdns0" ip daddr %s ct state established,related accept' % lan]
    # Containers start with forwarding off: the role turned it on, persistently.
    assert client.check_output("sysctl -n net.ipv4.ip_forward") == "1"
    sysctl = client.file("/etc/sysctl.d/90-meshfleet-client.conf")
    assert sysctl.contains("^net.ipv4.ip_forward = 1")


def test_resolvers_through_the_tunnel():
    inet = ipv4("cl-inet", "uplink")[0]
    resolv = node("cl-client").file("/etc/resolv.conf").content_string
    servers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert servers == [inet]


# ------------------------------------------------------------------ with the real daemon


@REAL
def test_tun_carries_every_issued_address_the_primary_first():
    client = node("cl-client")
    want = [issued(gw) for gw in GATEWAYS]
    for _i in range(60):
        addrs = [a["local"] for a in json.loads(client.check_output(
            "ip -j -4 addr show dev cjdns0"))[0]["addr_info"]]
        routes = json.loads(client.check_output("ip -j -4 route show dev cjdns0 proto 52"))
        if (addrs[:1] == want[:1] and sorted(addrs) == sorted(want)
                and {r.get("prefsrc") for r in routes} == {want[0]}):
            break
        time.sleep(1)
    assert addrs[0] == want[0] and sorted(addrs) == sorted(want)
    assert sorted(r["dst"] for r in routes) == ["0.0.0.0/1", "128.0.0.0/1"]
    assert {r.get("prefsrc") for r in routes} == {want[0]}


class Flows:
    """UDP flows to cl-inet (tests/molecule/udp_flow.py), a new socket per datagram: from
    the client itself, and from the LAN host behind it (masqueraded by the client)."""

    SOURCES = {"client": "", "lanhost": "ip netns exec lanhost "}

    def __init__(self):
        self.client = node("cl-client")
        self.inet = ipv4("cl-inet", "uplink")[0]
        self.via = {ipv4(gw, "uplink")[0]: gw for gw in GATEWAYS}
        for name, prefix in self.SOURCES.items():
            unit = "mft-flow-" + name
            self.client.run("systemctl stop %s; systemctl reset-failed %s; rm -f /run/%s.log"
                            % (unit, unit, unit))
            self.client.check_output(
                "systemd-run --unit=%s -p StandardOutput=file:/run/%s.log %s/usr/bin/python3 -u "
                "/usr/local/bin/udp-flow flow %s 9000 %s" % (unit, unit, prefix, self.inet, STEP))

    def stop(self):
        for name in self.SOURCES:
            self.client.run("systemctl stop mft-flow-" + name)

    def replies(self, name):
        text = self.client.file("/run/mft-flow-%s.log" % name).content_string
        return [(sent, recv, self.via.get(via, via)) for sent, recv, via in udp_flow.parse(text)]

    def wait_via(self, gateway, since, timeout):
        """Until every flow has had replies only via `gateway` for 2 s (True), or timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            now = time.monotonic()
            if all(self._steady(self.replies(name), gateway, since, now) for name in self.SOURCES):
                return True
            time.sleep(0.5)
        return False

    @staticmethod
    def _steady(replies, gateway, since, now):
        recent = [r for r in replies if r[0] >= max(since, now - 2.0)]
        return (bool(recent) and recent[0][0] <= now - 1.8 and recent[-1][0] >= now - 0.5
                and all(r[2] == gateway for r in recent))

    def measure(self, t0, gateway):
        now = time.monotonic()
        return {name: udp_flow.measure(self.replies(name), t0, gateway, now, STEP)
                for name in self.SOURCES}


def gateway_states():
    text = node("cl-client").file("/run/meshfleet-gw-failover/state.json").content_string
    return {g["name"]: g["state"] for g in json.loads(text)["gateways"]}


@REAL
def test_traffic_fails_over_and_back_and_the_internet_sees_the_right_gateway(capsys):
    """The issue's acceptance sequence. Times are measured from the event to the first
    datagram from which on every reply came through the expected gateway."""
    gw1, client = node("cl-gw1"), node("cl-client")
    inet = ipv4("cl-inet", "uplink")[0]
    results = {}
    flows = Flows()

    def step(name, action, expect, timeout, limit=None):
        t0 = time.monotonic()
        action()
        reached = flows.wait_via(expect, t0, timeout)
        results[name] = {"expect": expect, "reached": reached, "flows": {
            flow: {"outage_s": round(outage, 2), "on_expected_after_s":
                   None if settled is None else round(settled, 2)}
            for flow, (outage, settled) in flows.measure(t0, expect).items()}}
        assert reached, "%s: traffic did not settle on %s within %d s: %s" % (
            name, expect, timeout, results[name])
        if limit is not None:
            for flow, r in results[name]["flows"].items():
                assert r["outage_s"] < limit, "%s: %s was out %s s" % (name, flow, r["outage_s"])
        return results[name]

    try:
        step("start", lambda: None, "cl-gw1", 60)
        step("stop cl-gw1's cjdns", lambda: gw1.check_output("systemctl stop cjdns"), "cl-gw2", 30,
             limit=10)
        step("start cl-gw1's cjdns again", lambda: gw1.check_output("systemctl start cjdns"),
             "cl-gw1", 150)
        step("cl-gw1's uplink down", lambda: gw1.check_output("ip link set uplink down"),
             "cl-gw2", 30, limit=10)
        # The service tells the gateways apart: its probes through cl-gw2's address are
        # not masqueraded to cl-gw1's, so they reach cl-gw2 and cl-gw1's fail.
        assert gateway_states() == {"cl-gw1": "down", "cl-gw2": "up"}
        step("cl-gw1's uplink up", lambda: gw1.check_output(
            "ip link set uplink up && ip route replace default via %s dev uplink" % inet),
            "cl-gw1", 30)
    finally:
        flows.stop()
        gw1.run("systemctl start cjdns; ip link set uplink up; "
                "ip route replace default via %s dev uplink" % inet)
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(results, indent=1))
        with capsys.disabled():
            print("\nmeasured (also in %s):" % REPORT)
            for name, r in results.items():
                print("  %-28s %s" % (name, ", ".join(
                    "%s: out %.2f s, on %s after %s s" % (
                        flow, f["outage_s"], r["expect"], f["on_expected_after_s"])
                    for flow, f in r["flows"].items())))
    log = client.check_output("journalctl -u meshfleet-gw-failover --no-pager -o cat")
    assert "using gateway cl-gw2 (%s): cl-gw1 is down (2 failed rounds)" % issued("cl-gw2") in log
    assert ("using gateway cl-gw1 (%s): cl-gw1 is healthy again (3 good rounds)"
            % issued("cl-gw1")) in log
