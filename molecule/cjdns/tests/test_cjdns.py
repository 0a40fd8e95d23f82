"""What an operator relies on after the cjdns role ran (testinfra, both nodes)."""

import ipaddress
import json
import time

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    ipv6_from_public_key,
    public_key_from_private,
)
from meshtest import cjdns_conf, hostname, real_daemon, registry

REAL = pytest.mark.skipif(not real_daemon(), reason="needs the real daemon (CJDNS_ARTIFACT)")


def test_binary_installed_and_runs(host):
    binary = host.file("/usr/local/sbin/cjdroute")
    assert binary.mode == 0o755 and binary.user == "root"
    out = host.run("/usr/local/sbin/cjdroute --version")
    assert out.rc == 0 and out.stdout.strip()


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


def test_registry_lists_both_nodes():
    nodes = registry()
    assert sorted(nodes) == ["node1", "node2"]
    assert nodes["node1"]["public_key"] != nodes["node2"]["public_key"]


def test_static_peering_derived_on_both_ends(host):
    """node1 names node2; node1 connects, node2 authorizes, with one derived password."""
    conf = cjdns_conf(host)
    udp = conf["interfaces"]["UDPInterface"][0]
    users = {a["user"]: a["password"] for a in conf["authorizedPasswords"]}
    me = hostname(host)
    other = "node2" if me == "node1" else "node1"
    assert set(users) == {other}
    if me == "node1":
        (endpoint, creds), = udp["connectTo"].items()
        assert creds["publicKey"] == registry()["node2"]["public_key"]
        assert creds["password"] == users["node2"]
        assert creds["login"] == "node1"
        ip, port = endpoint.rsplit(":", 1)
        assert ipaddress.ip_address(ip) and port == "41300"
    else:
        assert udp["connectTo"] == {}


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
def test_nodes_ping_each_other_over_cjdns(host):
    other = "node2" if hostname(host) == "node1" else "node1"
    target = registry()[other]["ipv6"]
    for _ in range(30):
        if host.run("ping -6 -c 1 -W 2 %s" % target).rc == 0:
            return
        time.sleep(1)
    pytest.fail("no ping reply from %s (%s) over cjdns within 60 s" % (other, target))


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
            for _ in range(40):
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
