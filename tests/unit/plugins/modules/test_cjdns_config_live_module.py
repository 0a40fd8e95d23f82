"""The cjdns_config module's apply_live path, run in-process against an admin API server.

The server is the admin API of the test stand-in for cjdroute
(tests/fixtures/cjdroute-standin/cjdroute, the one the Molecule scenarios run without a
real daemon): cookie + sha256 authentication and the IpTunnel bookkeeping functions with
cjdns' argument names.  It only records which keys are allowed with which addresses;
nothing here says anything about tunnels.
"""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import json
import socket
import threading
from pathlib import Path

import pytest
from keyvectors import VECTORS
from test_cjdns_config_module import Node, cjdns_part

STANDIN = Path(__file__).resolve().parents[3] / "fixtures" / "cjdroute-standin" / "cjdroute"
K1, K2, K3 = (v["public_key"] for v in VECTORS[4:7])


def load_standin():
    loader = importlib.machinery.SourceFileLoader("cjdroute_standin", str(STANDIN))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


STANDIN_MODULE = load_standin()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def entry(key, last):
    return {"publicKey": key, "ip4Address": "10.99.0.%d" % last, "ip4Prefix": 0,
            "ip4Alloc": 32, "ip6Address": "2001:db8:99::%x" % last, "ip6Prefix": 0,
            "ip6Alloc": 128}


class Daemon:
    """The stand-in's tunnel list and admin API, started from a written config as the
    stand-in starts (allowedConnections and outgoingConnections made at start)."""

    def __init__(self, conf_path):
        conf = json.loads(Path(conf_path).read_text())
        self.tunnels = STANDIN_MODULE.Tunnels()
        tunnel = conf["router"]["ipTunnel"]
        for item in tunnel["allowedConnections"]:
            args = STANDIN_MODULE.encode_args(
                dict(item, publicKeyOfAuthorizedNode=item["publicKey"]))
            assert self.tunnels.allow(args)["error"] == "none"
        for key in tunnel["outgoingConnections"]:
            self.tunnels.connect_to({"publicKeyOfNodeToConnectTo": key.encode()})
        self.api = STANDIN_MODULE.AdminApi(conf, self.tunnels)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.api.serve()
        except OSError:
            pass  # socket closed: stopped

    def stop(self):
        if self.thread.is_alive():
            # A datagram wakes the server's recvfrom; then it sees that it is stopping.
            self.api.stopping = True
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"stop", self.api.sock.getsockname())
            self.thread.join(5)
        self.api.sock.close()

    def allowed(self):
        """{key: (ip4, ip6)} of the incoming connections, and the outgoing keys."""
        conns = self.tunnels.connections.values()
        return ({c["key"]: (c["ip4Address"], c["ip6Address"]) for c in conns if not c["outgoing"]},
                sorted(c["key"] for c in conns if c["outgoing"]))


@pytest.fixture
def node(tmp_path, capsys):
    node = Node(tmp_path, capsys)
    node.write_key()
    return node


@pytest.fixture
def port():
    return free_port()


def parts(port, allowed, outgoing=(), peer_password=None):
    cjdns = cjdns_part(peer_password) if peer_password else cjdns_part()
    cjdns["config"]["admin"]["bind"] = "127.0.0.1:%d" % port
    return [cjdns, {"name": "gateway", "config": {"router": {"ipTunnel": {
        "allowedConnections": list(allowed), "outgoingConnections": list(outgoing)}}}}]


@pytest.fixture
def running(node, port):
    """A node whose config allows K1 and K2, with the daemon running from it."""
    result, _unused = node.run(parts(port, [entry(K1, 2), entry(K2, 3)]), apply_live=True)
    # Nothing on the node before: no config to compare, a (first) start is needed.
    assert result["restart"] is True and "no readable config" in result["restart_reason"]
    daemon = Daemon(node.conf)
    yield daemon
    daemon.stop()


def test_adding_a_client_is_applied_live(node, port, running):
    new = [entry(K1, 2), entry(K2, 3), entry(K3, 4)]
    result, _unused = node.run(parts(port, new), apply_live=True)
    assert result["changed"] is True and result["restart"] is False
    assert result["live"] == {"added": [K3], "removed": [], "changed": [],
                              "removed_connections": 0, "allowed_connections": 1}
    assert "applied live" in result["msg"]
    assert running.allowed()[0] == {e["publicKey"]: (e["ip4Address"], e["ip6Address"]) for e in new}
    # The file holds the new config too: a later restart starts from the same state.
    assert json.loads(node.conf.read_text())["router"]["ipTunnel"]["allowedConnections"] == new
    # Idempotent: the second run changes nothing and calls nothing that changes anything.
    # (Connection numbers only grow: a remove and re-add would move `next` on.)
    before = (running.tunnels.next, copy.deepcopy(running.tunnels.connections))
    result, _unused = node.run(parts(port, new), apply_live=True)
    assert result["changed"] is False and result["restart"] is False and "live" not in result
    assert (running.tunnels.next, running.tunnels.connections) == before


def test_removed_and_changed_clients_are_applied_live(node, port, running):
    result, _unused = node.run(parts(port, [entry(K2, 9)]), apply_live=True)
    assert result["restart"] is False
    assert result["live"] == {"added": [], "removed": [K1], "changed": [K2],
                              "removed_connections": 2, "allowed_connections": 1}
    assert running.allowed()[0] == {K2: ("10.99.0.9", "2001:db8:99::9")}


def test_check_mode_reports_and_changes_nothing(node, port, running):
    before_file, before_live = node.conf.read_bytes(), dict(running.tunnels.connections)
    result, _unused = node.run(parts(port, [entry(K1, 2), entry(K3, 4)]), check=True,
                               apply_live=True)
    assert result["changed"] is True and result["restart"] is False
    assert result["live"]["added"] == [K3] and result["live"]["removed"] == [K2]
    assert "would apply live" in result["msg"]
    assert node.conf.read_bytes() == before_file
    assert running.tunnels.connections == before_live


def test_any_other_change_asks_for_a_restart(node, port, running):
    before_live = dict(running.tunnels.connections)
    result, _unused = node.run(parts(port, [entry(K1, 2), entry(K2, 3), entry(K3, 4)],
                               peer_password="another-peer-password"), apply_live=True)
    assert result["changed"] is True and result["restart"] is True
    assert result["restart_reason"] == "more than router.ipTunnel.allowedConnections changed"
    assert "live" not in result
    assert running.tunnels.connections == before_live
    # The file is written all the same.
    assert len(json.loads(node.conf.read_text())["router"]["ipTunnel"]["allowedConnections"]) == 3


def test_outgoing_change_asks_for_a_restart(node, port, running):
    result, _unused = node.run(parts(port, [entry(K1, 2), entry(K2, 3)], outgoing=[K3]),
                               apply_live=True)
    assert result["restart"] is True


def test_no_running_daemon_asks_for_a_restart(node, port, running):
    running.stop()
    result, _unused = node.run(parts(port, [entry(K1, 2)]), apply_live=True, admin_timeout=1)
    assert result["changed"] is True and result["restart"] is True
    assert result["restart_reason"].startswith("cjdns admin API: ")
    assert len(json.loads(node.conf.read_text())["router"]["ipTunnel"]["allowedConnections"]) == 1


def test_a_failing_admin_call_asks_for_a_restart(node, port, running):
    # The daemon refuses the call (here: a wrong admin password on its side).
    running.api.password = b"not-the-password"
    result, _unused = node.run(parts(port, [entry(K1, 2)]), apply_live=True, admin_timeout=1)
    assert result["restart"] is True and "Auth failed" in result["restart_reason"]


def test_without_apply_live_every_change_asks_for_a_restart(node, port, running):
    before_live = dict(running.tunnels.connections)
    result, _unused = node.run(parts(port, [entry(K1, 2)]))
    assert result["changed"] is True and result["restart"] is True
    assert result["restart_reason"] == "apply_live is off"
    assert running.tunnels.connections == before_live


def test_standin_keeps_outgoing_connections(node, port, tmp_path):
    """The stand-in, like cjdroute, lists this node's own outgoing tunnel as a connection;
    the live change leaves it alone."""
    node.run(parts(port, [entry(K1, 2)], outgoing=[K3]), apply_live=True)
    daemon = Daemon(node.conf)
    try:
        result, _unused = node.run(parts(port, [entry(K2, 3)], outgoing=[K3]), apply_live=True)
        assert result["restart"] is False
        assert daemon.allowed() == ({K2: ("10.99.0.3", "2001:db8:99::3")}, [K3])
    finally:
        daemon.stop()
