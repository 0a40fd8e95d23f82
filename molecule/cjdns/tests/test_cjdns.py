"""What an operator relies on after the cjdns role ran (testinfra, every node: two
amd64 nodes and the Raspberry Pi's arm64 and armhf under qemu-user)."""

import ipaddress
import json
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import (
    ARCHITECTURES,
    node_architecture,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    ipv6_from_public_key,
    public_key_from_private,
)
from meshtest import REAL_REASON, cjdns_conf, hostname, real_daemon, registry

REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)

INVENTORY = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "inventory" / "hosts.yml").read_text())
NODES = INVENTORY["all"]["children"]["mesh_nodes"]["hosts"]
# Who names whom in cjdns_peers; a pair peers whichever end names the other.
DECLARED = {name: node.get("cjdns_peers", []) for name, node in NODES.items()}
# The Debian architecture each node stands for.
ARCH = {name: node.get("molecule_arch", "amd64") for name, node in NODES.items()}


def peers_of(name):
    named_by = {other for other, named in DECLARED.items() if name in named}
    return sorted(set(DECLARED[name]) | named_by)


def test_binary_installed_and_runs(host):
    binary = host.file("/usr/local/sbin/cjdroute")
    assert binary.mode == 0o755 and binary.user == "root"
    out = host.run("/usr/local/sbin/cjdroute --version")
    assert out.rc == 0 and out.stdout.strip()


def test_node_runs_its_own_architecture(host):
    """The arm64 and armhf nodes are what they stand for: their userland (and, with the
    real daemon, the cjdroute the role chose for them) is of that architecture."""
    arch = ARCH[hostname(host)]
    # The role's own mapping of uname -m and of ELF headers (plugins/module_utils/artifact.py).
    assert node_architecture(host.check_output("uname -m"), 64) == arch
    if real_daemon():
        head = host.check_output(
            "python3 -c \"d = open('/usr/local/sbin/cjdroute', 'rb').read(20); "
            "print(d[18] | d[19] << 8)\"")
        assert int(head) == ARCHITECTURES[arch][0]


def test_seccomp_off_only_where_emulated(host):
    security = cjdns_conf(host)["security"]
    seccomp = [item["seccomp"] for item in security if "seccomp" in item]
    emulated = NODES[hostname(host)].get("molecule_arch", "amd64") != "amd64"
    assert seccomp == [0 if emulated else 1]


def test_private_key_is_root_only(host):
    key = host.file("/etc/cjdns/private.key")
    assert key.user == "root" and key.mode == 0o600
    assert host.file("/etc/cjdns").mode == 0o700


def test_config_is_strict_json_root_only(host):
    conf_file = host.file("/etc/cjdns/cjdroute.conf")
    assert conf_file.user == "root" and conf_file.mode == 0o600
    conf = cjdns_conf(host)
    assert conf["router"]["interface"]["tunDevice"] == "cjdns0"
    assert conf["admin"]["bind"] == "127.0.0.1:11234"
    assert conf["admin"]["password"] not in ("", "NONE") and len(conf["admin"]["password"]) >= 32
    assert conf["interfaces"]["UDPInterface"][0]["beacon"] == 0
    assert "ETHInterface" not in conf["interfaces"]


def test_config_key_matches_registry(host):
    conf = cjdns_conf(host)
    entry = registry()[hostname(host)]
    assert public_key_from_private(conf["privateKey"]) == entry["public_key"]
    assert conf["publicKey"] == entry["public_key"]
    assert ipv6_from_public_key(entry["public_key"]) == entry["ipv6"] == conf["ipv6"]


def test_registry_lists_every_node():
    nodes = registry()
    assert sorted(nodes) == sorted(NODES)
    assert len({entry["public_key"] for entry in nodes.values()}) == len(NODES)


def test_static_peering_derived_on_both_ends(host):
    """A node connects to the peers it names and authorizes every peer of its pairs, each
    pair with one derived password (node1 names node2; node3 and node4 name node1)."""
    conf = cjdns_conf(host)
    udp = conf["interfaces"]["UDPInterface"][0]
    users = {a["user"]: a["password"] for a in conf["authorizedPasswords"]}
    me = hostname(host)
    assert sorted(users) == peers_of(me)
    by_key = {registry()[name]["public_key"]: name for name in NODES}
    connected = {}
    for endpoint, creds in udp["connectTo"].items():
        ip, port = endpoint.rsplit(":", 1)
        assert ipaddress.ip_address(ip) and port == "41300"
        assert creds["login"] == me
        connected[by_key[creds["publicKey"]]] = creds["password"]
    assert sorted(connected) == sorted(DECLARED[me])
    for name, password in connected.items():
        assert password == users[name]


def test_service_enabled_and_running(host):
    service = host.service("cjdns")
    assert service.is_enabled and service.is_running
    assert host.file("/etc/systemd/system/cjdns.service").contains("StandardInput=file:")


@REAL
def test_tun_carries_registry_address(host):
    entry = registry()[hostname(host)]
    out = host.check_output("ip -6 -o addr show dev cjdns0")
    assert str(ipaddress.ip_address(entry["ipv6"])) in out


@REAL
def test_nodes_ping_their_peers_over_cjdns(host):
    """Every pair peers across architectures: amd64 with amd64, arm64 and armhf."""
    missing = []
    for other in peers_of(hostname(host)):
        target = registry()[other]["ipv6"]
        for _i in range(45):
            if host.run("ping -6 -c 1 -W 2 %s" % target).rc == 0:
                break
            time.sleep(1)
        else:
            missing.append("%s (%s)" % (other, target))
    assert not missing, "no ping reply over cjdns within 90 s from: %s" % ", ".join(missing)


@REAL
def test_failed_start_leaves_no_core_behind(host):
    """cjdroute exits on a config error at start but its spawned core can linger:
    the unit must stop the whole control group, and retry."""
    if hostname(host) != "node2":
        pytest.skip("run on one node")
    conf = cjdns_conf(host)
    conf["router"]["ipTunnel"]["allowedConnections"] = [{"ip4Address": "10.99.0.2"}]
    with host.sudo():
        host.run("cp -p /etc/cjdns/cjdroute.conf /root/cjdroute.conf.good")
        try:
            host.run("cat > /etc/cjdns/cjdroute.conf <<'JSON'\n%s\nJSON" % json.dumps(conf))
            host.run("systemctl restart cjdns")
            for _i in range(40):
                # Between the failed start and the retry (RestartSec) the unit waits.
                if host.check_output("systemctl show -P SubState cjdns") == "auto-restart":
                    break
                time.sleep(0.25)
            else:
                pytest.fail("cjdns never failed on a config without publicKey")
            assert host.check_output("systemctl show -P Result cjdns") == "exit-code"
            cores = host.run("ps -eo args | grep -c '[c]jdroute core'").stdout.strip()
            assert cores == "0", "a cjdroute core survived the failed start"
        finally:
            host.run("cp -p /root/cjdroute.conf.good /etc/cjdns/cjdroute.conf")
            host.run("systemctl restart cjdns")
    assert host.service("cjdns").is_running
