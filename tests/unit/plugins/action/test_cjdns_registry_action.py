"""End-to-end tests of meshfleet.mesh.cjdns_registry (action) and its lookup.

The real ``ansible-playbook`` runs against two inventory hosts on the local connection;
results are read from the ``ansible.posix.json`` stdout callback (as in
test_cjdns_install_local.py).  Keys are real vectors from tests/data/key-vectors.tsv.
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml
from keyvectors import VECTORS, entry
from playbook_run import COLLECTIONS, run_playbook

A, B, C = VECTORS[0], VECTORS[1], VECTORS[2]

PLAYBOOK = """\
- name: Record and read the key registry
  hosts: mesh
  gather_facts: false
  tasks:
    - name: Record the public key in the key registry
      meshfleet.mesh.cjdns_registry:
        path: "{{ registry_path }}"
        public_key: "{{ node_key }}"
        accept_change: "{{ accept | default(false) }}"
    - name: Read the registry back
      ansible.builtin.set_fact:
        seen: "{{ lookup('meshfleet.mesh.cjdns_registry', registry_path) }}"
"""


class Fleet:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.registry = tmp_path / "inventory" / "cjdns_registry.yml"
        (tmp_path / "site.yml").write_text(PLAYBOOK)
        (tmp_path / "ansible.cfg").write_text("[defaults]\n")

    def run(self, keys, check=False, extra=None):
        inventory = {"mesh": {
            "hosts": {host: {"node_key": key} for host, key in keys.items()},
            "vars": {"ansible_connection": "local",
                     "ansible_python_interpreter": sys.executable,
                     "registry_path": str(self.registry)}}}
        (self.tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
        args = ["-i", str(self.tmp / "hosts.yml"), str(self.tmp / "site.yml")]
        if check:
            args.append("--check")
        for key, value in (extra or {}).items():
            args += ["-e", "%s=%s" % (key, value)]
        proc, report = run_playbook(self.tmp, args, ANSIBLE_DEPRECATION_WARNINGS="0")
        tasks = report["plays"][0]["tasks"]
        return proc.returncode, [task["hosts"] for task in tasks]

    def snapshot(self):
        st = os.stat(self.registry)
        return st.st_ino, st.st_mtime_ns, self.registry.read_bytes()


@pytest.fixture
def fleet(tmp_path):
    assert (COLLECTIONS / "ansible_collections" / "meshfleet" / "mesh").exists()
    return Fleet(tmp_path)


def test_records_then_no_change_then_check_mode(fleet):
    keys = {"node1": A["public_key"], "node2": B["public_key"]}
    rc, (recorded, seen) = fleet.run(keys)
    assert rc == 0
    for host, vector in (("node1", A), ("node2", B)):
        assert recorded[host]["changed"] is True
        assert recorded[host]["entry"] == entry(vector)
        assert recorded[host]["path"] == str(fleet.registry)
        # The lookup returns the whole mapping, for every host.
        assert seen[host]["ansible_facts"]["seen"] == {"node1": entry(A), "node2": entry(B)}
    text = fleet.registry.read_text()
    assert yaml.safe_load(text) == {"schema_version": 1,
                                    "nodes": {"node1": entry(A), "node2": entry(B)}}
    before = fleet.snapshot()

    rc, (recorded, _unused) = fleet.run(keys)
    assert rc == 0
    assert [recorded[h]["changed"] for h in ("node1", "node2")] == [False, False]
    assert fleet.snapshot() == before

    # Check mode: a new host is reported as a change, the file stays as it is.
    rc, (recorded, seen) = fleet.run(dict(keys, node3=C["public_key"]), check=True)
    assert rc == 0
    assert recorded["node3"]["changed"] is True
    assert recorded["node3"]["entry"] == entry(C)
    assert recorded["node1"]["changed"] is False
    assert "node3" not in seen["node3"]["ansible_facts"]["seen"]
    assert fleet.snapshot() == before

    # Check mode on a node that has no key yet (empty public_key): nothing to record.
    rc, (recorded, _unused) = fleet.run(dict(keys, node3=""), check=True)
    assert rc == 0 and recorded["node3"]["changed"] is True
    assert fleet.snapshot() == before


def test_changed_key_fails_until_accepted(fleet):
    fleet.run({"node1": A["public_key"], "node2": B["public_key"]})
    before = fleet.snapshot()
    changed_keys = {"node1": C["public_key"], "node2": B["public_key"]}

    # "false" from -e is a string: it must not accept the change.
    for extra in (None, {"accept": "false"}):
        rc, tasks = fleet.run(changed_keys, extra=extra)
        assert rc != 0, extra
        failed = tasks[0]["node1"]
        assert failed["failed"] is True
        assert failed["msg"].startswith(
            "host node1 presents cjdns key %s but the key registry %s records %s."
            % (C["public_key"], fleet.registry, A["public_key"]))
        assert "cjdns_accept_key_change=true" in failed["msg"]
        assert tasks[0]["node2"]["changed"] is False
        assert fleet.snapshot() == before

    # Check mode fails the same way and writes nothing.
    rc, tasks = fleet.run(changed_keys, check=True)
    assert rc != 0 and tasks[0]["node1"]["failed"] is True
    assert fleet.snapshot() == before

    rc, tasks = fleet.run(changed_keys, extra={"accept": "maybe"})
    assert rc != 0
    assert tasks[0]["node1"]["msg"] == "accept_change: 'maybe' is not a boolean"
    assert fleet.snapshot() == before

    rc, (recorded, seen) = fleet.run(changed_keys, extra={"accept": "true"})
    assert rc == 0
    assert recorded["node1"]["changed"] is True and recorded["node2"]["changed"] is False
    assert seen["node2"]["ansible_facts"]["seen"] == {"node1": entry(C), "node2": entry(B)}


def test_bad_key_and_bad_registry_fail_with_a_message(fleet):
    rc, tasks = fleet.run({"node1": A["public_key"][:-2]})
    assert rc != 0
    assert "does not end in '.k'" in tasks[0]["node1"]["msg"]
    assert not fleet.registry.exists()

    fleet.registry.parent.mkdir()
    fleet.registry.write_text("nodes: [broken\n")
    rc, tasks = fleet.run({"node1": A["public_key"]})
    assert rc != 0
    assert tasks[0]["node1"]["msg"].startswith("key registry %s is not valid YAML"
                                               % fleet.registry)
    assert fleet.registry.read_text() == "nodes: [broken\n"
