# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is cjdns-specific in installing cjdroute, for the ``meshfleet.mesh.cjdns_binary``
module.

Getting the operator's artifact onto the node is done by stock modules in the ``cjdns``
role (``get_url`` and ``copy``, each checking the artifact's sha256; ``unarchive`` for a
tar.gz; ``apt`` for a .deb).  What no stock module does lives here:

* :func:`query_installed`: whether the installed binary is the one installed from the
  artifact with a given sha256 and is unchanged since (a state file records the artifact
  and binary digests at install time; the binary is hashed, never run);
* :func:`check_binary`: the candidate is an ELF binary for the node's architecture (a
  ``#!`` script only with ``allow_script``, for test fixtures);
* :func:`install_binary`: the candidate is copied beside ``dest``, ``--version`` must exit
  0 there, then it is moved onto ``dest`` in one rename and the state file is written.

Standard library only (besides this collection's ``statefile``), so it runs on any node.
``ArtifactError`` carries a sentence naming the artifact.
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
import tempfile

from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import atomic_write

__all__ = [
    "ARCHITECTURES",
    "ArtifactError",
    "check_binary",
    "check_sha256",
    "deb_binary_path",
    "find_in_tree",
    "install_binary",
    "node_architecture",
    "query_installed",
    "read_state",
    "run_version",
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


class ArtifactError(Exception):
    """The artifact, or the installed binary, fails a check.  The message names it."""


def argument_spec():
    """The options of meshfleet.mesh.cjdns_binary."""
    return dict(
        dest=dict(type="path", default=DEFAULT_DEST),
        sha256=dict(type="str", required=True),
        architecture=dict(type="str", choices=list(ARCHITECTURES)),
        state_file=dict(type="path", default=DEFAULT_STATE_FILE),
        candidate=dict(type="path"),
        deb=dict(type="path"),
        artifact=dict(type="path"),
        source=dict(type="str"),
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
    hint = ""
    if head.startswith(GZIP_MAGIC):
        hint = "; it is gzip data: name a tar.gz artifact *.tar.gz (or give it format: tar.gz)"
    elif head.startswith(AR_MAGIC):
        hint = "; it is an ar archive: name a Debian package *.deb (or give it format: deb)"
    raise ArtifactError("%s is not an ELF binary (first bytes %r)%s" % (what, head[:8], hint))


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


def query_installed(dest, state_file, sha256, architecture=None):
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


def find_in_tree(directory, label):
    """The one regular file named cjdroute under ``directory`` (an unpacked tar.gz)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if name == BINARY_NAME and os.path.isfile(path) and not os.path.islink(path):
                found.append(path)
    if not found:
        raise ArtifactError("artifact %s holds no regular file named %s" % (label, BINARY_NAME))
    if len(found) > 1:
        names = ", ".join(os.path.relpath(path, directory) for path in found)
        raise ArtifactError(
            "artifact %s holds more than one file named %s (%s); it must hold exactly one"
            % (label, BINARY_NAME, names)
        )
    return found[0]


def deb_binary_path(listing, label):
    """The path of the one regular file named cjdroute in ``dpkg-deb --contents`` output."""
    found = []
    for line in listing.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[0].startswith("-"):
            continue  # not a regular file (directory, link) or not a listing line
        path = fields[5]
        if posixpath.basename(path) == BINARY_NAME:
            found.append(posixpath.normpath(posixpath.join("/", path)))
    if len(found) != 1:
        raise ArtifactError(
            "Debian package %s must hold exactly one regular file named %s; it holds %s"
            % (label, BINARY_NAME, ", ".join(found) or "none")
        )
    return found[0]


def read_deb_binary_path(deb, label):
    """Where the Debian package ``deb`` installs cjdroute (read with dpkg-deb)."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise ArtifactError("cannot read Debian package %s: dpkg-deb is not installed" % label)
    proc = subprocess.run(
        [dpkg_deb, "--contents", deb],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(os.environ, LC_ALL="C", LANG="C"),
        check=False,
    )
    if proc.returncode != 0:
        raise ArtifactError(
            "cannot read Debian package %s: %s"
            % (label, proc.stderr.decode("utf-8", "replace").strip() or proc.returncode)
        )
    return deb_binary_path(proc.stdout.decode("utf-8", "replace"), label)


def install_binary(
    candidate,
    label,
    sha256,
    dest,
    state_file,
    architecture,
    allow_script=False,
    artifact=None,
    fmt="binary",
    member=None,
    move=None,
    version_timeout=VERSION_TIMEOUT,
):
    """Install the cjdroute file ``candidate`` (already on this host) at ``dest``.

    When ``artifact`` is given, its sha256 must be ``sha256`` first.  The candidate must be
    a binary for ``architecture``; it is copied to a temp file next to ``dest``, runs
    ``--version`` there and is moved onto ``dest`` with ``move(src, dest)`` (default
    ``os.replace``), then the state file records the artifact and the binary.  Nothing next
    to ``dest`` remains, and ``dest`` is untouched, if a check fails.
    """
    sha256 = check_sha256(sha256)
    if artifact is not None:
        actual = sha256_file(artifact)
        if actual != sha256:
            raise ArtifactError(
                "artifact %s has sha256 %s, expected %s" % (label, actual, sha256)
            )
    what = "artifact %s" % label if member is None else "%s in artifact %s" % (member, label)
    check_binary(_head(candidate), architecture, what, allow_script)
    binary_sha256 = sha256_file(candidate)
    move = move or os.replace
    created = _makedirs(os.path.dirname(os.path.abspath(dest)))
    staged = None
    try:
        staged = _stage_binary(candidate, dest)
        version = run_version(staged, label, version_timeout)
        move(staged, dest)
    except BaseException:
        if staged is not None and os.path.exists(staged):
            os.unlink(staged)
        _remove_dirs(created)
        raise
    os.chmod(dest, BINARY_MODE)
    if _want_root():
        os.chown(dest, 0, 0)
    state = dict(
        artifact_sha256=sha256,
        binary_sha256=binary_sha256,
        dest=dest,
        source=label,
        format=fmt,
        member=member,
        architecture=architecture,
        version=version,
    )
    write_state(state_file, state)
    return dict(changed=True, dest=dest, version=version, binary_sha256=binary_sha256,
                format=fmt, member=member)
