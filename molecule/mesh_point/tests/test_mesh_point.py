"""What an operator relies on after the mesh_point role ran, checked on real (simulated)
802.11s radios after a reboot of the node (side_effect.yml), without a rerun of the role.

Fixture peers (files/meshfleet-test-fixture, not the role) are other hwsim radios of the
same VM in network namespaces: `fmgood` knows the passphrase, `fmbad` does not."""

import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import link_plan
from meshtest import REAL_REASON, real_daemon, registry

REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
INVENTORY = yaml.safe_load((Path(__file__).parents[1] / "inventory" / "hosts.yml").read_text())
GROUPS = INVENTORY["all"]["children"]
MESH = GROUPS["mesh_nodes"]["children"]["mesh_points"]
# Issues #9 and #16: a no-op rerun of site.yml on a gateway + mesh point + bridge end, at
# most 10 module executions (19 before node_files).
BUDGET = 10
SETTINGS = dict(MESH["vars"], **MESH["hosts"]["mp-node1"])
RADIO_MAC = SETTINGS["mesh_point_mac"]
FREQ = 5180  # channel 36
GOOD = {"name": "fmgood", "radio": "02:00:00:00:02:00",
        "passphrase": SETTINGS["mesh_point_sae_passphrase"]}
BAD = {"name": "fmbad", "radio": "02:00:00:00:03:00", "passphrase": "a-wrong-passphrase"}


def wait_for(check, timeout, what):
    deadline = time.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.time() > deadline:
            pytest.fail("%s: not within %d s" % (what, timeout))
        time.sleep(2)


def stations(host, dev="mesh0", ns=None):
    """`iw dev DEV station dump` as {mac: {field: value}}."""
    prefix = "ip netns exec %s " % ns if ns else ""
    out = host.check_output("%siw dev %s station dump" % (prefix, dev))
    result, current = {}, None
    for line in out.splitlines():
        match = re.match(r"^Station ([0-9a-f:]{17})", line)
        if match:
            current = result.setdefault(match.group(1), {})
        elif current is not None and ":" in line:
            key, _sep, value = line.strip().partition(":")
            current[key.strip()] = value.strip()
    return result


def peer_mac(host, peer):
    return host.check_output("ip netns exec %s cat /sys/class/net/%s/address"
                             % (peer["name"], peer["name"]))


@pytest.fixture(scope="module")
def peers(host):
    """Start both fixture peers; return their link-local addresses."""
    out = {}
    for peer in (GOOD, BAD):
        out[peer["name"]] = host.check_output(
            "meshfleet-test-fixture peer %s %s %s %d %s '%s'" % (
                peer["name"], peer["radio"], SETTINGS["mesh_point_mesh_id"], FREQ,
                SETTINGS["mesh_point_country"], peer["passphrase"])).splitlines()[-1]
    return out


def good_link(host):
    mac = peer_mac(host, GOOD)
    return wait_for(lambda: (stations(host).get(mac, {}).get("mesh plink") == "ESTAB"
                             and stations(host)[mac]), 90, "an ESTAB link to the good peer")


def test_noop_rerun_within_module_budget():
    """The idempotence run is a no-op rerun of playbooks/site.yml. On mp-node1, a gateway,
    a mesh point and a bridge end at once, it executes at most BUDGET modules (fact
    gathering included), and it changes nothing on any host."""
    node = "mp-node1"
    assert {g for g in ("gateways", "bridges") if node in (GROUPS[g]["hosts"] or {})} == {
        "gateways", "bridges"}
    assert node in MESH["hosts"]
    report = json.loads(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "run_budget-site.json").read_text())
    hosts = report["hosts"]
    assert set(hosts) == {"mp-node1", "mp-far"}
    # The rerun did run the roles (a run cut short would also fit the budget).
    assert hosts[node]["modules"] > 0 and hosts[node]["failed"] == 0
    assert hosts[node]["modules"] <= BUDGET, "%s ran %d modules, over the budget of %d" % (
        node, hosts[node]["modules"], BUDGET)
    assert {h: r["changed"] for h, r in hosts.items() if r["changed"]} == {}


def test_gateway_and_bridge_end_after_reboot(host):
    """The gateway's forwarding and NAT, and the bridge end's link address, come back at
    boot without a rerun (the link has no far end here; the bridge scenario has traffic)."""
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "1"
    rules = [r.strip() for r in host.check_output("nft list table inet meshfleet").splitlines()]
    pool = GROUPS["gateways"]["hosts"]["mp-node1"]["gateway_pool"]
    assert 'oifname "eth0" ip saddr %s masquerade comment "gateway"' % pool in rules
    plan = link_plan(INVENTORY["all"]["vars"]["bridge_links"],
                     fleet_id=INVENTORY["all"]["vars"]["bridge_fleet_id"])
    mine = [end for end in plan["mp-link"]["ends"] if end["host"] == "mp-node1"][0]
    assert mine["interface"] == "link0"
    addrs = host.check_output("ip -6 -o addr show dev link0 scope global")
    assert " %s/64 " % mine["address"] in addrs
    conf = json.loads(host.file("/etc/cjdns/cjdroute.conf").content_string)
    binds = [u["bind"] for u in conf["interfaces"]["UDPInterface"]]
    assert any(b.startswith("[%s]" % mine["address"]) for b in binds), binds


def test_node_booted_without_failed_units(host):
    """Debian's D-Bus wpa_supplicant.service failed at every boot of this VM (no D-Bus, no
    NetworkManager): the role masked it, so the node now boots clean, with the gateway's
    and the bridge's units too."""
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    assert host.run("systemctl is-enabled wpa_supplicant.service").stdout.strip() == "masked"


def test_mesh_unit_enabled_and_running(host):
    unit = host.service("meshfleet-mesh@mesh0")
    assert unit.is_enabled and unit.is_running
    before = host.check_output("systemctl show -P Before meshfleet-mesh@mesh0.service")
    assert "cjdns.service" in before.split()


def test_mesh_interface_on_the_radio_chosen_by_mac(host):
    phy = host.check_output("basename $(readlink -f /sys/class/net/mesh0/phy80211)")
    assert host.file("/sys/class/ieee80211/%s/macaddress" % phy).content_string.strip() == RADIO_MAC
    info = host.check_output("iw dev mesh0 info")
    assert "type mesh point" in info
    assert "channel 36 (5180 MHz), width: 20 MHz" in info
    # The radio belongs to the mesh: its default interface is down; other radios untouched.
    others = host.check_output("ls /sys/class/ieee80211/%s/device/net" % phy).split()
    for dev in set(others) - {"mesh0"}:
        assert "state DOWN" in host.check_output("ip link show dev %s" % dev)


def test_regulatory_country_in_force(host):
    assert "country CA:" in host.check_output("iw reg get | sed -n 2p")


def test_802_11s_forwarding_off_and_rssi_threshold(host):
    assert host.check_output("iw dev mesh0 get mesh_param mesh_fwding") == "0"
    assert host.check_output("iw dev mesh0 get mesh_param mesh_rssi_threshold") == "-80 dBm"


def test_passphrase_only_in_the_root_only_config(host):
    conf = host.file("/etc/meshfleet/mesh_point/mesh0.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o600)
    passphrase = SETTINGS["mesh_point_sae_passphrase"]
    # Written in hex (a quote or a # in it cannot break the file).
    in_hex = passphrase.encode("utf-8").hex()
    assert "\n\tsae_password=%s\n" % in_hex in conf.content_string
    assert passphrase not in conf.content_string
    leaks = host.run("find /etc/meshfleet /etc/systemd/system /usr/local/lib/meshfleet "
                     "-xdev -type f -perm -o=r -exec grep -liF -e '%s' -e '%s' {} +"
                     % (passphrase, in_hex))
    assert leaks.stdout.strip() == "", "world-readable files hold the passphrase"
    # The sanity check of that search: it finds the root-only file itself.
    found = host.run("grep -liF -e '%s' /etc/meshfleet/mesh_point/mesh0.conf" % in_hex)
    assert found.stdout.strip() == "/etc/meshfleet/mesh_point/mesh0.conf"


def test_sae_peer_link_is_authorized_with_mfp(host, peers):
    station = good_link(host)
    assert station["authorized"] == "yes"
    assert station["MFP"] == "yes"


def test_traffic_passes_over_the_mesh(host, peers):
    good_link(host)
    target = "%s%%mesh0" % peers[GOOD["name"]]
    wait_for(lambda: host.run("ping -6 -c 1 -W 2 %s" % target).rc == 0, 60,
             "a ping reply from the good peer over mesh0")
    assert host.run("ping -6 -c 5 -i 0.3 -W 2 %s" % target).rc == 0


def test_wrong_passphrase_never_gets_a_link(host, peers):
    good_link(host)  # the good peer, started at the same time, made it
    bad = peer_mac(host, BAD)
    # Not a vacuous "no link": the node heard the bad peer and refused its SAE handshake.
    wait_for(lambda: "MESH-SAE-AUTH-FAILURE addr=%s" % bad in host.check_output(
        "journalctl -b -u meshfleet-mesh@mesh0.service --no-pager -o cat"), 60,
        "the node's wpa_supplicant refusing the wrong passphrase of %s" % bad)
    assert bad in stations(host), "the bad peer is not even heard on the mesh"
    time.sleep(10)
    assert stations(host).get(bad, {}).get("mesh plink") != "ESTAB"
    assert stations(host).get(bad, {}).get("authorized") != "yes"
    for station in stations(host, BAD["name"], ns=BAD["name"]).values():
        assert station.get("mesh plink") != "ESTAB"
    mesh0_ll = host.check_output(
        "ip -6 -o addr show dev mesh0 scope link | awk '{print $4}' | cut -d/ -f1")
    assert host.run("ip netns exec fmbad ping -6 -c 2 -W 2 %s%%fmbad" % mesh0_ll).rc != 0


def test_cjdns_gets_an_eth_interface_with_beacons_on_mesh0(host):
    conf = json.loads(host.file("/etc/cjdns/cjdroute.conf").content_string)
    assert {"bind": "mesh0", "beacon": 2, "connectTo": {}} in conf["interfaces"]["ETHInterface"]
    assert host.service("cjdns").is_running


@REAL
def test_cjdns_peers_over_the_mesh_and_pings(host, peers):
    """The fixture's cjdroute has one interface, ETH on its mesh radio with beacons, and was
    given neither this node's key nor a password: a reply proves beacon peering over 802.11s."""
    good_link(host)
    fixture_ip = host.check_output(
        "meshfleet-test-fixture cjdns %s" % GOOD["name"]).splitlines()[-1]
    wait_for(lambda: host.run("ping -6 -c 1 -W 2 %s" % fixture_ip).rc == 0, 90,
             "a ping reply from the fixture's cjdns (%s) over mesh0" % fixture_ip)
    # ...and the fixture reaches this node's cjdns address the same way.
    node_ip = registry()["mp-node1"]["ipv6"]
    assert host.run("ip netns exec fmgood ping -6 -c 2 -W 3 %s" % node_ip).rc == 0


def test_unit_restart_keeps_the_interface_and_relinks(host, peers):
    good_link(host)
    ifindex = host.file("/sys/class/net/mesh0/ifindex").content_string
    host.check_output("systemctl restart meshfleet-mesh@mesh0.service")
    station = good_link(host)
    assert station["authorized"] == "yes"
    # cjdns binds mesh0 by index: a restart must not replace the interface.
    assert host.file("/sys/class/net/mesh0/ifindex").content_string == ifindex


def test_unit_recreates_a_deleted_interface_on_the_right_radio(host, peers):
    host.check_output("systemctl stop meshfleet-mesh@mesh0.service && iw dev mesh0 del")
    host.check_output("systemctl start meshfleet-mesh@mesh0.service")
    phy = host.check_output("basename $(readlink -f /sys/class/net/mesh0/phy80211)")
    assert host.file("/sys/class/ieee80211/%s/macaddress" % phy).content_string.strip() == RADIO_MAC
    assert good_link(host)["authorized"] == "yes"
