"""End-to-end tests of meshfleet.mesh.cjdns_install (action plugin + module).

Each test runs the real ``ansible-playbook`` against hosts using the local connection,
with ``dest`` and ``state_file`` under ``tmp_path``.  Two things are measured without
parsing verbose output:

* module executions on the node: ``ansible_python_interpreter`` is a shell wrapper that
  logs every Python start before exec'ing the real interpreter;
* artifact transfers: ``ANSIBLE_KEEP_REMOTE_FILES`` keeps the remote tmp dirs, so a
  transferred artifact (``cjdroute-artifact``) stays visible after the run.

Results are read from the ``ansible.posix.json`` stdout callback.  Artifacts: a copy of
/bin/true (a real ELF binary for this machine whose ``--version`` exits 0), a tar.gz of
it served over HTTP from this process, and small shell scripts with ``allow_script``.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import stat
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import node_architecture
from playbook_run import COLLECTIONS, run_playbook

TRUE = Path(shutil.which("true") or "/bin/true").resolve()
FIXTURE_VERSION = "cjdroute meshfleet-action-fixture 2.0"
ARCH = node_architecture()
OTHER_ARCH = "arm64" if ARCH != "arm64" else "amd64"
ELF_NAME = {"amd64": "x86-64", "arm64": "aarch64", "armhf": "arm"}[ARCH]

PLAYBOOK = """\
- name: Install cjdroute
  hosts: mesh
  gather_facts: false
  tasks:
    - name: Install cjdroute from the artifact
      meshfleet.mesh.cjdns_install: {args}
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
    def __init__(self, proc, results, executions, transfers):
        self.proc = proc
        self.results = results  # {host: task result}
        self.executions = executions  # Python starts on the "node"
        self.transfers = transfers  # artifacts transferred to the "node"

    def __getitem__(self, host):
        return self.results[host]


class Lab:
    """A play against local 'nodes' node1 (and node2), each with its own install root."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.artifacts = tmp_path / "artifacts"
        self.artifacts.mkdir()
        self.cache = tmp_path / "cache"
        self.remote_tmp = tmp_path / "remote-tmp"
        self.log = tmp_path / "python-starts.log"
        wrapper = tmp_path / "python-wrapper"
        wrapper.write_text(
            '#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nexec "%s" "$@"\n' % (self.log, sys.executable)
        )
        wrapper.chmod(0o755)
        (tmp_path / "inventory.ini").write_text(
            "[mesh]\nnode1\nnode2\n\n[mesh:vars]\nansible_connection=local\n"
            "ansible_python_interpreter=%s\n" % wrapper
        )
        (tmp_path / "ansible.cfg").write_text("[defaults]\n")

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

    def run(self, check=False, hosts="node1", forks=5, **task_args):
        args = dict(
            dest=str(self.tmp / "{{ inventory_hostname }}" / "sbin" / "cjdroute"),
            state_file=str(self.tmp / "{{ inventory_hostname }}" / "state" / "cjdns-artifact.json"),
            cache_dir=str(self.cache),
        )
        args.update(task_args)
        (self.tmp / "site.yml").write_text(PLAYBOOK.format(args=json.dumps(args)))
        if self.log.exists():
            self.log.unlink()
        shutil.rmtree(self.remote_tmp, ignore_errors=True)

        args = ["-i", str(self.tmp / "inventory.ini"), "--limit", hosts, str(self.tmp / "site.yml")]
        if check:
            args.append("--check")
        proc, report = run_playbook(
            self.tmp,
            args,
            ANSIBLE_REMOTE_TEMP=str(self.remote_tmp),
            ANSIBLE_KEEP_REMOTE_FILES="1",
            ANSIBLE_PIPELINING="0",
            ANSIBLE_FORKS=str(forks),
            ANSIBLE_DEPRECATION_WARNINGS="0",
        )
        results = report["plays"][0]["tasks"][0]["hosts"] if report["plays"][0]["tasks"] else {}
        executions = self.log.read_text().splitlines() if self.log.exists() else []
        assert all("AnsiballZ_cjdns_install.py" in line for line in executions), executions
        transfers = list(self.remote_tmp.rglob("cjdroute-artifact"))
        return Run(proc, results, len(executions), len(transfers))


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
    first = lab.run(src=str(src), sha256=sha(src), architecture=ARCH)
    assert first.proc.returncode == 0, first.proc.stdout + first.proc.stderr
    result = first["node1"]
    assert result["changed"] is True
    assert result["probe"] is False
    assert result["version"].startswith("true ")
    assert result["binary_sha256"] == sha(TRUE)
    assert result["format"] == "elf"
    assert result["dest"] == str(lab.dest())
    assert (first.executions, first.transfers) == (2, 1)  # probe + install, one transfer
    assert lab.dest().read_bytes() == TRUE.read_bytes()
    assert stat.S_IMODE(lab.dest().stat().st_mode) == 0o755
    state = json.loads(lab.state().read_text())
    assert state["artifact_sha256"] == sha(src)
    assert state["source"] == str(src)
    assert lab.written() == ["sbin", "sbin/cjdroute", "state", "state/cjdns-artifact.json"]
    before = lab.dest().stat()

    second = lab.run(src=str(src), sha256=sha(src), architecture=ARCH)
    assert second.proc.returncode == 0, second.proc.stderr
    result = second["node1"]
    assert (result["changed"], result["probe"]) == (False, True)
    assert result["version"] == first["node1"]["version"]
    assert result["binary_sha256"] == sha(TRUE)
    assert (second.executions, second.transfers) == (1, 0)
    after = lab.dest().stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # Without architecture the node derives it, with the same single execution.
    third = lab.run(src=str(src), sha256=sha(src), check=True)
    assert (third["node1"]["changed"], third.executions, third.transfers) == (False, 1, 0)


def test_tar_gz_url_is_downloaded_once_for_the_fleet(lab, server):
    data = tar_gz({"cjdns-v22.1/": None, "cjdns-v22.1/cjdroute": TRUE.read_bytes()})
    server.files["/cjdns/cjdroute-%s.tar.gz" % ARCH] = data
    url = server.base + "/cjdns/cjdroute-%s.tar.gz" % ARCH

    first = lab.run(hosts="mesh", url=url, sha256=sha(data), architecture=ARCH)
    assert first.proc.returncode == 0, first.proc.stdout + first.proc.stderr
    assert server.hits == {"/cjdns/cjdroute-%s.tar.gz" % ARCH: 1}
    for host in ("node1", "node2"):
        result = first[host]
        assert result["changed"] is True
        assert result["member"] == "cjdns-v22.1/cjdroute"
        assert result["source"] == url
        assert lab.dest(host).read_bytes() == TRUE.read_bytes()
    assert sorted(first[host]["cached"] for host in ("node1", "node2")) == [False, True]
    assert (lab.cache / sha(data)).read_bytes() == data
    assert (first.executions, first.transfers) == (4, 2)

    second = lab.run(hosts="mesh", url=url, sha256=sha(data), architecture=ARCH)
    assert second.proc.returncode == 0, second.proc.stderr
    assert [second[h]["changed"] for h in ("node1", "node2")] == [False, False]
    assert (second.executions, second.transfers) == (2, 0)
    assert sum(server.hits.values()) == 1


def test_wrong_sha256_fails_and_writes_nothing(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    wrong = "0123456789abcdef" * 4
    run = lab.run(src=str(src), sha256=wrong)
    assert run.proc.returncode != 0
    result = run["node1"]
    assert result["failed"] is True
    assert result["msg"] == "artifact %s has sha256 %s, expected %s" % (src, sha(src), wrong)
    assert (run.executions, run.transfers) == (1, 0)  # the probe only
    assert lab.written() == []


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(sha256="abc"), "sha256 must be 64 hexadecimal characters"),
        (dict(sha256="g" * 64), "sha256 must be 64 hexadecimal characters"),
        (dict(), "sha256"),
        (dict(sha256="a" * 64, url="http://127.0.0.1:9/x"), "mutually exclusive"),
    ],
)
def test_bad_arguments_fail_before_anything(lab, args, message):
    src = lab.artifact("cjdroute", TRUE.read_bytes())
    run = lab.run(src=str(src), **args)
    assert run["node1"]["failed"] is True
    assert message in run["node1"]["msg"]
    assert (run.executions, run.transfers) == (0, 0)
    assert lab.written() == []


def test_src_or_url_is_required(lab):
    run = lab.run(sha256="a" * 64)
    assert "one of the following is required: src, url" in run["node1"]["msg"]
    assert run.executions == 0


def test_missing_src(lab):
    run = lab.run(src=str(lab.artifacts / "nope"), sha256="a" * 64)
    assert run["node1"]["msg"].startswith(
        "artifact %s not found on the controller" % (lab.artifacts / "nope")
    )
    assert (run.executions, run.transfers) == (1, 0)


def test_url_sha256_mismatch_deletes_the_download(lab, server):
    server.files["/cjdroute"] = TRUE.read_bytes()
    url = server.base + "/cjdroute"
    wrong = "f" * 64
    run = lab.run(url=url, sha256=wrong)
    assert run["node1"]["msg"] == "artifact %s has sha256 %s, expected %s" % (
        url,
        sha(TRUE),
        wrong,
    )
    assert sorted(p.name for p in lab.cache.iterdir()) == [wrong + ".lock"]
    assert (run.executions, run.transfers) == (1, 0)
    assert lab.written() == []

    missing = lab.run(url=server.base + "/missing", sha256=wrong)
    assert missing["node1"]["msg"].startswith("cannot download artifact %s/missing" % server.base)
    assert "404" in missing["node1"]["msg"]


def test_check_mode_writes_nothing(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    run = lab.run(check=True, src=str(src), sha256=sha(src), architecture=ARCH)
    assert run.proc.returncode == 0, run.proc.stderr
    result = run["node1"]
    assert (result["changed"], result["probe"]) == (True, False)
    assert result["binary_sha256"] == sha(TRUE)
    assert "version" not in result
    assert (run.executions, run.transfers) == (1, 0)
    assert lab.written() == []


def test_wrong_architecture_fails_before_transfer(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    run = lab.run(src=str(src), sha256=sha(src), architecture=OTHER_ARCH)
    assert run["node1"]["msg"] == "artifact %s is built for %s but this node is %s" % (
        src,
        ELF_NAME,
        OTHER_ARCH,
    )
    assert (run.executions, run.transfers) == (1, 0)
    assert lab.written() == []


def test_script_artifact_needs_allow_script(lab):
    script = b'#!/bin/sh\necho "%s"\n' % FIXTURE_VERSION.encode()
    src = lab.artifact("cjdroute-standin", script, 0o755)
    refused = lab.run(src=str(src), sha256=sha(src))
    assert "allow_script=true" in refused["node1"]["msg"]
    assert refused["node1"]["msg"].startswith("artifact %s is a script" % src)
    assert (refused.executions, refused.transfers) == (1, 0)
    assert lab.written() == []

    allowed = lab.run(src=str(src), sha256=sha(src), allow_script=True)
    assert allowed["node1"]["changed"] is True
    assert allowed["node1"]["version"] == FIXTURE_VERSION
    again = lab.run(src=str(src), sha256=sha(src), allow_script=True)
    assert (again["node1"]["changed"], again["node1"]["version"]) == (False, FIXTURE_VERSION)
    assert again.executions == 1


def test_version_failure_on_the_node_writes_nothing(lab):
    script = b"#!/bin/sh\necho 'Illegal instruction' >&2\nexit 132\n"
    data = tar_gz({"cjdroute": script})
    src = lab.artifact("broken.tar.gz", data)
    run = lab.run(src=str(src), sha256=sha(data), allow_script=True)
    assert run["node1"]["failed"] is True
    assert run["node1"]["msg"] == (
        "the cjdroute from artifact %s failed: --version exited with 132; "
        "stderr: Illegal instruction" % src
    )
    assert (run.executions, run.transfers) == (2, 1)
    assert lab.written() == []


def test_tampered_binary_is_reinstalled(lab):
    src = lab.artifact("cjdroute", TRUE.read_bytes(), 0o755)
    assert lab.run(src=str(src), sha256=sha(src))["node1"]["changed"] is True
    lab.dest().write_bytes(b"#!/bin/sh\necho pwned\n")
    run = lab.run(src=str(src), sha256=sha(src))
    result = run["node1"]
    assert result["changed"] is True
    assert "was changed since it was installed" in result["reason"]
    assert lab.dest().read_bytes() == TRUE.read_bytes()
    assert (run.executions, run.transfers) == (2, 1)
    assert lab.run(src=str(src), sha256=sha(src))["node1"]["changed"] is False
