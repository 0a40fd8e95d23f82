"""The cjdroute_build role (playbook meshfleet.mesh.build_cjdroute), end to end.

Each test runs the real ``ansible-playbook playbooks/build_cjdroute.yml`` with the output
and cache folders under ``tmp_path``. The source tarballs are small fakes shaped like a
cjdns tree (``client/cjdroute2.c``, ``do``, ``cross-do``) whose ``./do`` compiles a
ten-line C program that prints a cjdns-style version: the role's whole path (checks,
build script, ELF and ``--version`` checks, strip, cache, output, artifacts.yml) runs in
a second instead of a minute. The real cjdns build runs in ``make test`` (scripts/test.sh
builds cjdroute for every scenario) and in ``make cjdroute``.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import platform
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "build_cjdroute.yml"
VERSION = "cjdns-v0.42"

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the fake build is native amd64")

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("Cjdns version: %s\nCjdns protocol version: 21\n", VERSION);
        return 0;
    }
    return 1;
}
"""

GOOD_DO = """#!/bin/sh
set -e
echo "fake cjdns build $$"
gcc $CFLAGS -DVERSION="\\"$CJDNS_RELEASE_VERSION\\"" -o cjdroute fake.c
"""

FAILING_DO = """#!/bin/sh
for i in $(seq 1 40); do echo "build line $i"; done
exit 1
"""


def tarball(path: Path, members: dict[str, str], prefix: str = "") -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def fake_source(tmp_path: Path, do: str = GOOD_DO, prefix: str = "") -> Path:
    return tarball(tmp_path / f"{VERSION}.tar.gz", {
        "client/cjdroute2.c": "/* not cjdns */\n",
        "fake.c": PROGRAM,
        "do": do,
        "cross-do": "#!/bin/sh\nexit 1\n",
    }, prefix)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(tmp_path: Path, check: bool = False, **extra):
    """Run the playbook (in check mode with check=True); return (process, output folder)."""
    out = tmp_path / "dist" / "cjdroute"
    extra_vars = {
        "cjdroute_build_output_dir": str(out),
        "cjdroute_build_cache_dir": str(tmp_path / "cache"),
        "cjdroute_build_architectures": ["amd64"],
        "cjdroute_build_install_packages": False,
        **extra,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
        ANSIBLE_CONFIG=str(ROOT / "tests" / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
    )
    argv = ["ansible-playbook", str(PLAYBOOK), "-e", json.dumps(extra_vars)]
    proc = subprocess.run(
        argv + (["--check"] if check else []),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    return proc, out


def error_line(proc) -> str:
    output = proc.stdout.splitlines() + proc.stderr.splitlines()
    lines = [line for line in output if line.startswith("[ERROR]")]
    assert lines, proc.stdout + proc.stderr
    return lines[-1]


def test_builds_checks_and_caches(tmp_path):
    src = fake_source(tmp_path, prefix="cjdns-cjdns-v0.42/")
    proc, out = build(tmp_path, cjdroute_build_source=str(src))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"built cjdroute {VERSION} for amd64" in proc.stdout
    binary = out / "amd64" / "cjdroute"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(f"Cjdns version: {VERSION}\n")
    artifacts = yaml.safe_load((out / "artifacts.yml").read_text())
    expected = {"amd64": {"src": str(binary), "sha256": sha256(binary)}}
    assert artifacts == {"cjdns_artifacts": expected}
    info = json.loads((out / "build.json").read_text())
    assert info["source_sha256"] == sha256(src)
    assert info["version"] == VERSION

    # Same input: nothing is built, the output stays as it is.
    mtime = binary.stat().st_mtime_ns
    again, _unused = build(tmp_path, cjdroute_build_source=str(src),
                           cjdroute_build_source_sha256=sha256(src))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "built cjdroute" not in again.stdout
    assert binary.stat().st_mtime_ns == mtime
    assert yaml.safe_load((out / "artifacts.yml").read_text()) == artifacts


@pytest.fixture
def served(tmp_path):
    """An HTTP server on loopback serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_url_source_is_downloaded_once_and_checked(tmp_path, served):
    www, base = served
    src = fake_source(www)
    url = f"{base}/{src.name}"
    proc, out = build(tmp_path, cjdroute_build_source=url, cjdroute_build_source_sha256=sha256(src))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cached = tmp_path / "cache" / "sources" / f"{sha256(src)}.tar.gz"
    assert cached.read_bytes() == src.read_bytes()
    assert (out / "amd64" / "cjdroute").exists()
    assert json.loads((out / "build.json").read_text())["source"] == url

    # A URL whose content does not match its sum: get_url names both sums, nothing kept.
    wrong = "1" * 64
    bad, _out = build(tmp_path, cjdroute_build_source=url, cjdroute_build_source_sha256=wrong)
    assert bad.returncode != 0
    assert wrong in bad.stdout + bad.stderr and sha256(src) in bad.stdout + bad.stderr
    assert not (tmp_path / "cache" / "sources" / f"{wrong}.tar.gz").exists()


def test_check_mode_says_what_it_would_build_and_writes_nothing(tmp_path):
    src = fake_source(tmp_path)
    proc, out = build(tmp_path, cjdroute_build_source=str(src), check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check mode: a run would build amd64" in proc.stdout
    assert not out.exists()
    assert not (tmp_path / "cache" / "logs").exists()


def test_failed_build_shows_the_log_tail_and_leaves_nothing(tmp_path):
    src = fake_source(tmp_path, do=FAILING_DO)
    proc, out = build(tmp_path, cjdroute_build_source=str(src))
    assert proc.returncode != 0
    assert "build line 40" in proc.stdout and "build line 11" in proc.stdout
    assert "build line 10\n" not in proc.stdout and "build line 10'" not in proc.stdout
    assert "building cjdroute for amd64 failed" in error_line(proc)
    log = next((tmp_path / "cache" / "logs").glob("*.log"))
    assert str(log) in proc.stdout + proc.stderr
    assert not out.exists()
    assert not list((tmp_path / "cache").glob("*/cjdroute"))
    assert not list((tmp_path / "cache").glob("*/.work-*"))


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong sha256", "sha256 mismatch for {src}: expected " + "0" * 64 + ", got {sha}"),
    ("not cjdns", "{other} is not a cjdns source tarball"),
    ("unknown arch", "must be one or more of: amd64, arm64, armhf. Got no match for: x86"),
    ("missing path", "cjdroute_build_source: no such file: {tmp}/nope/cjdns-v21.1.tar.gz"),
    ("URL without sha256", "cjdroute_build_source is a URL: give its sha256"),
    ("no version", "cannot tell the cjdns release from the name source.tar.gz"),
])
def test_bad_input_is_one_line_before_anything_is_built(tmp_path, case, expected):
    src = fake_source(tmp_path)
    other = tarball(tmp_path / "other.tar.gz", {"README": "hello\n"})
    unnamed = tmp_path / "source.tar.gz"
    unnamed.write_bytes(src.read_bytes())
    source = "cjdroute_build_source"
    extra = {
        "wrong sha256": {source: str(src), "cjdroute_build_source_sha256": "0" * 64},
        "not cjdns": {source: str(other), "cjdroute_build_version": VERSION},
        "unknown arch": {source: str(src), "cjdroute_build_architectures": ["amd64", "x86"]},
        "missing path": {source: str(tmp_path / "nope" / "cjdns-v21.1.tar.gz")},
        "URL without sha256": {source: "https://example.invalid/cjdns-v21.1.tar.gz"},
        "no version": {source: str(unnamed)},
    }[case]
    proc, out = build(tmp_path, **extra)
    assert proc.returncode != 0
    message = expected.format(src=src, sha=sha256(src), other=other, tmp=tmp_path)
    line = error_line(proc)
    if case == "unknown arch":  # argument validation puts its sentence on the next line
        line = proc.stdout + proc.stderr
    assert message in line, proc.stdout + proc.stderr
    assert not out.exists()
    assert not (tmp_path / "cache" / "logs").exists()
