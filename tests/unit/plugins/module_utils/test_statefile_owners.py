"""Only plugins/module_utils/statefile.py opens the controller's state files (the key
registry, the gateway allocations): every other reader goes through registry.py or
gateway.py, which go through statefile.StateFile, and every playbook, role and scenario
reads them through the collection's lookups.  These tests grep the tree for any other
way in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
PLUGINS = ROOT / "plugins"
OWNER = PLUGINS / "module_utils" / "statefile.py"

# What reading or writing a file by hand looks like in Python.
FILE_ACCESS = re.compile(r"\bopen\(|\bflock\b|\batomic_write\b|\bwrite_secret\b|os\.replace|"
                         r"os\.rename|\byaml\b|read_text|write_text|\.lock\b")
STATE_WORDS = re.compile(r"registry|allocation", re.IGNORECASE)
# Files that name a state file's words for another reason, and why.
NOT_STATE_FILES = {
    # Names the gateway_allocations action in its table of timed tasks; the file it opens
    # is its own report.
    "plugins/callback/run_budget.py",
}


def python_files():
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts)


def offending_python(files, root=ROOT):
    """(file, line) of Python code outside statefile.py that touches a file and names
    the registry or the allocations, or parses YAML."""
    found = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        if path == OWNER or rel in NOT_STATE_FILES:
            continue
        text = path.read_text()
        if re.search(r"^\s*(import yaml|from yaml)", text, re.MULTILINE):
            found.append((rel, "imports yaml"))
        if STATE_WORDS.search(text):
            found += [(rel, line.strip()) for line in text.splitlines()
                      if FILE_ACCESS.search(line)]
    return found


# In YAML: reading a file by any other route than the collection's lookups.
OTHER_READERS = re.compile(r"ansible\.builtin\.file|lookup\(\s*['\"]file['\"]|slurp|"
                           r"include_vars")
YAML_STATE_WORDS = re.compile(r"registry|alloc", re.IGNORECASE)


def offending_yaml(text, name="file"):
    """Each other reader whose argument (up to the end of the Jinja expression, or of
    the task's next lines) names the registry or the allocations."""
    found = []
    for match in OTHER_READERS.finditer(text):
        rest = text[match.end():match.end() + 300]
        end = rest.find("}}")
        argument = rest[:end] if end >= 0 else rest
        if YAML_STATE_WORDS.search(argument):
            line = text.count("\n", 0, match.start()) + 1
            found.append((name, line, text.splitlines()[line - 1].strip()))
    return found


def yaml_files():
    for top in ("roles", "playbooks", "molecule"):
        yield from sorted((ROOT / top).rglob("*.y*ml"))


def test_only_statefile_opens_state_files_in_plugins():
    assert offending_python(python_files()) == []


def test_registry_and_gateway_use_statefile_class():
    for name in ("registry.py", "gateway.py"):
        text = (PLUGINS / "module_utils" / name).read_text()
        assert "import StateFile" in text or "StateFile,\n" in text, name
        assert "state_file(path).update(" in text and "state_file(path).read()" in text, name


def test_playbooks_roles_and_scenarios_read_state_files_through_the_lookups():
    found = []
    for path in yaml_files():
        found += offending_yaml(path.read_text(), path.relative_to(ROOT).as_posix())
    assert found == []


@pytest.mark.parametrize("text", [
    "allocations=(lookup('ansible.builtin.file', __client_allocations_path) or '{}') | from_yaml,",
    "__alloc: \"{{ (lookup('file', __alloc_path) | from_yaml).gateways }}\"",
    "x: >-\n  {{ (lookup('ansible.builtin.file',\n     gateway_allocations_path | default(''),\n"
    "     errors='ignore') | from_yaml }}",
    "- name: Read it\n  ansible.builtin.slurp:\n    src: \"{{ cjdns_registry_path }}\"\n",
])
def test_the_yaml_check_catches_other_readers(text):
    assert offending_yaml(text) != []


@pytest.mark.parametrize("text", [
    "x: \"{{ lookup('meshfleet.mesh.gateway_allocations', gateway_allocations_path) }}\"",
    "x: \"{{ lookup('ansible.builtin.file', role_path ~ '/defaults/main.yml') | from_yaml }}\"",
])
def test_the_yaml_check_lets_the_lookups_and_other_files_be(text):
    assert offending_yaml(text) == []


def test_the_python_check_catches_other_readers(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text("def load(registry_path):\n    with open(registry_path) as h:\n"
                     "        return h.read()\n")
    parser = tmp_path / "parser.py"
    parser.write_text("import yaml\n")
    innocent = tmp_path / "innocent.py"
    innocent.write_text("def f(registry):\n    return registry.get('n1')\n")
    assert offending_python([rogue, parser, innocent], root=tmp_path) == [
        ("rogue.py", "with open(registry_path) as h:"), ("parser.py", "imports yaml")]
