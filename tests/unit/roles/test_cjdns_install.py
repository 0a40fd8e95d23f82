"""End-to-end tests of the cjdns role's install of cjdroute (roles/cjdns/tasks/install.yml:
the cjdns_binary query, then stock get_url/copy/unarchive, then cjdns_binary's swap).

Each test runs the real ``ansible-playbook`` with the role's install tasks against hosts
using the local connection, with the binary, the state file, the node's staging directory
and the controller's download cache under ``tmp_path`` (extra vars).  Module executions on
the "node" are counted without parsing verbose output: ``ansible_python_interpreter`` is a
shell wrapper that logs every Python start (delegated tasks run on the controller's own
interpreter, not the wrapper).  Results are read from the ``ansible.posix.json`` callback.
Artifacts: a copy of /bin/true (a real ELF binary for this machine whose ``--version``
exits 0), a tar.gz of it served over HTTP from this process, and shell scripts with
``cjdns_allow_script_artifact``.  The play ends with ``meta: end_play`` so that the role's
"Restart cjdns" handler, notified by a swap, does not run here.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import shutil
import stat
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import node_architecture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "action"))
from playbook_run import COLLECTIONS, run_playbook  # noqa: E402

TRUE = Path(shutil.which("true") or "/bin/true").resolve()
FIXTURE_VERSION = "cjdroute meshfleet-role-fixture 2.0"
ARCH = node_architecture()
OTHER_ARCH = "arm64" if ARCH != "arm64" else "amd64"
ELF_NAME = {"amd64": "x86-64", "arm64": "aarch64", "armhf": "arm"}[ARCH]

PLAYBOOK = """\
- name: Install cjdroute
  hosts: mesh
  gather_facts: false
  tasks:
    - name: The role's install tasks
      ansible.builtin.include_role:
        name: meshfleet.mesh.cjdns
        tasks_from: install
    - name: End before the role's restart handler
      ansible.builtin.meta: end_play
"""


def sha(path_or_bytes):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return hashlib.sha256(data).hexdigest()


def tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Run:
    def __init__(self, proc, tasks, executions):
        self.proc = proc
        self.tasks = tasks  # {task name: {host: result}}
        self.executions = executions  # Python starts on the "nodes"

    def result(self, task, host="node1"):
        return self.tasks.get(task, {}).get(host, {})

    @property
    def query(self):
        return self.result("Read the installed cjdroute")

    @property
    def swap(self):
        return self.result("Check the new cjdroute and swap it in")

    def failed(self, host="node1"):
        """The failed task's result (the run stops the host there)."""
        for hosts in self.tasks.values():
            if hosts.get(host, {}).get("failed"):
                return hosts[host]
        return {}


class Lab:
    """A play against local 'nodes' node1 (and node2), each with its own install root."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.artifacts = tmp_path / "artifacts"
        self.artifacts.mkdir()
        self.cache = tmp_path / "cache"
        self.log = tmp_path / "python-starts.log"
        wrapper = tmp_path / "python-wrapper"
        wrapper.write_text(
            '#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nexec "%s" "$@"\n' % (self.log, sys.executable)
        )
        wrapper.chmod(0o755)
        (tmp_path / "inventory.ini").write_text(
            "[mesh]\nnode1\nnode2\n\n[mesh:vars]\nansible_connection=local\n"
            "ansible_python_interpreter=%s\n\n[local]\nlocalhost ansible_connection=local "
            "ansible_python_interpreter=%s\n" % (wrapper, sys.executable)
        )
        (tmp_path / "ansible.cfg").write_text("[defaults]\n")
        (tmp_path / "site.yml").write_text(PLAYBOOK)

    def dest(self, host="node1"):
        return self.tmp / host / "sbin" / "cjdroute"

    def state(self, host="node1"):
        return self.tmp / host / "state" / "cjdns-artifact.json"

    def written(self, host="node1"):
        """Everything written in a node's install root."""
        root = self.tmp / host
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []

    def artifact(self, name, data, mode=0o644):
        path = self.artifacts / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def run(self, artifact, check=False, hosts="node1", arch=ARCH, allow_script=False):
        node = str(self.tmp / "{{ inventory_hostname }}")
        extra = {
            "cjdns_artifacts": {arch: artifact},
            "__cjdns_arch": ARCH,
            "cjdns_allow_script_artifact": allow_script,
            "cjdns_binary": node + "/sbin/cjdroute",
            "__cjdns_state_file": node + "/state/cjdns-artifact.json",
            "__cjdns_stage_dir": node + "/stage",
            "__cjdns_controller_cache": str(self.cache),
        }
        if self.log.exists():
            self.log.unlink()
        args = ["-i", str(self.tmp / "inventory.ini"), "--limit", hosts,
                "-e", json.dumps(extra), str(self.tmp / "site.yml")]
        if check:
            args.append("--check")
        proc, report = run_playbook(self.tmp, args, ANSIBLE_DEPRECATION_WARNINGS="0")
        tasks = {}
        for task in report["plays"][0]["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            tasks.setdefault(name, {}).update(task["hosts"])
        executions = self.log.read_text().splitlines() if self.log.exists() else []
        return Run(proc, tasks, len(executions))


@pytest.fixture
def lab(tmp_path):
    assert (COLLECTIONS / "ansible_collections" / "meshfleet" / "mesh").exists()
    return Lab(tmp_path)


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving ``files`` and counting requests per path."""
    files, hits = {}, {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            hits[self.path] = hits.get(self.path, 0) + 1
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.files, httpd.hits = files, hits
    httpd.base = "http://127.0.0.1:%d" % httpd.server_address[1]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------------------------------ tests


def test_elf_install_then_noop_costs_one_module_execution(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    first = lab.run({"src": str(src), "sha256": sha(src)})
    assert first.proc.returncode == 0, first.proc.stdout + first.proc.stderr
    assert first.query["installed"] is False
    swap = first.swap
    assert swap["changed"] is True
    assert swap["version"].startswith("true ")
    assert swap["binary_sha256"] == sha(TRUE)
    assert swap["format"] == "binary"
    assert lab.dest().read_bytes() == TRUE.read_bytes()
    assert stat.S_IMODE(lab.dest().stat().st_mode) == 0o755
    state = json.loads(lab.state().read_text())
    assert state["artifact_sha256"] == sha(src)
    assert state["source"] == str(src)
    # The staging directory is gone again.
    assert lab.written() == ["sbin", "sbin/cjdroute", "state", "state/cjdns-artifact.json"]
    before = lab.dest().stat()

    second = lab.run({"src": str(src), "sha256": sha(src).upper()})
    assert second.proc.returncode == 0, second.proc.stderr
    assert (second.query["changed"], second.query["installed"]) == (False, True)
    assert second.query["version"] == swap["version"]
    assert second.swap.get("skipped") is True
    assert second.executions == 1
    after = lab.dest().stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    third = lab.run({"src": str(src), "sha256": sha(src)}, check=True)
    assert third.proc.returncode == 0, third.proc.stderr
    assert (third.query["installed"], third.executions) == (True, 1)


def test_tar_gz_url_is_downloaded_once_for_the_fleet(lab, server):
    data = tar_gz({"cjdns-v22.1/": None, "cjdns-v22.1/cjdroute": TRUE.read_bytes()})
    path = "/cjdns/cjdroute-%s.tar.gz" % ARCH
    server.files[path] = data
    artifact = {"url": server.base.replace("//", "//user:s3cret@") + path, "sha256": sha(data)}

    first = lab.run(artifact, hosts="mesh")
    assert first.proc.returncode == 0, first.proc.stdout + first.proc.stderr
    assert server.hits == {path: 1}
    for host in ("node1", "node2"):
        swap = first.result("Check the new cjdroute and swap it in", host)
        assert swap["changed"] is True
        assert swap["member"] == "cjdns-v22.1/cjdroute"
        assert swap["format"] == "tar.gz"
        assert lab.dest(host).read_bytes() == TRUE.read_bytes()
        assert json.loads(lab.state(host).read_text())["source"] == server.base + path
    assert (lab.cache / sha(data)).read_bytes() == data
    assert "s3cret" not in first.proc.stdout

    second = lab.run(artifact, hosts="mesh")
    assert second.proc.returncode == 0, second.proc.stderr
    assert second.executions == 2
    assert sum(server.hits.values()) == 1


def test_wrong_sha256_fails_and_writes_nothing(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    wrong = "0123456789abcdef" * 4
    run = lab.run({"src": str(src), "sha256": wrong})
    assert run.proc.returncode != 0
    assert run.failed()["msg"] == "artifact %s has sha256 %s, expected %s" % (src, sha(src), wrong)
    assert run.executions == 2  # the query, and the staging directory's cleanup
    assert lab.written() == []


def test_url_sha256_mismatch_installs_nothing(lab, server):
    server.files["/cjdroute"] = TRUE.read_bytes()
    run = lab.run({"url": server.base + "/cjdroute", "sha256": "f" * 64})
    assert run.proc.returncode != 0
    assert "did not match " + "f" * 10 in run.failed()["msg"]
    assert run.executions == 2  # the query, and the staging directory's cleanup
    assert lab.written() == []
    assert not any(p.is_file() for p in lab.cache.rglob("*")) if lab.cache.exists() else True


def test_check_mode_writes_nothing(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    run = lab.run({"src": str(src), "sha256": sha(src)}, check=True)
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.query["installed"] is False
    assert run.swap["changed"] is True
    assert "version" not in run.swap
    assert lab.written() == []


def test_wrong_architecture_refused_before_swap(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    good = lab.run({"src": str(src), "sha256": sha(src)})
    assert good.swap["changed"] is True
    installed = lab.dest().read_bytes()
    # Another architecture's build offered for this one: the node checks the ELF.
    wrong = lab.artifact("cjdroute-other", _elf_header(OTHER_ARCH), 0o755)
    run = lab.run({"src": str(wrong), "sha256": sha(wrong)})
    assert run.proc.returncode != 0
    assert run.failed()["msg"] == "artifact %s is built for %s but this node is %s" % (
        wrong, {"amd64": "x86-64", "arm64": "aarch64", "armhf": "arm"}[OTHER_ARCH], ARCH)
    assert lab.dest().read_bytes() == installed
    assert lab.written() == ["sbin", "sbin/cjdroute", "state", "state/cjdns-artifact.json"]


def _elf_header(arch):
    machine, bits = {"amd64": (62, 64), "arm64": (183, 64), "armhf": (40, 32)}[arch]
    return (b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1]) + b"\0" * 9
            + b"\x02\x00" + machine.to_bytes(2, "little") + b"\0" * 44)


def test_script_artifact_needs_allow_script(lab):
    script = b'#!/bin/sh\necho "%s"\n' % FIXTURE_VERSION.encode()
    src = lab.artifact("cjdroute-standin", script, 0o755)
    refused = lab.run({"src": str(src), "sha256": sha(src)})
    msg = refused.failed()["msg"]
    assert msg.startswith("artifact %s is a script" % src) and "allow_script=true" in msg
    assert lab.written() == []

    allowed = lab.run({"src": str(src), "sha256": sha(src)}, allow_script=True)
    assert allowed.swap["changed"] is True
    assert allowed.swap["version"] == FIXTURE_VERSION
    again = lab.run({"src": str(src), "sha256": sha(src)}, allow_script=True)
    assert (again.query["installed"], again.query["version"]) == (True, FIXTURE_VERSION)
    assert again.executions == 1


def test_version_failure_keeps_the_installed_binary(lab):
    good = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    assert lab.run({"src": str(good), "sha256": sha(good)}).swap["changed"] is True
    state = lab.state().read_text()
    script = b"#!/bin/sh\necho 'Illegal instruction' >&2\nexit 132\n"
    data = tar_gz({"cjdroute": script})
    src = lab.artifact("broken.tar.gz", data)
    run = lab.run({"src": str(src), "sha256": sha(data)}, allow_script=True)
    assert run.proc.returncode != 0
    assert run.failed()["msg"] == (
        "the cjdroute from artifact %s failed: --version exited with 132; "
        "stderr: Illegal instruction" % src
    )
    assert lab.dest().read_bytes() == TRUE.read_bytes()
    assert lab.state().read_text() == state
    assert lab.written() == ["sbin", "sbin/cjdroute", "state", "state/cjdns-artifact.json"]


def test_tampered_binary_is_reinstalled(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    assert lab.run({"src": str(src), "sha256": sha(src)}).swap["changed"] is True
    lab.dest().write_bytes(b"#!/bin/sh\necho pwned\n")
    run = lab.run({"src": str(src), "sha256": sha(src)})
    assert run.query["installed"] is False
    assert "was changed since it was installed" in run.query["reason"]
    assert run.swap["changed"] is True
    assert lab.dest().read_bytes() == TRUE.read_bytes()
    assert lab.run({"src": str(src), "sha256": sha(src)}).executions == 1


def test_archive_named_as_a_binary_gets_a_hint(lab):
    data = tar_gz({"cjdroute": TRUE.read_bytes()})
    src = lab.artifact("cjdroute-release", data)
    run = lab.run({"src": str(src), "sha256": sha(data)})
    assert re.search(r"is not an ELF binary .*name a tar.gz artifact \*\.tar\.gz",
                     run.failed()["msg"])
    ok = lab.run({"src": str(src), "sha256": sha(data), "format": "tar.gz"})
    assert ok.swap["changed"] is True, ok.proc.stdout
