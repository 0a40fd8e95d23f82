"""End-to-end tests for the ``meshfleet.mesh.run_budget`` callback.

Each test writes a small playbook and a two-host inventory (both hosts use the local
connection) into ``tmp_path`` and runs the real ``ansible-playbook`` with the callback
enabled next to the default stdout callback.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.callback.run_budget import (
    is_controller_action,
)

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".build" / "collections"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
HOSTS = ("node1", "node2")

INVENTORY = """\
[mesh]
node1
node2

[mesh:vars]
ansible_connection=local
ansible_python_interpreter={{ ansible_playbook_python }}
"""

PLAYBOOK = """\
- name: Budget sample
  hosts: mesh
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Run true
      ansible.builtin.command: "true"

    - name: Stat paths
      ansible.builtin.stat:
        path: "{{ item }}"
      loop: [/, /tmp, /nonexistent-meshfleet-path]

    - name: Set a fact
      ansible.builtin.set_fact:
        meshfleet_sample: 1

    - name: Say hello
      ansible.builtin.debug:
        msg: hello

    - name: Never runs
      ansible.builtin.command: "false"
      when: false
"""

EDGE_PLAYBOOK = """\
- name: Budget edge cases
  hosts: mesh
  gather_facts: false
  tasks:
    - name: Empty loop
      ansible.builtin.stat:
        path: "{{ item }}"
      loop: []

    - name: Loop skipped per item
      ansible.builtin.command: "true"
      loop: [a, b]
      when: false

    - name: Succeed on the second attempt
      ansible.builtin.shell: >-
        test -e {{ marker }}-{{ inventory_hostname }}
        || { touch {{ marker }}-{{ inventory_hostname }}; exit 1; }
      register: attempt
      until: attempt.rc == 0
      retries: 2
      delay: 0

    - name: Async task
      ansible.builtin.command: "true"
      async: 30
      poll: 1

    - name: Delegated ping
      ansible.builtin.ping:
      delegate_to: localhost

    - name: Ignored failure
      ansible.builtin.command: "false"
      changed_when: false
      ignore_errors: true

    - name: Check something
      ansible.builtin.assert:
        that: true
"""


def run_playbook(tmp_path, playbook, report_path=None, **env_overrides):
    """Run ``playbook`` against the two local hosts; return (completed process, report).

    The JSON report is read from ``report_path``, by default the file named in
    ``MESHFLEET_RUN_BUDGET_OUTPUT``.  An env override of None removes that variable.
    """
    assert (COLLECTIONS / "ansible_collections" / "meshfleet" / "mesh").exists()
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "site.yml").write_text(playbook)
    report_path = report_path or tmp_path / "report" / "run_budget.json"

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "MESHFLEET_"))
    }
    env.update(
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_CALLBACKS_ENABLED="meshfleet.mesh.run_budget",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote-tmp"),
        ANSIBLE_ASYNC_DIR=str(tmp_path / "async"),
        MESHFLEET_RUN_BUDGET_OUTPUT=str(report_path),
        # Make an exception inside the callback fail the run instead of only warning.
        _ANSIBLE_CALLBACK_DISPATCH_ERROR_BEHAVIOR="error",
    )
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if not (tmp_path / "ansible.cfg").exists():
        (tmp_path / "ansible.cfg").write_text("[defaults]\n")

    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(tmp_path / "inventory.ini"),
            "-e",
            f"marker={tmp_path / 'marker'}",
            str(tmp_path / "site.yml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run_budget" not in proc.stderr, proc.stderr
    return proc, json.loads(report_path.read_text())


def table_rows(stdout):
    """Return {host: line} for the rows of the run budget table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("RUN BUDGET"))
    assert lines[start + 1].split() == ["host", "modules", "changed", "failed"]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows[line.split()[0]] = line
    return rows


def test_counts_modules_per_host(tmp_path):
    proc, report = run_playbook(tmp_path, PLAYBOOK)

    assert isinstance(report["wall_seconds"], float)
    assert 0 < report["wall_seconds"] < 300
    assert sorted(report["hosts"]) == list(HOSTS)
    for host in HOSTS:
        counts = report["hosts"][host]
        assert counts == {
            "modules": 5,  # gather_facts + command + 3 stat items
            "changed": 1,
            "failed": 0,
            "skipped": 1,
            "controller_actions": 2,  # set_fact + debug
            "tasks": [
                ["Gathering Facts", "gather_facts"],
                ["Run true", "ansible.builtin.command"],
                ["Stat paths", "ansible.builtin.stat"],
                ["Stat paths", "ansible.builtin.stat"],
                ["Stat paths", "ansible.builtin.stat"],
                ["Set a fact", "ansible.builtin.set_fact"],
                ["Say hello", "ansible.builtin.debug"],
            ],
        }, host

    assert "RUN BUDGET (wall time " in proc.stdout
    rows = table_rows(proc.stdout)
    assert sorted(rows) == list(HOSTS)
    for host in HOSTS:
        assert rows[host].split() == [host, "5", "1", "0"]
    assert "OVER BUDGET" not in proc.stdout


def test_budget_flags_hosts_over_budget(tmp_path):
    # The report path comes from ansible.cfg here, to exercise the ini entry.
    ini_output = tmp_path / "from-ini.json"
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\n\n[callback_meshfleet_run_budget]\noutput_path = {ini_output}\n"
    )
    proc, report = run_playbook(
        tmp_path,
        PLAYBOOK,
        report_path=ini_output,
        MESHFLEET_RUN_BUDGET="3",
        MESHFLEET_RUN_BUDGET_OUTPUT=None,
    )

    rows = table_rows(proc.stdout)
    for host in HOSTS:
        assert rows[host].split() == [host, "5", "1", "0", "OVER", "BUDGET"]
    assert "budget 3 modules/host" in proc.stdout
    assert report["hosts"]["node1"]["modules"] == 5


def test_output_path_names_the_playbook(tmp_path):
    # One setting for several playbooks: {playbook} keeps their reports apart.
    template = tmp_path / "reports" / "budget-{playbook}.json"
    proc, report = run_playbook(
        tmp_path,
        PLAYBOOK,
        report_path=tmp_path / "reports" / "budget-site.json",
        MESHFLEET_RUN_BUDGET_OUTPUT=str(template),
    )
    assert report["hosts"]["node1"]["modules"] == 5
    assert not (tmp_path / "reports" / "budget-{playbook}.json").exists()


def test_edge_cases(tmp_path):
    _unused, report = run_playbook(tmp_path, EDGE_PLAYBOOK)

    for host in HOSTS:
        counts = report["hosts"][host]
        assert counts["tasks"] == [
            ["Succeed on the second attempt", "ansible.builtin.shell"],  # failed attempt
            ["Succeed on the second attempt", "ansible.builtin.shell"],
            ["Async task", "ansible.builtin.command"],
            ["Delegated ping", "ansible.builtin.ping"],
            ["Ignored failure", "ansible.builtin.command"],
            ["Check something", "ansible.builtin.assert"],
        ], host
        assert counts["modules"] == 5, host
        assert counts["controller_actions"] == 1, host
        assert counts["changed"] == 2, host  # shell + async command
        assert counts["failed"] == 1, host  # ignored failures still count
        assert counts["skipped"] == 3, host  # empty loop + 2 skipped items


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("set_fact", True),
        ("ansible.builtin.debug", True),
        ("ansible.legacy.meta", True),
        ("ansible.builtin.include_role", True),
        ("gather_facts", False),
        ("ansible.builtin.setup", False),
        ("ansible.builtin.command", False),
        ("community.general.debug", False),
        (None, False),
    ],
)
def test_is_controller_action(action, expected):
    assert is_controller_action(action) is expected
