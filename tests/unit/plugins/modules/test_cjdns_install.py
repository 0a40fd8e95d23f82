"""Tests for the node-side logic of meshfleet.mesh.cjdns_install.

The logic lives in plugins/module_utils/artifact.py as plain functions; the module glue
(run_module) is exercised with a small stand-in for AnsibleModule.  Artifacts are built
here: tar.gz with tarfile, Debian packages as ar archives written byte by byte, ELF
headers crafted as 64-byte blobs.  /bin/true serves as a real, runnable ELF binary.
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
    detect_format,
    inspect_artifact,
    install_artifact,
    node_architecture,
    probe_installed,
    read_state,
    sha256_file,
)
from ansible_collections.meshfleet.mesh.plugins.modules import cjdns_install

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


def ar_bytes(members):
    """A System V / GNU ar archive, as dpkg-deb writes it, of [(name, bytes)]."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = b"%-16s%-12d%-6d%-6d%-8s%-10d`\n" % (
            (name + "/").encode() if name.startswith("data") else name.encode(),
            1700000000,
            0,
            0,
            b"100644",
            len(data),
        )
        assert len(header) == 60
        out.append(header + data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def deb_bytes(binary, data_name="data.tar.xz", extra=None, data_blob=None):
    """A minimal Debian package whose data archive holds ./usr/bin/cjdroute."""
    control = tar_bytes({"./control": b"Package: cjdns\nVersion: 22.1-1\nArchitecture: amd64\n"})
    files = {
        "./": None,
        "./usr/": None,
        "./usr/bin/": None,
        "./usr/bin/cjdroute": binary,
        "./usr/share/doc/cjdns/copyright": b"GPL-3+\n",
    }
    files.update(extra or {})
    if data_blob is None:
        compression = data_name.rsplit(".", 1)[1] if data_name != "data.tar" else ""
        data_blob = tar_bytes(files, compression)
    return ar_bytes(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", control),
            ("_odd-member", b"abc"),  # odd size: exercises the ar padding byte
            (data_name, data_blob),
        ]
    )


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


def install(node, artifact_path, label="test-artifact", sha256=None, **kwargs):
    kwargs.setdefault("architecture", this_arch())
    return install_artifact(
        str(artifact_path),
        label,
        sha256 or sha(artifact_path),
        str(node["dest"]),
        str(node["state"]),
        **kwargs,
    )


# ----------------------------------------------------------------- formats and digests


def test_detect_format_by_magic_bytes(tmp_path):
    cases = {
        "elf": elf_header(EM_X86_64),
        "gzip": tar_bytes({"cjdroute": b"x"}),
        "deb": deb_bytes(b"x"),
        "script": SCRIPT,
        "unknown": b"PK\x03\x04 a zip file",
    }
    for expected, data in cases.items():
        path = write(tmp_path / expected, data)
        assert detect_format(str(path)) == expected


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


# ------------------------------------------------------------------ archive extraction


def test_inspect_raw_elf(tmp_path):
    path = write(tmp_path / "cjdroute", elf_header(EM_AARCH64) + b"rest")
    info = inspect_artifact(str(path), "a", "arm64")
    assert info == dict(
        format="elf",
        member=None,
        binary_sha256=sha(path),
        size=68,
        binary="elf aarch64",
    )


@pytest.mark.parametrize("name", ["cjdroute", "cjdns-v22.1/cjdroute", "./a/b/c/cjdroute"])
def test_tar_gz_extraction_top_level_and_subdir(tmp_path, name):
    binary = elf_header(EM_X86_64) + b"payload" * 1000
    members = {"README": b"docs", "cjdns-v22.1/": None, name: binary}
    members["cjdns-v22.1/contrib/cjdroute.service"] = b"[Unit]\n"
    path = write(tmp_path / "a.tar.gz", tar_bytes(members))
    out = io.BytesIO()
    info = inspect_artifact(str(path), "a.tar.gz", "amd64", out=out)
    assert out.getvalue() == binary
    assert info["format"] == "gzip"
    assert info["member"] == name
    assert info["binary_sha256"] == hashlib.sha256(binary).hexdigest()


def test_tar_gz_member_is_checked_for_architecture(tmp_path):
    path = write(tmp_path / "a.tar.gz", tar_bytes({"x/cjdroute": elf_header(EM_AARCH64)}))
    with pytest.raises(ArtifactError) as err:
        inspect_artifact(str(path), "https://h/a.tar.gz", "amd64")
    assert str(err.value) == (
        "x/cjdroute in artifact https://h/a.tar.gz is built for aarch64 but this node is amd64"
    )


def test_tar_gz_without_or_with_two_cjdroute(tmp_path):
    none = write(
        tmp_path / "none.tar.gz",
        tar_bytes({"cjdroute/": None, "cjdroute/README": b"x", "bin/cjdroute": ("link", "x")}),
    )
    with pytest.raises(ArtifactError, match="artifact none.tar.gz holds no regular file named"):
        inspect_artifact(str(none), "none.tar.gz", "amd64")
    two = write(
        tmp_path / "two.tar.gz",
        tar_bytes({"a/cjdroute": elf_header(EM_X86_64), "b/cjdroute": elf_header(EM_X86_64)}),
    )
    with pytest.raises(ArtifactError, match=r"more than one file named cjdroute \(a/cjdroute, b/"):
        inspect_artifact(str(two), "two.tar.gz", "amd64")


def test_damaged_gzip(tmp_path):
    good = tar_bytes({"cjdroute": elf_header(EM_X86_64) * 100})
    path = write(tmp_path / "bad.tar.gz", good[: len(good) // 2])
    with pytest.raises(ArtifactError, match="artifact bad.tar.gz: cannot read"):
        inspect_artifact(str(path), "bad.tar.gz", "amd64")


def test_unknown_format(tmp_path):
    path = write(tmp_path / "a.zip", b"PK\x03\x04....")
    with pytest.raises(ArtifactError, match="neither an ELF binary, a tar.gz archive nor a Deb"):
        inspect_artifact(str(path), "a.zip", "amd64", allow_script=True)


@pytest.mark.parametrize("data_name", ["data.tar.xz", "data.tar.gz", "data.tar.bz2", "data.tar"])
def test_deb_extraction(tmp_path, data_name):
    binary = elf_header(EM_ARM, 32) + os.urandom(5001)
    path = write(tmp_path / "cjdns.deb", deb_bytes(binary, data_name))
    out = io.BytesIO()
    info = inspect_artifact(str(path), "cjdns.deb", "armhf", out=out)
    assert out.getvalue() == binary
    assert info["format"] == "deb"
    assert info["member"] == "%s:./usr/bin/cjdroute" % data_name
    assert info["binary"] == "elf arm"


def test_deb_built_here_is_a_real_deb(tmp_path):
    """dpkg-deb agrees that the hand-written ar archive is a Debian package."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        pytest.skip("dpkg-deb is not installed")
    path = write(tmp_path / "cjdns.deb", deb_bytes(elf_header(EM_X86_64)))
    contents = subprocess.run(
        [dpkg_deb, "--contents", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "./usr/bin/cjdroute" in contents


def test_deb_zst_through_dpkg_deb(tmp_path, monkeypatch):
    zstd, dpkg_deb = shutil.which("zstd"), shutil.which("dpkg-deb")
    if zstd is None or dpkg_deb is None:
        pytest.skip("needs zstd and dpkg-deb")
    binary = elf_header(EM_X86_64) + b"zst" * 999
    plain = tar_bytes({"./usr/bin/cjdroute": binary}, compression="")
    blob = subprocess.run([zstd, "-q", "-c"], input=plain, capture_output=True, check=True).stdout
    path = write(tmp_path / "cjdns.deb", deb_bytes(b"", "data.tar.zst", data_blob=blob))
    # Force the dpkg-deb fallback even on a Python whose tarfile reads zstd.
    monkeypatch.setattr(
        artifact.tarfile.TarFile,
        "OPEN_METH",
        {k: v for k, v in tarfile.TarFile.OPEN_METH.items() if k != "zst"},
    )
    out = io.BytesIO()
    info = inspect_artifact(str(path), "cjdns.deb", "amd64", out=out)
    assert out.getvalue() == binary
    assert info["member"] == "data.tar.zst:./usr/bin/cjdroute"

    monkeypatch.setattr(artifact.shutil, "which", lambda name: None)
    with pytest.raises(artifact.ArtifactUnsupportedHere, match="needs Python 3.14\\+ or dpkg"):
        inspect_artifact(str(path), "cjdns.deb", "amd64")


def test_deb_without_data_member_or_damaged(tmp_path):
    path = write(tmp_path / "a.deb", ar_bytes([("debian-binary", b"2.0\n")]))
    with pytest.raises(ArtifactError, match="artifact a.deb has no data.tar member"):
        inspect_artifact(str(path), "a.deb", "amd64")
    path = write(tmp_path / "b.deb", b"!<arch>\nshort header")
    with pytest.raises(ArtifactError, match="artifact b.deb is a damaged ar archive"):
        inspect_artifact(str(path), "b.deb", "amd64")
    path = write(tmp_path / "c.deb", ar_bytes([("data.tar.lz4", b"xx")]))
    with pytest.raises(ArtifactError, match="artifact c.deb has a data.tar.lz4 member"):
        inspect_artifact(str(path), "c.deb", "amd64")


def test_deb_with_wrong_architecture(tmp_path):
    path = write(tmp_path / "a.deb", deb_bytes(elf_header(EM_AARCH64)))
    with pytest.raises(ArtifactError) as err:
        inspect_artifact(str(path), "cjdns_22.1_arm64.deb", "amd64")
    assert str(err.value) == (
        "data.tar.xz:./usr/bin/cjdroute in artifact cjdns_22.1_arm64.deb is built for aarch64 "
        "but this node is amd64"
    )


# --------------------------------------------------------------------------- install


def test_install_raw_elf_and_state_file(node):
    artifact_path = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes(), 0o600)
    moved = []

    def move(src, dst):
        moved.append((os.path.dirname(src), dst))
        os.replace(src, dst)

    result = install(node, artifact_path, label="/srv/cjdroute", move=move)
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
        format="elf",
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


def test_install_from_tar_gz_subdir(node):
    data = tar_bytes({"cjdns-v22.1/": None, "cjdns-v22.1/cjdroute": TRUE.read_bytes()})
    artifact_path = write(node["tmp"] / "cjdroute-artifact", data)
    result = install(node, artifact_path, label="https://h/cjdns.tar.gz")
    assert result["member"] == "cjdns-v22.1/cjdroute"
    assert node["dest"].read_bytes() == TRUE.read_bytes()
    assert read_state(str(node["state"]))["artifact_sha256"] == sha(artifact_path)
    assert read_state(str(node["state"]))["binary_sha256"] == sha(TRUE)
    assert listing(node["tmp"]) == ["cjdroute-artifact"]  # extracted copy removed


def test_install_from_deb_with_script_fixture(node):
    artifact_path = write(node["tmp"] / "cjdroute-artifact", deb_bytes(SCRIPT))
    with pytest.raises(ArtifactError, match="allow_script=true"):
        install(node, artifact_path)
    assert not node["root"].exists()
    result = install(node, artifact_path, allow_script=True)
    assert result["version"] == FIXTURE_VERSION
    assert result["format"] == "deb"
    assert node["dest"].read_bytes() == SCRIPT


def test_install_sha256_mismatch_writes_nothing(node):
    artifact_path = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes())
    wrong = "0" * 64
    with pytest.raises(ArtifactError) as err:
        install(node, artifact_path, label="https://h/cjdroute", sha256=wrong)
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
    artifact_path = write(node["tmp"] / "cjdroute-artifact", tar_bytes({"cjdroute": failing}))
    with pytest.raises(ArtifactError) as err:
        install(node, artifact_path, label="https://h/bad.tar.gz", allow_script=True)
    assert str(err.value) == (
        "the cjdroute from artifact https://h/bad.tar.gz failed: --version exited with 3; "
        "stderr: cjdroute: illegal instruction"
    )
    assert not node["root"].exists()  # dest's directories created for the try are gone
    assert listing(node["tmp"]) == ["cjdroute-artifact"]

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


# ----------------------------------------------------------------------------- probe


def test_probe_before_and_after_install(node):
    args = (str(node["dest"]), str(node["state"]), sha(TRUE))
    before = probe_installed(*args)
    assert before["installed"] is False
    assert before["reason"] == "%s does not exist" % node["dest"]

    result = install(node, write(node["tmp"] / "a", TRUE.read_bytes()))
    after = probe_installed(*args)
    assert after == dict(
        installed=True,
        reason="",
        version=result["version"],
        binary_sha256=sha(TRUE),
        architecture=this_arch(),
    )
    assert probe_installed(*args, architecture=this_arch())["installed"] is True
    other = probe_installed(*args, architecture=other_arch())
    assert other["installed"] is False
    assert other["reason"].endswith("was installed for %s, not %s" % (this_arch(), other_arch()))


def test_probe_does_not_execute_dest(node, monkeypatch):
    install(node, write(node["tmp"] / "a", TRUE.read_bytes()))

    def forbidden(*args, **kwargs):
        raise AssertionError("probe must not run anything")

    monkeypatch.setattr(artifact.subprocess, "run", forbidden)
    monkeypatch.setattr(artifact.subprocess, "Popen", forbidden)
    assert probe_installed(str(node["dest"]), str(node["state"]), sha(TRUE))["installed"]


def test_probe_detects_tampering(node):
    install(node, write(node["tmp"] / "a", TRUE.read_bytes()))
    dest, state_file = node["dest"], node["state"]
    args = (str(dest), str(state_file), sha(TRUE))

    original = dest.read_bytes()
    dest.write_bytes(original + b"\0")  # same path, same mode, other content
    found = probe_installed(*args)
    assert found["installed"] is False
    assert "was changed since it was installed (sha256 %s" % sha(dest) in found["reason"]
    dest.write_bytes(original)
    assert probe_installed(*args)["installed"] is True

    dest.chmod(0o644)
    assert "has mode 0644 instead of 0755" in probe_installed(*args)["reason"]
    dest.chmod(0o755)

    other = "1" * 64
    assert (
        "was installed from another artifact"
        in probe_installed(str(dest), str(state_file), other)["reason"]
    )

    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps(dict(state, dest="/elsewhere")))
    assert "describes /elsewhere" in probe_installed(*args)["reason"]

    state_file.write_text("{not json")
    found = probe_installed(*args)
    assert found["installed"] is False
    assert "is missing or unreadable" in found["reason"]

    state_file.unlink()
    assert "is missing or unreadable" in probe_installed(*args)["reason"]

    dest.unlink()
    dest.mkdir()
    assert "is not a regular file" in probe_installed(*args)["reason"]


# ------------------------------------------------------------------------ module glue


class FakeModule:
    """Just what run_module uses of AnsibleModule."""

    def __init__(self, check_mode=False, **params):
        self.params = dict(
            src=None,
            url=None,
            dest=None,
            architecture=None,
            state_file=None,
            allow_script=False,
            _probe=False,
            _artifact=None,
            _source=None,
        )
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
    params.setdefault("_source", "/srv/cjdroute")
    return params


def test_module_probe_install_probe(node):
    probe = cjdns_install.run_module(FakeModule(check_mode=True, **module_args(node, _probe=True)))
    assert probe["changed"] is False
    assert probe["probe"] is True
    assert probe["installed"] is False
    assert probe["architecture"] == this_arch()  # resolved on the node for the controller

    remote = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes())
    done = cjdns_install.run_module(FakeModule(**module_args(node, _artifact=str(remote))))
    assert done["changed"] is True
    assert done["probe"] is False
    assert done["version"].startswith("true ")
    assert done["source"] == "/srv/cjdroute"

    again = cjdns_install.run_module(FakeModule(**module_args(node, _probe=True)))
    assert (again["changed"], again["installed"], again["version"]) == (
        False,
        True,
        done["version"],
    )


def test_module_failures_are_sentences(node):
    remote = write(node["tmp"] / "cjdroute-artifact", TRUE.read_bytes())
    with pytest.raises(FailJson) as err:
        cjdns_install.run_module(
            FakeModule(**module_args(node, _artifact=str(remote), sha256="f" * 64))
        )
    assert err.value.args[0]["msg"].startswith("artifact /srv/cjdroute has sha256 ")
    with pytest.raises(FailJson) as err:
        cjdns_install.run_module(FakeModule(**module_args(node, sha256="nope")))
    assert "64 hexadecimal characters" in err.value.args[0]["msg"]
    with pytest.raises(FailJson) as err:
        cjdns_install.run_module(FakeModule(**module_args(node)))
    assert "runs through its action plugin" in err.value.args[0]["msg"]
    assert not node["root"].exists()


def test_module_argument_spec_matches_documentation():
    import yaml

    documented = yaml.safe_load(cjdns_install.DOCUMENTATION)["options"]
    spec = artifact.public_argument_spec()
    module_spec = cjdns_install.module_argument_spec()
    internal = {"_probe", "_artifact", "_source"}
    assert set(module_spec) - set(spec) == internal
    assert {name: module_spec[name] for name in spec} == spec
    # Every option of the module is documented (the internal ones as such), and the
    # documentation of the others is the action plugin's public spec.
    assert sorted(documented) == sorted(module_spec)
    for name, option in documented.items():
        assert option["type"] == module_spec[name]["type"], name
        assert option.get("default") == module_spec[name].get("default"), name
        assert option.get("required", False) == module_spec[name].get("required", False), name
        assert option.get("choices") == module_spec[name].get("choices"), name
    for name in internal:
        assert documented[name]["description"][0].startswith("Internal use only"), name
