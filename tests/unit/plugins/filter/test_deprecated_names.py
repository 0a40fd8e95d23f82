"""The old names work until 0.2.0, each with one Ansible deprecation warning per run, in a
real ansible-playbook run: the role defaults that read the old variables, the site.yml
task that names the hosts of the old group, the old test names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.deprecated_name import deprecated_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "action"))
from playbook_run import ANSIBLE_PLAYBOOK, ROOT, playbook_env, run_playbook  # noqa: E402

SITE = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())


def test_filter_refuses_a_name_that_was_not_renamed():
    with pytest.raises(
        AnsibleFilterError, match="'mesh_point_mac' is not a name meshfleet.mesh renamed"
    ):
        deprecated_name("x", "mesh_point_mac")


def test_site_accepts_the_old_group_and_warns_in_its_first_play():
    plays = {play["name"]: play for play in SITE}
    assert plays["802.11s mesh points"]["hosts"] == (
        "{{ 'mesh_points:mesh_point' if 'mesh_point' in groups else 'mesh_points' }}"
    )
    warn = [t for t in SITE[0]["tasks"] if "mesh_point" in t["name"]]
    assert len(warn) == 1 and warn[0]["run_once"] is True
    assert SITE[0]["tags"] == ["always"]


INVENTORY = (
    """
all:
  vars: {ansible_connection: local, ansible_python_interpreter: "%s"}
  children:
    mesh_nodes:
      children:
        mesh_point:
          hosts:
            old1: {mesh_point_device: radio7, cjdns_tun_device: tun9}
            old2: {mesh_point_device: radio8}
        mesh_points:
          hosts:
            new1: {mesh_point_mesh_interface: mesh5, cjdns_tun_interface: tunx}
            new2: {}
"""
    % sys.executable
)


def _playbook(with_old_group):
    warn_task = next(t for t in SITE[0]["tasks"] if "mesh_point" in t["name"])
    return [
        {
            "name": "Old and new names",
            "hosts": next(p["hosts"] for p in SITE if p["name"] == "802.11s mesh points"),
            "gather_facts": False,
            "tasks": [
                warn_task,
                {
                    "name": "names",
                    "ansible.builtin.debug": {
                        "msg": "{{ mesh_point_mesh_interface }} {{ cjdns_tun_interface }}"
                    },
                },
                {
                    "name": "old tests",
                    "ansible.builtin.debug": {
                        "msg": "{{ pub is meshfleet.mesh.cjdns_public_key }} "
                        "{{ priv is meshfleet.mesh.cjdns_private_key }}"
                    },
                    "when": "inventory_hostname.startswith('old')",
                    "vars": {"pub": "x.k", "priv": "ab" * 32},
                },
            ],
        }
    ]


def _run(tmp_path, with_old_group, *extra):
    (tmp_path / "ansible.cfg").write_text("[defaults]\ndeprecation_warnings = True\n")
    # The roles' defaults, at the precedence of group all (below host variables, as role defaults).
    inventory = yaml.safe_load(INVENTORY)
    if not with_old_group:
        del inventory["all"]["children"]["mesh_nodes"]["children"]["mesh_point"]
    for role in ("mesh_point", "cjdns"):
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        for name in ("mesh_point_mesh_interface", "cjdns_tun_interface"):
            if name in defaults:
                inventory["all"]["vars"][name] = defaults[name]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(_playbook(with_old_group), sort_keys=False))
    proc, report = run_playbook(tmp_path, ["-i", "hosts.yml", "play.yml", *extra])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = {t["task"]["name"]: t["hosts"] for t in report["plays"][0]["tasks"]}
    # What an operator sees: the default output, where Ansible shows each deprecation once
    # per run (the JSON report keeps them per result instead).
    shown = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "hosts.yml", "play.yml", *extra],
        cwd=tmp_path,
        env=playbook_env(tmp_path, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return shown.stdout + shown.stderr, tasks


def test_old_names_work_and_each_warns_once(tmp_path):
    output, tasks = _run(tmp_path, True)
    names = {host: result["msg"] for host, result in tasks["names"].items()}
    assert names == {
        "old1": "radio7 tun9",
        "old2": "radio8 cjdns0",
        "new1": "mesh5 tunx",
        "new2": "mesh0 cjdns0",
    }
    assert tasks["old tests"]["old1"]["msg"] == "False False"
    warned = [
        h
        for h, r in tasks["Warn that the inventory group mesh_point is now mesh_points"].items()
        if not r.get("skipped")
    ]
    assert len(warned) == 1
    for sentence in (
        "The inventory group mesh_point is renamed mesh_points",
        "The variable mesh_point_device is renamed mesh_point_mesh_interface",
        "The variable cjdns_tun_device is renamed cjdns_tun_interface",
        "The test meshfleet.mesh.cjdns_public_key is renamed "
        "meshfleet.mesh.valid_cjdns_public_key",
        "The test meshfleet.mesh.cjdns_private_key is renamed "
        "meshfleet.mesh.valid_cjdns_private_key",
    ):
        assert output.count(sentence) == 1, (sentence, output)
    assert output.count("0.2.0") >= 5


def test_new_names_alone_warn_nothing(tmp_path):
    output, tasks = _run(tmp_path, False)
    assert {h: r["msg"] for h, r in tasks["names"].items()} == {
        "new1": "mesh5 tunx",
        "new2": "mesh0 cjdns0",
    }
    assert (
        "renamed" not in output and "DEPRECATION" not in output and "Could not match" not in output
    ), output
    assert all(
        r.get("skipped")
        for r in tasks["Warn that the inventory group mesh_point is now mesh_points"].values()
    )
