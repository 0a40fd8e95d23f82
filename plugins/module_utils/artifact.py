# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install a cjdroute binary from an operator-supplied artifact.

Shared by the ``meshfleet.mesh.cjdns_install`` module (node side) and its action plugin
(controller side).  Standard library only (besides this collection's ``statefile``), so
it runs on any managed node.

An artifact is one of:

* a raw ELF binary (``\\x7fELF``);
* a gzip-compressed tar archive (``\\x1f\\x8b``) holding exactly one regular file named
  ``cjdroute``, at any depth;
* a Debian package (ar archive, ``!<arch>\\n``) whose ``data.tar.{gz,xz,bz2,zst}`` or
  uncompressed ``data.tar`` holds exactly one regular file named ``cjdroute``.  zstd is
  read with ``tarfile`` on Python 3.14+, else through ``dpkg-deb --fsys-tarfile``.  The
  package is never installed with dpkg: only that one file is taken out of it.

The binary must be an ELF file for the node's architecture.  A file starting with ``#!``
is accepted instead only when ``allow_script`` is true (test fixtures only).

Every check runs before anything is written next to ``dest``; ``ArtifactError`` carries a
sentence naming the artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile

from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import atomic_write

__all__ = [
    "ARCHITECTURES",
    "ArtifactError",
    "ArtifactUnsupportedHere",
    "check_binary",
    "check_sha256",
    "detect_format",
    "inspect_artifact",
    "install_artifact",
    "node_architecture",
    "probe_installed",
    "public_argument_spec",
    "read_state",
    "sha256_file",
]

ELF_MAGIC = b"\x7fELF"
GZIP_MAGIC = b"\x1f\x8b"
AR_MAGIC = b"!<arch>\n"
SHEBANG = b"#!"
BINARY_NAME = "cjdroute"
BINARY_MODE = 0o755
DIR_MODE = 0o755
STATE_MODE = 0o644
HEAD_BYTES = 64
CHUNK = 1024 * 1024
VERSION_TIMEOUT = 30
DEFAULT_DEST = "/usr/local/sbin/cjdroute"
DEFAULT_STATE_FILE = "/var/lib/meshfleet/cjdns-artifact.json"
DEFAULT_CACHE_DIR = "~/.cache/meshfleet/artifacts"
DEFAULT_URL_TIMEOUT = 60
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")

# Debian architecture -> (ELF e_machine, ELF class bits).  All three are little-endian.
ARCHITECTURES = {
    "amd64": (62, 64),
    "arm64": (183, 64),
    "armhf": (40, 32),
}
ELF_MACHINES = {
    3: "i386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390",
    40: "arm",
    62: "x86-64",
    183: "aarch64",
    243: "riscv",
    258: "loongarch",
}
# uname -m -> Debian architecture, for a node whose architecture was not given.
_UNAME_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv6l": "armhf",
    "armv7l": "armhf",
    "armv8l": "armhf",
}
_TAR_MODES = {
    "data.tar": "r|",
    "data.tar.gz": "r|gz",
    "data.tar.xz": "r|xz",
    "data.tar.bz2": "r|bz2",
    "data.tar.zst": "r|zst",
}


class ArtifactError(Exception):
    """The artifact, or the installed binary, fails a check.  The message names it."""


class ArtifactUnsupportedHere(ArtifactError):
    """The artifact needs a decoder this host lacks (the node may still have it)."""


def public_argument_spec():
    """The documented options of meshfleet.mesh.cjdns_install (module and action plugin)."""
    return dict(
        src=dict(type="path"),
        url=dict(type="str"),
        sha256=dict(type="str", required=True),
        dest=dict(type="path", default=DEFAULT_DEST),
        architecture=dict(type="str", choices=list(ARCHITECTURES)),
        cache_dir=dict(type="path", default=DEFAULT_CACHE_DIR),
        state_file=dict(type="path", default=DEFAULT_STATE_FILE),
        validate_certs=dict(type="bool", default=True),
        url_timeout=dict(type="int", default=DEFAULT_URL_TIMEOUT),
        allow_script=dict(type="bool", default=False),
    )


# ----------------------------------------------------------------------------- helpers


def check_sha256(value, what="sha256"):
    """Return ``value`` as 64 lower-case hex characters or raise ArtifactError."""
    text = "" if value is None else str(value).strip()
    if not SHA256_RE.match(text):
        raise ArtifactError(
            "%s must be 64 hexadecimal characters (a SHA-256 digest), got %r" % (what, text[:80])
        )
    return text.lower()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _head(path, size=HEAD_BYTES):
    with open(path, "rb") as handle:
        return handle.read(size)


def node_architecture(machine=None, pointer_bits=None):
    """Debian architecture of this Python: uname machine, corrected for a 32-bit userland.

    A Raspberry Pi OS with a 64-bit kernel and 32-bit userland reports ``aarch64``, but
    its Python (like its cjdroute must be) is 32-bit, hence armhf.
    """
    machine = machine or platform.machine()
    pointer_bits = pointer_bits or struct.calcsize("P") * 8
    arch = _UNAME_ARCH.get(machine)
    if arch in ("arm64", "amd64") and pointer_bits == 32:
        arch = "armhf" if arch == "arm64" else None
    if arch is None:
        raise ArtifactError(
            "cannot tell the Debian architecture of this node (machine %s, %d-bit); "
            "set architecture to one of %s" % (machine, pointer_bits, ", ".join(ARCHITECTURES))
        )
    return arch


def detect_format(path):
    """Return ``elf``, ``gzip``, ``deb``, ``script`` or ``unknown`` from the magic bytes."""
    head = _head(path, 8)
    if head.startswith(ELF_MAGIC):
        return "elf"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(AR_MAGIC):
        return "deb"
    if head.startswith(SHEBANG):
        return "script"
    return "unknown"


def _describe_elf(head):
    """Return (e_machine, class bits, little_endian, text) of an ELF header, or None."""
    if len(head) < 20 or not head.startswith(ELF_MAGIC):
        return None
    ei_class, ei_data = head[4], head[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        return None
    machine = struct.unpack("<H" if ei_data == 1 else ">H", head[18:20])[0]
    bits = 32 if ei_class == 1 else 64
    little = ei_data == 1
    text = ELF_MACHINES.get(machine, "ELF machine %d" % machine)
    if (machine, bits) not in ARCHITECTURES.values() and machine in (40, 62, 183):
        text += " (%d-bit)" % bits
    if not little:
        text += " (big-endian)"
    return machine, bits, little, text


def check_binary(head, architecture, what, allow_script=False):
    """Check the first bytes of the binary; return ``"elf <machine>"`` or ``"script"``.

    ``what`` names the binary in messages, e.g. ``artifact https://…/cjdroute``.
    """
    if architecture not in ARCHITECTURES:
        raise ArtifactError(
            "architecture must be one of %s, got %r" % (", ".join(ARCHITECTURES), architecture)
        )
    if head.startswith(ELF_MAGIC):
        described = _describe_elf(head)
        if described is None:
            raise ArtifactError("%s has a damaged ELF header" % what)
        machine, bits, little, text = described
        if (machine, bits) != ARCHITECTURES[architecture] or not little:
            raise ArtifactError(
                "%s is built for %s but this node is %s" % (what, text, architecture)
            )
        return "elf " + text
    if head.startswith(SHEBANG):
        if allow_script:
            return "script"
        raise ArtifactError(
            "%s is a script (starts with #!), not an ELF binary; scripts are accepted only "
            "with allow_script=true, which is meant for test fixtures" % what
        )
    raise ArtifactError("%s is not an ELF binary (first bytes %r)" % (what, head[:8]))


class _Capture:
    """File-like sink: hashes what is written, keeps the first bytes, optionally saves it."""

    def __init__(self, out=None):
        self.out = out
        self.digest = hashlib.sha256()
        self.head = b""
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)


class _Limited:
    """Read at most ``size`` bytes of ``handle`` (one ar member)."""

    def __init__(self, handle, size):
        self.handle = handle
        self.remaining = size

    def read(self, size=-1):
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self.handle.read(size)
        self.remaining -= len(data)
        return data


def _pick_cjdroute(archive, label, sink):
    """Copy the one regular file named cjdroute from a streamed tar into ``sink``."""
    found = []
    for member in archive:
        if posixpath.basename(member.name.rstrip("/")) != BINARY_NAME or not member.isreg():
            continue
        found.append(member.name)
        if len(found) > 1:
            raise ArtifactError(
                "artifact %s holds more than one file named %s (%s); it must hold exactly one"
                % (label, BINARY_NAME, ", ".join(found))
            )
        shutil.copyfileobj(archive.extractfile(member), sink, CHUNK)
    if not found:
        raise ArtifactError("artifact %s holds no regular file named %s" % (label, BINARY_NAME))
    return found[0]


def _read_tar(fileobj, mode, label, sink, what):
    try:
        with tarfile.open(fileobj=fileobj, mode=mode) as archive:
            return _pick_cjdroute(archive, label, sink)
    except ArtifactError:
        raise
    except Exception as exc:  # TarError, EOFError, zlib.error, lzma.LZMAError, ...
        raise ArtifactError("artifact %s: cannot read %s: %s" % (label, what, exc)) from exc


def _deb_data_member(handle, label):
    """Position ``handle`` at the data.tar member of an ar archive; return (name, size)."""
    if handle.read(8) != AR_MAGIC:
        raise ArtifactError("artifact %s is not an ar archive" % label)
    while True:
        header = handle.read(60)
        if not header:
            break
        if len(header) < 60 or header[58:60] != b"`\n":
            raise ArtifactError("artifact %s is a damaged ar archive (bad member header)" % label)
        name = header[:16].decode("ascii", "replace").strip()
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise ArtifactError(
                "artifact %s is a damaged ar archive (bad member size)" % label
            ) from None
        if name.startswith("#1/"):  # BSD ar: the name follows the header
            name_len = int(name[3:])
            name = handle.read(name_len).rstrip(b"\0").decode("ascii", "replace")
            size -= name_len
        name = name.rstrip("/")
        if name.startswith("data.tar"):
            return name, size
        handle.seek(size + size % 2, os.SEEK_CUR)
    raise ArtifactError("artifact %s has no data.tar member; is it a Debian package?" % label)


def _deb_via_dpkg(path, label, sink):
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise ArtifactUnsupportedHere(
            "artifact %s stores its files zstd-compressed (data.tar.zst), which needs Python "
            "3.14+ or dpkg-deb, and this host has neither" % label
        )
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [dpkg_deb, "--fsys-tarfile", path], stdout=subprocess.PIPE, stderr=errors
        )
        try:
            member = _read_tar(proc.stdout, "r|", label, sink, "data.tar.zst")
            while proc.stdout.read(CHUNK):
                pass
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            returncode = proc.wait()
        if returncode != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise ArtifactError(
                "artifact %s: dpkg-deb --fsys-tarfile failed: %s" % (label, message or returncode)
            )
    return member


def _extract_from_deb(path, label, sink):
    with open(path, "rb") as handle:
        name, size = _deb_data_member(handle, label)
        mode = _TAR_MODES.get(name)
        if mode is None:
            raise ArtifactError(
                "artifact %s has a %s member; supported are %s"
                % (label, name, ", ".join(sorted(_TAR_MODES)))
            )
        compression = mode[2:]
        if compression and compression not in tarfile.TarFile.OPEN_METH:
            if compression != "zst":
                raise ArtifactUnsupportedHere(
                    "artifact %s: this Python cannot read %s" % (label, name)
                )
            return "%s:%s" % (name, _deb_via_dpkg(path, label, sink))
        member = _read_tar(_Limited(handle, size), mode, label, sink, name)
        return "%s:%s" % (name, member)


def inspect_artifact(path, label, architecture, allow_script=False, out=None):
    """Find the binary in the artifact at ``path`` and check it for ``architecture``.

    The binary is written to the file object ``out`` when given.  Returns a dict with
    ``format``, ``member`` (where in the archive, or None), ``binary_sha256``, ``size`` and
    ``binary`` (``"elf <machine>"`` or ``"script"``).  Raises ArtifactError.
    """
    fmt = detect_format(path)
    sink = _Capture(out)
    member = None
    if fmt in ("elf", "script"):
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, sink, CHUNK)
    elif fmt == "gzip":
        with open(path, "rb") as handle:
            member = _read_tar(handle, "r|gz", label, sink, "the tar.gz archive")
    elif fmt == "deb":
        member = _extract_from_deb(path, label, sink)
    else:
        raise ArtifactError(
            "artifact %s is neither an ELF binary, a tar.gz archive nor a Debian package "
            "(first bytes %r)" % (label, _head(path, 8))
        )
    what = "artifact %s" % label if member is None else "%s in artifact %s" % (member, label)
    kind = check_binary(sink.head, architecture, what, allow_script)
    return dict(
        format=fmt,
        member=member,
        binary_sha256=sink.digest.hexdigest(),
        size=sink.size,
        binary=kind,
    )


# ------------------------------------------------------------------------------ state


def read_state(state_file):
    """Return the state file's dict, or None when it is missing or unreadable."""
    try:
        with open(state_file, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _want_root():
    return os.geteuid() == 0


def probe_installed(dest, state_file, sha256, architecture=None):
    """Whether ``dest`` holds the binary installed from the artifact with ``sha256``.

    Cheap: reads the state file and hashes ``dest``; never executes anything.  Returns
    ``installed``, ``reason`` (why not, empty when installed), and ``version``,
    ``binary_sha256`` and ``architecture`` as recorded in the state file.  When
    ``architecture`` is given, a binary recorded for another architecture is not installed.
    """
    state = read_state(state_file) or {}
    result = dict(
        installed=False,
        reason="",
        version=state.get("version"),
        binary_sha256=state.get("binary_sha256"),
        architecture=state.get("architecture"),
    )
    if not os.path.lexists(dest):
        result["reason"] = "%s does not exist" % dest
    elif not os.path.isfile(dest):
        result["reason"] = "%s is not a regular file" % dest
    elif not state:
        result["reason"] = "state file %s is missing or unreadable" % state_file
    elif state.get("artifact_sha256") != sha256:
        result["reason"] = "%s was installed from another artifact (sha256 %s)" % (
            dest,
            state.get("artifact_sha256"),
        )
    elif state.get("dest") != dest:
        result["reason"] = "state file %s describes %s" % (state_file, state.get("dest"))
    elif architecture and state.get("architecture") != architecture:
        result["reason"] = "%s was installed for %s, not %s" % (
            dest,
            state.get("architecture"),
            architecture,
        )
    if result["reason"]:
        return result
    st = os.stat(dest)
    actual = sha256_file(dest)
    if actual != state.get("binary_sha256"):
        result["reason"] = "%s was changed since it was installed (sha256 %s, installed %s)" % (
            dest,
            actual,
            state.get("binary_sha256"),
        )
    elif st.st_mode & 0o7777 != BINARY_MODE:
        result["reason"] = "%s has mode %04o instead of %04o" % (
            dest,
            st.st_mode & 0o7777,
            BINARY_MODE,
        )
    elif _want_root() and (st.st_uid, st.st_gid) != (0, 0):
        result["reason"] = "%s is not owned by root:root" % dest
    else:
        result["installed"] = True
    return result


def _makedirs(path):
    """Create ``path`` and missing parents (mode 0755); return the created ones, deepest last."""
    created = []
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        created.append(path)
        path = os.path.dirname(path)
    for directory in reversed(created):
        os.mkdir(directory, DIR_MODE)
        os.chmod(directory, DIR_MODE)
    return list(reversed(created))


def _remove_dirs(created):
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            break


def write_state(state_file, state):
    _makedirs(os.path.dirname(os.path.abspath(state_file)))
    atomic_write(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n",
                 mode=STATE_MODE, root_owned=True)


def _stage_binary(binary, dest):
    """Copy ``binary`` to a new temp file (0755, root) next to ``dest``; return its path."""
    parent = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix="." + os.path.basename(dest) + ".")
    try:
        with os.fdopen(fd, "wb") as handle, open(binary, "rb") as source:
            os.fchmod(handle.fileno(), BINARY_MODE)
            if _want_root():
                os.fchown(handle.fileno(), 0, 0)
            shutil.copyfileobj(source, handle, CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def run_version(binary, label, timeout=VERSION_TIMEOUT):
    """Run ``<binary> --version``; return its first output line or raise ArtifactError."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        proc = subprocess.run(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ArtifactError(
            "the cjdroute from artifact %s did not finish --version within %d seconds"
            % (label, timeout)
        ) from None
    except OSError as exc:
        raise ArtifactError("cannot run the cjdroute from artifact %s: %s" % (label, exc)) from exc
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ArtifactError(
            "the cjdroute from artifact %s failed: --version exited with %d; stderr: %s"
            % (label, proc.returncode, stderr.strip()[:2000] or "(empty)")
        )
    return _first_line(stdout) or _first_line(stderr)


def install_artifact(
    artifact,
    label,
    sha256,
    dest,
    state_file,
    architecture,
    allow_script=False,
    move=None,
    version_timeout=VERSION_TIMEOUT,
):
    """Install the cjdroute from the artifact file ``artifact`` (already on this host).

    Checks the artifact's sha256, extracts and checks the binary (into a temp file beside
    the artifact), copies it to a temp file next to ``dest``, runs ``--version`` there and
    moves it onto ``dest`` with ``move(src, dest)`` (default ``os.replace``), then writes
    the state file.  Nothing next to ``dest`` remains if a check fails.
    """
    sha256 = check_sha256(sha256)
    actual = sha256_file(artifact)
    if actual != sha256:
        raise ArtifactError("artifact %s has sha256 %s, expected %s" % (label, actual, sha256))
    move = move or os.replace
    extracted = None
    try:
        if detect_format(artifact) in ("elf", "script"):
            info = inspect_artifact(artifact, label, architecture, allow_script)
            binary = artifact
        else:
            fd, extracted = tempfile.mkstemp(
                dir=os.path.dirname(os.path.abspath(artifact)), prefix="cjdroute-extracted."
            )
            with os.fdopen(fd, "wb") as out:
                info = inspect_artifact(artifact, label, architecture, allow_script, out=out)
            binary = extracted

        created = _makedirs(os.path.dirname(os.path.abspath(dest)))
        staged = None
        try:
            staged = _stage_binary(binary, dest)
            version = run_version(staged, label, version_timeout)
            move(staged, dest)
        except BaseException:
            if staged is not None and os.path.exists(staged):
                os.unlink(staged)
            _remove_dirs(created)
            raise
    finally:
        if extracted is not None and os.path.exists(extracted):
            os.unlink(extracted)

    os.chmod(dest, BINARY_MODE)
    if _want_root():
        os.chown(dest, 0, 0)
    state = dict(
        artifact_sha256=sha256,
        binary_sha256=info["binary_sha256"],
        dest=dest,
        source=label,
        format=info["format"],
        member=info["member"],
        architecture=architecture,
        version=version,
    )
    write_state(state_file, state)
    return dict(
        changed=True,
        dest=dest,
        version=version,
        binary_sha256=info["binary_sha256"],
        format=info["format"],
        member=info["member"],
    )
