"""Helpers shared by the Molecule scenarios' testinfra tests (test harness only)."""

import json
import os
import subprocess
import time
from pathlib import Path

import testinfra
import yaml

ROOT = Path(__file__).resolve().parents[2]
# One artifact directory per scenario (molecule/resources/artifact.yml).
ARTIFACTS = Path(
    os.environ.get("MESHFLEET_ARTIFACT_DIR")
    or ROOT / ".build" / "artifacts" / (os.environ.get("MOLECULE_SCENARIO_NAME") or "default")
)


# The skip reason of every real-daemon test: scripts/test.sh counts these skips (it must
# find none when the real daemon ran).
REAL_REASON = "needs the real daemon (the stand-in ran: CJDNS_STANDIN=1 or no cjdns source)"


def real_daemon():
    """True when the scenario installed a real cjdroute (built from the cjdns source by
    `make cjdroute`), False with the stand-in (CJDNS_STANDIN=1 or no build)."""
    mode = ARTIFACTS / "mode"
    return mode.exists() and mode.read_text().strip() == "real"


def registry():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "cjdns_registry.yml"
    return yaml.safe_load(path.read_text())["nodes"]


def cjdns_conf(host):
    with host.sudo():
        return json.loads(host.file("/etc/cjdns/cjdroute.conf").content_string)


def hostname(host):
    return host.backend.get_hostname()


def other(request, name):
    """A testinfra host for another container of the scenario."""
    return testinfra.get_host(
        name,
        connection=request.config.option.connection,
        ansible_inventory=request.config.option.ansible_inventory,
    )


def wait_for(check, seconds, interval=1.0):
    """Call check() until it returns a truthy value or the time is up; return the last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


LAB_INVENTORY = ROOT / "inventories" / "lab"


def lab_playbook(playbook, *args, budget=None, timeout=900, env=None):
    """Run playbooks/<playbook> on the lab inventory as an operator would (its
    ansible.cfg, the lab's fact cache); the run_budget report goes to ``budget`` when
    given. Returns the CompletedProcess (text output)."""
    run_env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(LAB_INVENTORY / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(ROOT / ".build" / "lab" / "facts"),
        **(env or {}),
    )
    if budget:
        run_env["MESHFLEET_RUN_BUDGET_OUTPUT"] = str(budget)
    return subprocess.run(
        ["ansible-playbook", "-i", str(LAB_INVENTORY), str(ROOT / "playbooks" / playbook), *args],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
