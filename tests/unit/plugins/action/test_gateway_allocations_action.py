"""End-to-end tests of meshfleet.mesh.gateway_allocations (controller-side action).

The real ``ansible-playbook`` runs the action for one gateway on the local connection;
results come from the ``ansible.posix.json`` stdout callback.  Keys are real vectors
from tests/data/key-vectors.tsv.
"""

from __future__ import annotations

import sys

import yaml
from keyvectors import VECTORS
from playbook_run import run_playbook

PLAYBOOK = """\
- name: Plan a gateway
  hosts: gw1
  gather_facts: false
  tasks:
    - name: Allocate
      meshfleet.mesh.gateway_allocations:
        path: "{{ alloc_path }}"
        registry: "{{ registry_path }}"
        clients: "{{ clients }}"
        skip_unregistered: "{{ skip | default(false) }}"
        pools:
          ipv4: {pool: "{{ pool }}", address: "", pinned: {}, reserved: []}
          ipv6: {pool: "{{ pool6 | default('') }}", address: "", pinned: {}, reserved: []}
        gateways: {gw1: {gateway_pool: "{{ pool }}"}}
        bridge_link_prefix: "{{ link_prefix | default('') }}"
    - name: Read the file back through the lookup
      ansible.builtin.set_fact:
        seen: "{{ lookup('meshfleet.mesh.gateway_allocations', alloc_path) }}"
"""


def run(tmp_path, clients, registered, check=False, task=0, **extra):
    registry = {"nodes": {c: {"public_key": VECTORS[i]["public_key"],
                              "ipv6": VECTORS[i]["ipv6"]}
                          for i, c in enumerate(registered)}}
    (tmp_path / "cjdns_registry.yml").write_text(yaml.safe_dump(registry))
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "alloc_path": str(tmp_path / "gateway_allocations.yml"),
            "registry_path": str(tmp_path / "cjdns_registry.yml"),
            "clients": clients, "pool": "10.99.0.0/24", **extra}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"gw1": host}}}))
    args = ["-i", str(tmp_path / "hosts.yml"), str(tmp_path / "site.yml")]
    _unused, report = run_playbook(tmp_path, args + (["--check"] if check else []))
    return report["plays"][0]["tasks"][task]["hosts"]["gw1"]


def test_allocates_writes_and_returns_allowed_connections(tmp_path):
    result = run(tmp_path, ["c1", "c2"], ["c1", "c2"])
    assert result["changed"] and not result.get("failed")
    clients = result["allocation"]["ipv4"]["clients"]
    assert [e["ip4Address"] for e in result["allowed_connections"]] == [clients["c1"],
                                                                        clients["c2"]]
    assert result["allowed_connections"][0]["publicKey"] == VECTORS[0]["public_key"]
    stored = yaml.safe_load((tmp_path / "gateway_allocations.yml").read_text())
    assert stored["gateways"]["gw1"]["ipv4"]["clients"] == clients
    again = run(tmp_path, ["c1", "c2"], ["c1", "c2"])
    assert not again["changed"]


def test_lookup_reads_what_the_action_wrote(tmp_path):
    read = run(tmp_path, ["c1", "c2"], ["c1", "c2"], task=1)
    stored = yaml.safe_load((tmp_path / "gateway_allocations.yml").read_text())
    assert stored["schema_version"] == 1
    assert read["ansible_facts"]["seen"] == stored["gateways"]
    assert set(read["ansible_facts"]["seen"]["gw1"]["ipv4"]["clients"]) == {"c1", "c2"}


def test_unregistered_client_fails_before_writing(tmp_path):
    result = run(tmp_path, ["c1", "c2"], ["c1"])
    assert result["failed"] and "converge c2 first" in result["msg"]
    assert not (tmp_path / "gateway_allocations.yml").exists()


def test_skip_unregistered_warns_and_keeps_the_address(tmp_path):
    result = run(tmp_path, ["c1", "c2"], ["c1"], skip=True)
    assert not result.get("failed") and result["unregistered"] == ["c2"]
    assert [e["publicKey"] for e in result["allowed_connections"]] == [VECTORS[0]["public_key"]]
    assert "c2" in result["allocation"]["ipv4"]["clients"]
    assert any("c2" in w for w in result.get("warnings", []))


def test_check_mode_on_a_fresh_fleet_writes_nothing(tmp_path):
    result = run(tmp_path, ["c1"], [], check=True)
    assert result["changed"] and not result.get("failed")
    assert result["allowed_connections"] == []
    assert any("check mode" in w for w in result.get("warnings", []))
    assert not (tmp_path / "gateway_allocations.yml").exists()


def test_pool_in_the_bridge_link_prefix_is_refused(tmp_path):
    result = run(tmp_path, ["c1"], ["c1"], link_prefix="fd5e:1a2b:3c4d::/48",
                 pool6="fd5e:1a2b:3c4d:99::/64")
    assert result["failed"]
    assert "gateway_pool6 of gw1 (fd5e:1a2b:3c4d:99::/64) overlaps fd5e:1a2b:3c4d::/48 (the " \
        "bridge link prefix)" in result["msg"]
    assert not (tmp_path / "gateway_allocations.yml").exists()


FROM_INVENTORY = """\
- name: Plan a gateway from the inventory
  hosts: gw1
  gather_facts: false
  tasks:
    - name: Allocate
      meshfleet.mesh.gateway_allocations:
        path: "{{ alloc_path }}"
        registry: "{{ registry_path }}"
        pools:
          ipv4: {pool: "{{ gateway_pool }}", address: "", pinned: {}, reserved: []}
        facts:
          interfaces: [lo, eth0, cjdns0]
          eth0: {ipv4: {address: 192.0.2.2, netmask: 255.255.255.0}}
        tun: cjdns0
        uplink: eth0
        mss_clamp: "{{ clamp }}"
"""


def run_from_inventory(tmp_path, gw1, gw2, clamp=True):
    registry = {"nodes": {c: {"public_key": VECTORS[i]["public_key"],
                              "ipv6": VECTORS[i]["ipv6"]} for i, c in enumerate(["c1", "c2"])}}
    (tmp_path / "cjdns_registry.yml").write_text(yaml.safe_dump(registry))
    (tmp_path / "site.yml").write_text(FROM_INVENTORY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    inventory = {"all": {"children": {
        "gateways": {"hosts": {
            "gw1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "alloc_path": str(tmp_path / "gateway_allocations.yml"),
                    "registry_path": str(tmp_path / "cjdns_registry.yml"),
                    "gateway_pool": gw1, "clamp": clamp},
            "gw2": {"gateway_pool": gw2}}},
        "clients": {"hosts": {"c1": {"client_gateways": "gw1, gw2"},
                              "c2": {"client_gateways": ["gw2"]}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    _unused, report = run_playbook(tmp_path, ["-i", str(tmp_path / "hosts.yml"),
                                              str(tmp_path / "site.yml")])
    return report["plays"][0]["tasks"][0]["hosts"]["gw1"]


def test_clients_pools_and_networks_from_the_inventory_and_the_nft_part(tmp_path):
    result = run_from_inventory(tmp_path, "10.99.0.0/24", "10.98.0.0/24")
    assert not result.get("failed"), result.get("msg")
    assert list(result["allocation"]["ipv4"]["clients"]) == ["c1"]  # c2 names gw2 only
    assert result["nft_part"]["postrouting"] == [
        'oifname "eth0" ip saddr 10.99.0.0/24 masquerade']
    assert len(result["nft_part"]["forward"]) == 2
    assert len(result["nft_part"]["forward_mangle"]) == 2
    no_clamp = run_from_inventory(tmp_path, "10.99.0.0/24", "10.98.0.0/24", clamp=False)
    assert no_clamp["nft_part"]["forward_mangle"] == []


def test_pools_from_the_inventory_and_facts_are_checked(tmp_path):
    result = run_from_inventory(tmp_path, "10.99.0.0/24", "10.99.0.0/23")
    assert result["failed"] and "overlaps gateway_pool of gateway gw2" in result["msg"]
    result = run_from_inventory(tmp_path, "192.0.2.0/25", "10.98.0.0/24")
    assert result["failed"] and "the network of uplink interface eth0" in result["msg"]
