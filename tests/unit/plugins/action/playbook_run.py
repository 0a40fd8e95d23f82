"""What the end-to-end action tests share: a real ``ansible-playbook`` run in a temporary
directory, isolated from the caller's Ansible settings, with results as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".build" / "collections"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def playbook_env(tmp, **settings):
    """The environment for ansible-playbook in ``tmp`` (which holds its ansible.cfg): none
    of the caller's ANSIBLE_* or MESHFLEET_* settings nor proxies, this checkout as the
    collection, the ansible.posix.json stdout callback; then ``settings``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANSIBLE_", "MESHFLEET_")) and "proxy" not in key.lower()}
    env.update(
        ANSIBLE_CONFIG=str(tmp / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local-tmp"),
    )
    env.update(settings)
    return env


def run_playbook(tmp, args, **settings):
    """Run ``ansible-playbook ARGS`` in ``tmp`` with :func:`playbook_env`; return the
    finished process and its JSON report (a test failure when there is none)."""
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), *args], cwd=tmp,
                          env=playbook_env(tmp, **settings),
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        return proc, json.loads(proc.stdout)
    except ValueError:
        pytest.fail("no JSON from ansible-playbook:\n%s\n%s" % (proc.stdout, proc.stderr))
