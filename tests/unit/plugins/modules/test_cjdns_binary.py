"""Tests for the node-side logic of meshfleet.mesh.cjdns_binary.

The logic lives in plugins/module_utils/artifact.py as plain functions; the module glue
(run_module) is exercised with a small stand-in for AnsibleModule.  Candidates are built
here: unpacked tar.gz trees, ``dpkg-deb --contents`` listings, ELF headers crafted as
64-byte blobs.  /bin/true serves as a real, runnable ELF binary.  The role's whole
install (stock modules around this one) is tested in tests/unit/roles/test_cjdns_install.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils import artifact
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import (
    ArtifactError,
    check_binary,
    check_sha256,
    deb_binary_path,
    find_in_tree,
    install_binary,
    node_architecture,
    query_installed,
    read_deb_binary_path,
    read_state,
    sha256_file,
)
from ansible_collections.meshfleet.mesh.plugins.modules import cjdns_binary

TRUE = Path(shutil.which("true") or "/bin/true").resolve()
FIXTURE_VERSION = "cjdroute meshfleet-unit-fixture 1.0"
SCRIPT = b'#!/bin/sh\necho "%s"\n' % FIXTURE_VERSION.encode()

EM_X86_64, EM_AARCH64, EM_ARM, EM_386 = 62, 183, 40, 3


def elf_header(machine, bits=64, little=True):
    """A 64-byte ELF header with just the fields the machine check reads."""
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if little else 2, 1, 0]) + bytes(8)
    order = "little" if little else "big"
    body = (2).to_bytes(2, order) + machine.to_bytes(2, order) + (1).to_bytes(4, order)
    return (ident + body).ljust(64, b"\0")


def this_arch():
    return node_architecture()


def other_arch():
    return "arm64" if this_arch() != "arm64" else "amd64"


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write(path, data, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def tar_bytes(members, compression="gz"):
    """A tar archive of {name: bytes or None (directory) or ('link', target)}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:" + compression if compression else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def listing(directory):
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture
def node(tmp_path):
    """Paths of a pretend node: the remote tmp dir and a separate install root."""
    paths = {
        "tmp": tmp_path / "remote-tmp",
        "root": tmp_path / "root",
    }
    paths["tmp"].mkdir()
    paths["dest"] = paths["root"] / "usr/local/sbin/cjdroute"
    paths["state"] = paths["root"] / "var/lib/meshfleet/cjdns-artifact.json"
    return paths


def install(node, candidate, label="test-artifact", sha256=None, **kwargs):
    kwargs.setdefault("architecture", this_arch())
    return install_binary(
        str(candidate),
        label,
        sha256 or sha(candidate),
        str(node["dest"]),
        str(node["state"]),
        **kwargs,
    )


# ----------------------------------------------------------------- formats and digests


def test_check_sha256_normalizes_and_rejects():
    digest = "AB" * 32
    assert check_sha256(" %s\n" % digest) == digest.lower()
    for bad in (None, "", "ab" * 31, "ab" * 33, "zz" * 32, "sha256:" + "ab" * 32):
        with pytest.raises(ArtifactError, match="64 hexadecimal characters"):
            check_sha256(bad)


def test_sha256_file(tmp_path):
    path = write(tmp_path / "f", b"meshfleet")
    assert sha256_file(str(path)) == hashlib.sha256(b"meshfleet").hexdigest()


# -------------------------------------------------------------------------- ELF check


@pytest.mark.parametrize(
    "arch, machine, bits",
    [("amd64", EM_X86_64, 64), ("arm64", EM_AARCH64, 64), ("armhf", EM_ARM, 32)],
)
def test_elf_machine_matches_architecture(arch, machine, bits):
    assert check_binary(elf_header(machine, bits), arch, "artifact a").startswith("elf ")


@pytest.mark.parametrize(
    "machine, bits, little, arch, built_for",
    [
        (EM_AARCH64, 64, True, "amd64", "aarch64"),
        (EM_X86_64, 64, True, "arm64", "x86-64"),
        (EM_ARM, 32, True, "arm64", "arm"),
        (EM_AARCH64, 64, True, "armhf", "aarch64"),
        (EM_386, 32, True, "amd64", "i386"),
        (EM_ARM, 64, True, "armhf", "arm (64-bit)"),
        (EM_AARCH64, 64, False, "arm64", "aarch64 (big-endian)"),
        (243, 64, True, "amd64", "riscv"),
        (9999, 64, True, "amd64", "ELF machine 9999"),
    ],
)
def test_elf_machine_mismatch_names_artifact_machine_and_node(
    machine, bits, little, arch, built_for
):
    with pytest.raises(ArtifactError) as err:
        check_binary(elf_header(machine, bits, little), arch, "artifact https://x/cjdroute")
    assert str(err.value) == "artifact https://x/cjdroute is built for %s but this node is %s" % (
        built_for,
        arch,
    )


def test_damaged_elf_header_and_unknown_architecture():
    with pytest.raises(ArtifactError, match="damaged ELF header"):
        check_binary(b"\x7fELF\x07\x01" + bytes(20), "amd64", "artifact a")
    with pytest.raises(ArtifactError, match="damaged ELF header"):
        check_binary(b"\x7fELF\x02", "amd64", "artifact a")
    with pytest.raises(ArtifactError, match="architecture must be one of amd64, arm64, armhf"):
        check_binary(elf_header(EM_X86_64), "i386", "artifact a")


def test_shebang_rule():
    with pytest.raises(ArtifactError, match=r"artifact a is a script .*allow_script=true"):
        check_binary(SCRIPT, "amd64", "artifact a")
    assert check_binary(SCRIPT, "amd64", "artifact a", allow_script=True) == "script"
    for data in (b"echo hi\n", b"  #!/bin/sh\n", b"", b"\x00\x01"):
        with pytest.raises(ArtifactError, match="is not an ELF binary"):
            check_binary(data, "amd64", "artifact a", allow_script=True)


def test_node_architecture():
    assert node_architecture("x86_64", 64) == "amd64"
    assert node_architecture("aarch64", 64) == "arm64"
    assert node_architecture("aarch64", 32) == "armhf"  # 64-bit kernel, 32-bit userland
    assert node_architecture("armv7l", 32) == "armhf"
    assert node_architecture("armv6l", 32) == "armhf"
    for machine, bits in (("i686", 32), ("x86_64", 32), ("riscv64", 64)):
        with pytest.raises(ArtifactError, match="set architecture"):
            node_architecture(machine, bits)


# ---------------------------------------------------------- finding the candidate


@pytest.mark.parametrize("name", ["cjdroute", "cjdns-v22.1/cjdroute", "./a/b/cjdroute"])
def test_find_in_unpacked_tar_gz(tmp_path, name):
    data = tar_bytes({name: TRUE.read_bytes(), "README": b"x"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    found = find_in_tree(str(tmp_path / "unpacked"), "a.tar.gz")
    assert Path(found).read_bytes() == TRUE.read_bytes()
    assert os.path.relpath(found, tmp_path / "unpacked") == os.path.normpath(name)


def test_find_in_tree_needs_exactly_one_regular_file(tmp_path):
    tree = tmp_path / "t"
    write(tree / "bin" / "other", b"x")
    (tree / "cjdroute").symlink_to("bin/other")  # a link does not count
    with pytest.raises(ArtifactError, match="a.tar.gz holds no regular file named cjdroute"):
        find_in_tree(str(tree), "a.tar.gz")
    write(tree / "x" / "cjdroute", b"1")
    write(tree / "y" / "cjdroute", b"2")
    with pytest.raises(ArtifactError, match=r"more than one .* \(x/cjdroute, y/cjdroute\)"):
        find_in_tree(str(tree), "a.tar.gz")


DPKG_LISTING = """\
drwxr-xr-x root/root         0 2024-01-01 00:00 ./
drwxr-xr-x root/root         0 2024-01-01 00:00 ./usr/
drwxr-xr-x root/root         0 2024-01-01 00:00 ./usr/bin/
-rwxr-xr-x root/root   1234567 2024-01-01 00:00 ./usr/bin/cjdroute
lrwxrwxrwx root/root         0 2024-01-01 00:00 ./usr/sbin/cjdroute -> ../bin/cjdroute
-rw-r--r-- root/root      1000 2024-01-01 00:00 ./usr/share/doc/cjdns/copyright
"""


def test_deb_binary_path_from_dpkg_listing():
    assert deb_binary_path(DPKG_LISTING, "c.deb") == "/usr/bin/cjdroute"
    with pytest.raises(ArtifactError, match="one regular file named cjdroute; it holds none"):
        deb_binary_path(DPKG_LISTING.replace("bin/cjdroute\n", "bin/cjdns\n"), "c.deb")
    two = DPKG_LISTING + "-rwxr-xr-x root/root 1 2024-01-01 00:00 ./opt/cjdroute\n"
    with pytest.raises(ArtifactError, match="/usr/bin/cjdroute, /opt/cjdroute"):
        deb_binary_path(two, "c.deb")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_read_deb_binary_path_of_a_real_package(tmp_path):
    root = tmp_path / "pkg"
    write(root / "DEBIAN" / "control",
          b"Package: cjdns-test\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\n"
          b"Description: test\n")
    write(root / "usr" / "bin" / "cjdroute", SCRIPT, 0o755)
    deb = tmp_path / "c.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)],
                   check=True, capture_output=True)
    assert read_deb_binary_path(str(deb), "c.deb") == "/usr/bin/cjdroute"
    with pytest.raises(ArtifactError, match="cannot read Debian package c.deb"):
        read_deb_binary_path(str(tmp_path / "pkg" / "DEBIAN" / "control"), "c.deb")


def test_archive_given_as_a_binary_gets_a_hint():
    with pytest.raises(ArtifactError, match=r"not an ELF binary .*name a tar.gz artifact"):
        check_binary(b"\x1f\x8b\x08\x00" + bytes(60), "amd64", "artifact a")
    with pytest.raises(ArtifactError, match=r"not an ELF binary .*name a Debian package \*\.deb"):
        check_binary(b"!<arch>\n" + bytes(56), "amd64", "artifact a")


# ----------------------------------------------------------------------------- install


def test_install_raw_elf_and_state_file(node):
    artifact_path = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes(), 0o600)
    moved = []

    def move(src, dst):
        moved.append((os.path.dirname(src), dst))
        os.replace(src, dst)

    result = install(node, artifact_path, label="/srv/cjdroute", move=move,
                     artifact=str(artifact_path))
    dest = node["dest"]
    assert result["changed"] is True
    assert result["dest"] == str(dest)
    assert result["version"].startswith("true ")
    assert result["binary_sha256"] == sha(TRUE) == sha(dest)
    assert moved == [(str(dest.parent), str(dest))]  # the temp file was next to dest
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    if os.geteuid() == 0:
        assert (dest.stat().st_uid, dest.stat().st_gid) == (0, 0)
    assert listing(dest.parent) == ["cjdroute"]  # no temp files left
    state = json.loads(node["state"].read_text())
    assert state == dict(
        architecture=this_arch(),
        artifact_sha256=sha(TRUE),
        binary_sha256=sha(TRUE),
        dest=str(dest),
        format="binary",
        member=None,
        source="/srv/cjdroute",
        version=result["version"],
    )
    assert "installed_at" not in state
    assert stat.S_IMODE(node["state"].stat().st_mode) == 0o644


def test_install_is_idempotent_in_content(node):
    artifact_path = write(node["tmp"] / "a", TRUE.read_bytes())
    install(node, artifact_path)
    first = node["state"].read_bytes(), node["dest"].read_bytes()
    install(node, artifact_path)
    assert (node["state"].read_bytes(), node["dest"].read_bytes()) == first


def test_install_from_an_unpacked_tar_gz_records_both_digests(node):
    artifact_path = write(node["tmp"] / "artifact.tar.gz", b"the tarball's bytes")
    candidate = write(node["tmp"] / "unpacked" / "cjdns-v22.1" / "cjdroute", TRUE.read_bytes())
    result = install(node, candidate, label="https://h/cjdns.tar.gz", sha256=sha(artifact_path),
                     artifact=str(artifact_path), fmt="tar.gz", member="cjdns-v22.1/cjdroute")
    assert result["member"] == "cjdns-v22.1/cjdroute"
    assert node["dest"].read_bytes() == TRUE.read_bytes()
    assert read_state(str(node["state"]))["artifact_sha256"] == sha(artifact_path)
    assert read_state(str(node["state"]))["binary_sha256"] == sha(TRUE)
    assert read_state(str(node["state"]))["format"] == "tar.gz"
    assert candidate.exists()  # the staged copy is the role's to remove


def test_install_script_fixture_needs_allow_script(node):
    candidate = write(node["tmp"] / "cjdroute", SCRIPT, 0o755)
    with pytest.raises(ArtifactError, match="allow_script=true"):
        install(node, candidate)
    assert not node["root"].exists()
    result = install(node, candidate, allow_script=True)
    assert result["version"] == FIXTURE_VERSION
    assert node["dest"].read_bytes() == SCRIPT


def test_install_sha256_mismatch_writes_nothing(node):
    artifact_path = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes())
    wrong = "0" * 64
    with pytest.raises(ArtifactError) as err:
        install(node, artifact_path, label="https://h/cjdroute", sha256=wrong,
                artifact=str(artifact_path))
    assert str(err.value) == "artifact https://h/cjdroute has sha256 %s, expected %s" % (
        sha(TRUE),
        wrong,
    )
    assert not node["root"].exists()


def test_install_wrong_architecture_writes_nothing(node):
    node["dest"].parent.mkdir(parents=True)
    write(node["dest"], b"old binary", 0o755)
    artifact_path = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes())
    with pytest.raises(ArtifactError, match="but this node is %s" % other_arch()):
        install(node, artifact_path, label="/srv/cjdroute", architecture=other_arch())
    assert node["dest"].read_bytes() == b"old binary"
    assert listing(node["dest"].parent) == ["cjdroute"]
    assert not node["state"].exists()


def test_install_version_failure_shows_stderr_and_keeps_dest(node):
    failing = b"#!/bin/sh\necho 'cjdroute: illegal instruction' >&2\nexit 3\n"
    artifact_path = write(node["tmp"] / "cjdroute", failing, 0o755)
    with pytest.raises(ArtifactError) as err:
        install(node, artifact_path, label="https://h/bad.tar.gz", allow_script=True)
    assert str(err.value) == (
        "the cjdroute from artifact https://h/bad.tar.gz failed: --version exited with 3; "
        "stderr: cjdroute: illegal instruction"
    )
    assert not node["root"].exists()  # dest's directories created for the try are gone
    assert listing(node["tmp"]) == ["cjdroute"]

    write(node["dest"], b"old binary", 0o755)
    with pytest.raises(ArtifactError, match="--version exited with 3"):
        install(node, artifact_path, label="https://h/bad.tar.gz", allow_script=True)
    assert node["dest"].read_bytes() == b"old binary"
    assert listing(node["dest"].parent) == ["cjdroute"]
    assert not node["state"].exists()


def test_install_version_timeout(node):
    slow = b"#!/bin/sh\nsleep 5\n"
    artifact_path = write(node["tmp"] / "a", slow)
    with pytest.raises(ArtifactError, match="did not finish --version within 1 seconds"):
        install(node, artifact_path, allow_script=True, version_timeout=1)
    assert not node["root"].exists()


def test_install_replaces_existing_dest_atomically(node):
    write(node["dest"], b"#!/bin/sh\necho old\n", 0o700)
    artifact_path = write(node["tmp"] / "a", TRUE.read_bytes())
    old_inode = node["dest"].stat().st_ino
    install(node, artifact_path)
    assert node["dest"].stat().st_ino != old_inode  # replaced by rename, not rewritten
    assert stat.S_IMODE(node["dest"].stat().st_mode) == 0o755
    assert node["dest"].read_bytes() == TRUE.read_bytes()


# ----------------------------------------------------------------------------- query


def test_query_before_and_after_install(node):
    args = (str(node["dest"]), str(node["state"]), sha(TRUE))
    before = query_installed(*args)
    assert before["installed"] is False
    assert before["reason"] == "%s does not exist" % node["dest"]

    result = install(node, write(node["tmp"] / "a", TRUE.read_bytes()))
    after = query_installed(*args)
    assert after == dict(
        installed=True,
        reason="",
        version=result["version"],
        binary_sha256=sha(TRUE),
        architecture=this_arch(),
    )
    assert query_installed(*args, architecture=this_arch())["installed"] is True
    other = query_installed(*args, architecture=other_arch())
    assert other["installed"] is False
    assert other["reason"].endswith("was installed for %s, not %s" % (this_arch(), other_arch()))


def test_query_does_not_execute_dest(node, monkeypatch):
    install(node, write(node["tmp"] / "a", TRUE.read_bytes()))

    def forbidden(*args, **kwargs):
        raise AssertionError("the query must not run anything")

    monkeypatch.setattr(artifact.subprocess, "run", forbidden)
    monkeypatch.setattr(artifact.subprocess, "Popen", forbidden)
    assert query_installed(str(node["dest"]), str(node["state"]), sha(TRUE))["installed"]


def test_query_detects_tampering(node):
    install(node, write(node["tmp"] / "a", TRUE.read_bytes()))
    dest, state_file = node["dest"], node["state"]
    args = (str(dest), str(state_file), sha(TRUE))

    original = dest.read_bytes()
    dest.write_bytes(original + b"\0")  # same path, same mode, other content
    found = query_installed(*args)
    assert found["installed"] is False
    assert "was changed since it was installed (sha256 %s" % sha(dest) in found["reason"]
    dest.write_bytes(original)
    assert query_installed(*args)["installed"] is True

    dest.chmod(0o644)
    assert "has mode 0644 instead of 0755" in query_installed(*args)["reason"]
    dest.chmod(0o755)

    other = "1" * 64
    assert (
        "was installed from another artifact"
        in query_installed(str(dest), str(state_file), other)["reason"]
    )

    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps(dict(state, dest="/elsewhere")))
    assert "describes /elsewhere" in query_installed(*args)["reason"]

    state_file.write_text("{not json")
    found = query_installed(*args)
    assert found["installed"] is False
    assert "is missing or unreadable" in found["reason"]

    state_file.unlink()
    assert "is missing or unreadable" in query_installed(*args)["reason"]

    dest.unlink()
    dest.mkdir()
    assert "is not a regular file" in query_installed(*args)["reason"]


# ------------------------------------------------------------------------ module glue


class FakeModule:
    """Just what run_module uses of AnsibleModule."""

    def __init__(self, check_mode=False, **params):
        self.params = {name: spec.get("default") for name, spec in artifact.argument_spec().items()}
        self.params.update(params)
        self.check_mode = check_mode

    def fail_json(self, **result):
        raise FailJson(result)

    def atomic_move(self, src, dest, keep_dest_attrs=True):
        assert keep_dest_attrs is False
        os.replace(src, dest)


class FailJson(Exception):
    pass


def module_args(node, **params):
    params.setdefault("dest", str(node["dest"]))
    params.setdefault("state_file", str(node["state"]))
    params.setdefault("sha256", sha(TRUE))
    params.setdefault("source", "/srv/cjdroute")
    return params


def test_module_query_install_query(node):
    query = cjdns_binary.run_module(FakeModule(**module_args(node)))
    assert (query["changed"], query["installed"]) == (False, False)
    assert query["architecture"] == this_arch()  # derived on the node when not given
    assert not node["root"].exists()

    candidate = write(node["tmp"] / "cjdroute", TRUE.read_bytes())
    checked = cjdns_binary.run_module(
        FakeModule(check_mode=True, **module_args(node, candidate=str(node["tmp"] / "absent")))
    )
    assert (checked["changed"], checked["installed"]) == (True, False)
    assert not node["root"].exists()  # check mode: nothing read, nothing written

    done = cjdns_binary.run_module(
        FakeModule(**module_args(node, candidate=str(candidate), artifact=str(candidate)))
    )
    assert done["changed"] is True
    assert done["version"].startswith("true ")
    assert done["format"] == "binary"

    again = cjdns_binary.run_module(FakeModule(**module_args(node, candidate=str(candidate))))
    assert (again["changed"], again["installed"], again["version"]) == (
        False,
        True,
        done["version"],
    )


def test_module_candidate_directory(node):
    write(node["tmp"] / "unpacked" / "rel" / "cjdroute", TRUE.read_bytes())
    done = cjdns_binary.run_module(
        FakeModule(**module_args(node, candidate=str(node["tmp"] / "unpacked")))
    )
    assert (done["changed"], done["format"], done["member"]) == (True, "tar.gz", "rel/cjdroute")


def test_module_failures_are_sentences(node):
    candidate = write(node["tmp"] / "cjdroute", TRUE.read_bytes())
    with pytest.raises(FailJson) as err:
        cjdns_binary.run_module(
            FakeModule(**module_args(node, candidate=str(candidate), artifact=str(candidate),
                                     sha256="f" * 64))
        )
    assert err.value.args[0]["msg"].startswith("artifact /srv/cjdroute has sha256 ")
    with pytest.raises(FailJson) as err:
        cjdns_binary.run_module(FakeModule(**module_args(node, sha256="nope")))
    assert "64 hexadecimal characters" in err.value.args[0]["msg"]
    with pytest.raises(FailJson) as err:
        cjdns_binary.run_module(FakeModule(**module_args(node, candidate=str(node["tmp"] / "x"))))
    assert err.value.args[0]["msg"] == (
        "the cjdroute from artifact /srv/cjdroute is not on the node at %s" % (node["tmp"] / "x")
    )
    assert not node["root"].exists()


def test_module_argument_spec_matches_documentation():
    import yaml

    documented = yaml.safe_load(cjdns_binary.DOCUMENTATION)["options"]
    spec = artifact.argument_spec()
    assert sorted(documented) == sorted(spec)
    for name, option in documented.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("required", False) == spec[name].get("required", False), name
        assert option.get("choices") == spec[name].get("choices"), name
