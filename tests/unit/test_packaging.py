"""What the collection declares about itself: galaxy.yml names every collection the
content uses, the built tarball leaves the developer's files out, and the execution
environment definitions are well-formed (ansible-builder 3 schema, as documented) and
agree with galaxy.yml and the pinned ansible-core."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")
NAMESPACES = {"ansible", "community", "kubernetes", "containers", "cisco", "amazon", "netbox"}
OWN = {
    "ansible.builtin",
    "ansible.legacy",
    "meshfleet.mesh",
    "ansible.module_utils",
    "ansible.plugins",
    "ansible.errors",
    "ansible.parsing",
}


def used_collections():
    used = {}
    for path in list((ROOT / "roles").rglob("*.yml")) + list((ROOT / "playbooks").rglob("*.yml")):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for ns, name in FQCN.findall(line):
                if ns in NAMESPACES and "%s.%s" % (ns, name) not in OWN:
                    used.setdefault("%s.%s" % (ns, name), str(path.relative_to(ROOT)))
    for path in (ROOT / "plugins").rglob("*.py"):
        for ns, name in re.findall(r"ansible_collections\.([a-z_]+)\.([a-z_]+)", path.read_text()):
            if "%s.%s" % (ns, name) not in OWN:
                used.setdefault("%s.%s" % (ns, name), str(path.relative_to(ROOT)))
    return used


def test_galaxy_declares_every_collection_the_content_uses():
    used = used_collections()
    missing = {name: where for name, where in used.items() if name not in GALAXY["dependencies"]}
    assert missing == {}, "used but not in galaxy.yml dependencies: %s" % missing
    unused = set(GALAXY["dependencies"]) - set(used)
    assert unused == set(), "declared in galaxy.yml but not used: %s" % unused


def test_build_ignore_leaves_out_the_developers_files():
    ignored = set(GALAXY["build_ignore"])
    for name in (
        ".build",
        ".venv",
        ".ci",
        ".config",
        "molecule",
        "tests",
        "scripts",
        "benchmarks",
        "Makefile",
        "dist",
        "*/dist",
        "inventories/lab",
    ):
        assert name in ignored, name


def test_collection_ee_requirements_exist():
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 1
    python = (ROOT / meta["dependencies"]["python"]).read_text()
    assert re.search(r"^netaddr\b", python, re.M) and re.search(r"^jinja2\b", python, re.M)
    system = (ROOT / meta["dependencies"]["system"]).read_text()
    assert re.search(r"^graphviz \[", system, re.M)


def test_execution_environment_definition():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    allowed = {
        "version",
        "images",
        "dependencies",
        "additional_build_files",
        "additional_build_steps",
        "build_arg_defaults",
        "options",
    }
    assert set(ee) <= allowed and ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert set(deps) <= {
        "ansible_core",
        "ansible_runner",
        "galaxy",
        "python",
        "system",
        "python_interpreter",
        "exclude",
    }
    pinned = re.search(
        r"^ansible-core==(\d+)\.(\d+)", (ROOT / "requirements-dev.txt").read_text(), re.M
    )
    assert "ansible-core>=%s.%s," % pinned.groups() in deps["ansible_core"]["package_pip"]
    assert "ansible_runner" in deps
    collections = {c["name"] for c in deps["galaxy"]["collections"]}
    assert set(GALAXY["dependencies"]) <= collections
    tarball = [c for c in deps["galaxy"]["collections"] if c.get("type") == "file"]
    assert [c["name"] for c in tarball] == ["meshfleet-mesh.tar.gz"]
    copied = " ".join(ee["additional_build_steps"]["prepend_galaxy"])
    files = ee["additional_build_files"]
    assert any(
        f["src"] == "meshfleet-mesh.tar.gz"
        and "_build/%s/meshfleet-mesh.tar.gz" % f["dest"] in copied
        for f in files
    )
    # No registry host is named: the base image is the builder's to choose.
    assert not re.search(
        r"\b[a-z0-9-]+\.(io|com|org)/", (ROOT / "execution-environment.yml").read_text()
    )
