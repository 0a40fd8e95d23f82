"""Tests for the cjdns_config module, run in-process (main()) on a tmp_path."""

from __future__ import annotations

import copy
import json
import os
import re
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.meshfleet.mesh.plugins.modules import cjdns_config
from keyvectors import VECTORS

OWN, PEER, CLIENT, GATEWAY = VECTORS[0], VECTORS[1], VECTORS[2], VECTORS[3]
NON_FC_PRIVATE = "fefe3f428cc83bea845c3dc07c94e2b24f44ebc2c380b566f199402e81795f78"
PEER_PASSWORD = "peer-password-node1-node2-xyz"
IS_ROOT = os.geteuid() == 0


def cjdns_part(peer_password=PEER_PASSWORD):
    """The part the cjdns role contributes (roles/cjdns/tasks/configure.yml)."""
    return {"name": "cjdns", "config": {
        "admin": {"bind": "127.0.0.1:11234"},
        "authorizedPasswords": [{"user": "node2", "password": peer_password}],
        "interfaces": {"UDPInterface": [{
            "bind": "0.0.0.0:41300", "beacon": 0,
            "connectTo": {"192.0.2.2:41300": {"publicKey": PEER["public_key"],
                                              "password": peer_password,
                                              "login": "node1", "peerName": "node2"}}}]},
        "router": {"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
                   "ipTunnel": {"allowedConnections": [], "outgoingConnections": []}},
        "security": [{"setuser": "nobody", "keepNetAdmin": 1}, {"seccomp": 1}],
        "logging": {},
        "noBackground": 1,
        "pipe": "cjdroute-cjdns0.sock",
    }}


def gateway_part():
    return {"name": "gateway", "config": {"router": {"ipTunnel": {"allowedConnections": [
        {"publicKey": CLIENT["public_key"], "ip4Address": "10.99.0.2", "ip4Prefix": 0}]}}}}


def client_part():
    return {"name": "client", "config": {"router": {"ipTunnel": {
        "outgoingConnections": [GATEWAY["public_key"]]}}}}


class Node:
    """A node's /etc/cjdns in tmp_path, with the key file written as cjdns_keypair does."""

    def __init__(self, tmp_path, capsys):
        self.dir = tmp_path / "etc" / "cjdns"
        self.conf = self.dir / "cjdroute.conf"
        self.key = tmp_path / "keys" / "private.key"
        self.capsys = capsys

    def write_key(self, private=OWN["private_key"]):
        self.key.parent.mkdir(parents=True, exist_ok=True)
        self.key.write_text(private + "\n")
        self.key.chmod(0o600)

    def run(self, parts, check=False, diff=False, **extra):
        args = {"path": str(self.conf), "private_key_path": str(self.key), "parts": parts,
                **extra}
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args), pytest.raises(SystemExit) as info:
            cjdns_config.main()
        out = self.capsys.readouterr().out
        result = json.loads(out)
        assert bool(info.value.code) == bool(result.get("failed"))
        return result, out

    def stat(self):
        st = os.stat(self.conf)
        return st.st_ino, st.st_mtime_ns, stat.S_IMODE(st.st_mode), self.conf.read_bytes()

    def files(self):
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*")) \
            if self.dir.exists() else None


@pytest.fixture
def node(tmp_path, capsys):
    node = Node(tmp_path, capsys)
    node.write_key()
    return node


def strict_json(text):
    def refuse(constant):
        raise AssertionError("not strict JSON: %s" % constant)
    return json.loads(text, parse_constant=refuse)


def secrets_of(conf):
    found = [conf["privateKey"], conf["admin"]["password"]]
    found += [e["password"] for e in conf.get("authorizedPasswords", [])]
    for iface in conf.get("interfaces", {}).get("UDPInterface", []):
        found += [c["password"] for c in (iface.get("connectTo") or {}).values()]
    return found


def assert_secret_free(out, secrets):
    for secret in secrets:
        assert secret not in out


def test_first_write(node):
    result, out = node.run([cjdns_part(), gateway_part(), client_part()])
    assert result["changed"] is True and not result.get("failed")
    assert result["path"] == str(node.conf)
    assert result["public_key"] == OWN["public_key"]
    assert result["ipv6"] == OWN["ipv6"]
    assert result["summary"] == {"udp_peers": 1, "eth_interfaces": 0, "authorized_passwords": 1,
                                 "allowed_connections": 1, "outgoing_connections": 1}
    text = node.conf.read_text()
    conf = strict_json(text)
    assert text.endswith("}\n")
    assert text == json.dumps(conf, indent=2, sort_keys=True) + "\n"
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.dir.stat().st_mode) == 0o700
    if IS_ROOT:
        assert (node.conf.stat().st_uid, node.conf.stat().st_gid) == (0, 0)
    # Derived from the key file, not from anything passed in.
    assert conf["privateKey"] == OWN["private_key"]
    assert conf["publicKey"] == OWN["public_key"]
    assert conf["ipv6"] == OWN["ipv6"]
    assert conf["version"] == 2
    assert re.fullmatch(r"[0-9a-f]{32}", conf["admin"]["password"])
    assert conf["admin"]["bind"] == "127.0.0.1:11234"
    assert conf["router"]["ipTunnel"]["allowedConnections"][0]["publicKey"] == \
        CLIENT["public_key"]
    assert conf["router"]["ipTunnel"]["outgoingConnections"] == [GATEWAY["public_key"]]
    assert conf["interfaces"]["UDPInterface"][0]["connectTo"]["192.0.2.2:41300"]["password"] \
        == PEER_PASSWORD
    assert "diff" not in result
    assert_secret_free(out, secrets_of(conf))
    assert node.files() == ["cjdroute.conf"]  # no temp file left


def test_identical_parts_change_nothing(node):
    parts = [cjdns_part(), gateway_part()]
    node.run(parts)
    before = node.stat()
    password = json.loads(node.conf.read_text())["admin"]["password"]
    for diff in (False, True):
        result, _unused = node.run(copy.deepcopy(parts), diff=diff)
        assert result["changed"] is False
        assert "diff" not in result
        assert node.stat() == before  # same inode, mtime, mode and bytes
    assert json.loads(node.conf.read_text())["admin"]["password"] == password


def test_admin_password_is_generated_once_and_kept(node, tmp_path, capsys):
    node.run([cjdns_part()])
    first = json.loads(node.conf.read_text())["admin"]["password"]
    result, out = node.run([cjdns_part(), gateway_part()])
    assert result["changed"] is True
    conf = json.loads(node.conf.read_text())
    assert conf["admin"]["password"] == first
    assert conf["router"]["ipTunnel"]["allowedConnections"][0]["ip4Address"] == "10.99.0.2"
    assert first not in out
    # Another node gets another password.
    other = Node(tmp_path / "other", capsys)
    other.write_key(VECTORS[5]["private_key"])
    other.run([cjdns_part()])
    assert json.loads(other.conf.read_text())["admin"]["password"] != first


def test_admin_password_none_in_the_live_file_is_replaced(node):
    node.run([cjdns_part()])
    conf = json.loads(node.conf.read_text())
    conf["admin"]["password"] = "NONE"
    node.conf.write_text(json.dumps(conf))
    result, _unused = node.run([cjdns_part()])
    assert result["changed"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", json.loads(node.conf.read_text())["admin"]["password"])


def test_admin_password_from_a_part_is_used(node):
    part = cjdns_part()
    part["config"]["admin"]["password"] = "operator-chosen"
    node.run([part])
    assert json.loads(node.conf.read_text())["admin"]["password"] == "operator-chosen"
    part["config"]["admin"]["password"] = "NONE"
    result, _unused = node.run([part])
    assert result["failed"] is True
    assert result["msg"] == ("cjdroute.conf would be invalid, nothing was changed: "
                             "admin.password: a real password is required")


def test_diff_is_redacted(node):
    result, out = node.run([cjdns_part()], diff=True)
    diff = result["diff"]
    assert diff["before"] == ""
    assert diff["before_header"] == diff["after_header"] == str(node.conf)
    after = json.loads(diff["after"])
    assert after["privateKey"] == "<hidden>"
    assert after["admin"]["password"] == "<hidden>"
    assert after["authorizedPasswords"] == [{"user": "node2", "password": "<hidden>"}]
    assert after["publicKey"] == OWN["public_key"]
    conf = json.loads(node.conf.read_text())
    assert_secret_free(out, secrets_of(conf))

    result, out = node.run([cjdns_part("a-new-peer-password"), client_part()], diff=True)
    before, after = json.loads(result["diff"]["before"]), json.loads(result["diff"]["after"])
    assert before["router"]["ipTunnel"]["outgoingConnections"] == []
    assert after["router"]["ipTunnel"]["outgoingConnections"] == [GATEWAY["public_key"]]
    assert before["admin"]["password"] == after["admin"]["password"] == "<hidden>"
    assert_secret_free(out, secrets_of(conf) + ["a-new-peer-password"])


def test_check_mode_writes_nothing(node):
    result, out = node.run([cjdns_part()], check=True, diff=True)
    assert result["changed"] is True and not result.get("failed")
    assert result["public_key"] == OWN["public_key"]
    assert json.loads(result["diff"]["after"])["privateKey"] == "<hidden>"
    assert node.files() is None  # not even the directory
    assert OWN["private_key"] not in out

    node.run([cjdns_part()])
    before = node.stat()
    result, _unused = node.run([cjdns_part(), gateway_part()], check=True, diff=True)
    assert result["changed"] is True
    assert "allowedConnections" in result["diff"]["after"]
    assert node.stat() == before
    result, _unused = node.run([cjdns_part()], check=True)
    assert result["changed"] is False
    assert node.files() == ["cjdroute.conf"]


@pytest.mark.parametrize("parts, message", [
    ([cjdns_part(), {"name": "extra", "config": {"admin": {"bind": "127.0.0.1:9999"}}}],
     "admin.bind: part 'extra' sets '127.0.0.1:9999' but part 'cjdns' already set "
     "'127.0.0.1:11234'"),
    ([cjdns_part(), {"name": "extra", "config": {"admin": {"bind": "0.0.0.0:11234"}}}],
     "admin.bind: part 'extra' sets '0.0.0.0:11234'"),
    ([{"name": "cjdns", "config": {"admin": {"bind": "0.0.0.0:11234"}}}],
     "admin.bind: 0.0.0.0:11234 is not a loopback address"),
    ([cjdns_part(), {"name": "gw", "config": {"router": {"ipTunnel": {"allowedConnections": [
        {"publicKey": OWN["public_key"][:-3] + ".k", "ip4Address": "10.99.0.2"}]}}}}],
     "router.ipTunnel.allowedConnections[0].publicKey: public key"),
    ([cjdns_part(), {"name": "client", "config": {"router": {"ipTunnel": {
        "outgoingConnections": [OWN["public_key"]]}}}}],
     "router.ipTunnel.outgoingConnections[0]: a node cannot use itself as its gateway"),
    ([cjdns_part(), {"name": "bridge", "config": {"interfaces": {"UDPInterface": [{
        "bind": "0.0.0.0:41300", "connectTo": {"192.0.2.2:41300": {
            "publicKey": PEER["public_key"], "password": "different"}}}]}}}],
     "interfaces.UDPInterface[0.0.0.0:41300].connectTo[192.0.2.2:41300]: parts 'cjdns' and "
     "'bridge' disagree"),
    ([cjdns_part(), cjdns_part()], "part 'cjdns' is contributed twice"),
])
def test_invalid_parts_fail_and_change_nothing(node, parts, message):
    node.run([cjdns_part()])
    before = node.stat()
    secrets = secrets_of(json.loads(node.conf.read_text())) + ["different"]
    for check in (False, True):
        result, out = node.run(parts, check=check, diff=True)
        assert result["failed"] is True
        assert result["msg"].startswith("cjdroute.conf would be invalid, nothing was changed: ")
        assert message in result["msg"]
        assert node.stat() == before
        assert_secret_free(out, secrets)
    assert node.files() == ["cjdroute.conf"]


def test_invalid_parts_on_a_fresh_node_write_nothing(node):
    result, _unused = node.run([{"name": "cjdns", "config": {"admin": {"bind": "[::]:11234"}}}])
    assert result["failed"] is True
    assert "nothing was changed" in result["msg"]
    assert node.files() is None


def test_missing_key_in_check_mode_is_a_pending_change(tmp_path, capsys):
    node = Node(tmp_path, capsys)  # no key file: cjdns_keypair makes it on a real run
    result, _unused = node.run([cjdns_part()], check=True)
    assert result["changed"] is True and not result.get("failed")
    assert (result["public_key"], result["ipv6"]) == ("", "")
    assert "no key pair yet" in result["msg"]
    assert node.files() is None


def test_missing_key_in_normal_mode_fails(tmp_path, capsys):
    node = Node(tmp_path, capsys)
    result, _unused = node.run([cjdns_part()])
    assert result["failed"] is True
    assert result["msg"] == ("cannot read the private key %s: No such file or directory"
                             % node.key)
    assert node.files() is None


def test_unusable_key_fails_without_showing_it(node):
    node.write_key(NON_FC_PRIVATE)
    for check in (False, True):
        result, out = node.run([cjdns_part()], check=check)
        assert result["failed"] is True
        assert result["msg"].startswith("%s: private key" % node.key)
        assert "does not start with fc" in result["msg"]
        assert NON_FC_PRIVATE not in out and NON_FC_PRIVATE[:16] not in out
    assert node.files() is None


def test_key_file_change_rewrites_the_derived_fields(node):
    node.run([cjdns_part()])
    node.write_key(VECTORS[7]["private_key"])
    result, out = node.run([cjdns_part()], diff=True)
    assert result["changed"] is True
    assert result["public_key"] == VECTORS[7]["public_key"]
    conf = json.loads(node.conf.read_text())
    assert (conf["privateKey"], conf["publicKey"], conf["ipv6"]) == (
        VECTORS[7]["private_key"], VECTORS[7]["public_key"], VECTORS[7]["ipv6"])
    assert OWN["private_key"] not in out and VECTORS[7]["private_key"] not in out


def test_unreadable_live_file_is_replaced(node):
    node.dir.mkdir(parents=True)
    node.conf.write_text("// commented cjdns JSON, as --genconf writes it\n{}")
    node.conf.chmod(0o600)
    result, _unused = node.run([cjdns_part()], diff=True)
    assert result["changed"] is True and result["diff"]["before"] == ""
    assert strict_json(node.conf.read_text())["publicKey"] == OWN["public_key"]


def test_wrong_mode_is_fixed_even_when_content_is_unchanged(node):
    node.run([cjdns_part()])
    node.conf.chmod(0o644)
    content = node.conf.read_bytes()
    result, _unused = node.run([cjdns_part()], check=True)
    assert result["changed"] is True
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o644
    result, _unused = node.run([cjdns_part()])
    assert result["changed"] is True
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o600
    assert node.conf.read_bytes() == content
    result, _unused = node.run([cjdns_part()])
    assert result["changed"] is False


@pytest.mark.parametrize("existing_mode", [None, 0o644])
def test_private_key_is_never_readable_by_others(node, monkeypatch, existing_mode):
    """The file is 0600 from the moment it appears under its name, not only after a
    later chmod (atomic_move copies the old file's mode or applies the umask)."""
    if existing_mode is not None:
        node.dir.mkdir(parents=True)
        node.conf.write_text("{}")
        node.conf.chmod(existing_mode)
    seen = []
    original = AnsibleModule.atomic_move

    def watching(self, src, dest, *args, **kwargs):
        original(self, src, dest, *args, **kwargs)
        seen.append(stat.S_IMODE(os.stat(dest).st_mode))

    monkeypatch.setattr(AnsibleModule, "atomic_move", watching)
    old_umask = os.umask(0o022)
    try:
        result, _unused = node.run([cjdns_part()])
    finally:
        os.umask(old_umask)
    assert result["changed"] is True
    assert seen == [0o600]
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o600


def test_only_secrets_are_masked_in_the_result(node):
    """parts is no_log (peer passwords), but its other values (0, 1, host names, the
    bind address) must not be masked out of the public key, the address or messages."""
    result, out = node.run([cjdns_part()])
    assert result["public_key"] == OWN["public_key"]  # holds "0" and "1"
    assert result["ipv6"] == OWN["ipv6"]
    assert result["summary"]["udp_peers"] == 1
    shown = result["invocation"]["module_args"]["parts"][0]["config"]
    peer = shown["interfaces"]["UDPInterface"][0]["connectTo"]["192.0.2.2:41300"]
    assert peer["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert shown["authorizedPasswords"][0]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert (peer["publicKey"], peer["peerName"]) == (PEER["public_key"], "node2")
    assert shown["interfaces"]["UDPInterface"][0]["beacon"] == 0
    assert PEER_PASSWORD not in out

    result, _unused = node.run([cjdns_part(), {"name": "extra", "config": {"noBackground": 0}}])
    assert result["msg"] == ("cjdroute.conf would be invalid, nothing was changed: "
                             "noBackground: part 'extra' sets 0 but part 'cjdns' already set 1")
