#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cjdns_binary
short_description: Report the installed cjdroute, or check a staged one and swap it in
version_added: 0.1.0
author:
  - meshfleet contributors (!UNKNOWN)
description:
  - The cjdns-specific part of installing C(cjdroute). Getting the operator's artifact to
    the node is left to stock modules (M(ansible.builtin.get_url) and
    M(ansible.builtin.copy), each checking its sha256, M(ansible.builtin.unarchive) for a
    tar.gz, M(ansible.builtin.apt) for a .deb), as the C(cjdns) role does.
  - "Without O(candidate) or O(deb), a query that changes nothing: whether O(dest) holds the
    binary installed from the artifact with O(sha256) for O(architecture). It reads
    O(state_file) and hashes O(dest) (never runs it), and says no when the binary was
    changed since (drift), its mode is not C(0755), its owner not root, or it was installed
    from another artifact. This is the one module execution of a run with nothing to do."
  - "With O(candidate) or O(deb), and when the query says no: the candidate must be an ELF
    binary for O(architecture) (C(amd64) is x86-64, C(arm64) aarch64, C(armhf) 32-bit
    ARM); it is copied to a temporary file next to O(dest) (mode C(0755), owner root),
    C(<temp> --version) must exit 0, and the file is moved onto O(dest) in one rename.
    Then O(state_file) records the artifact's and the binary's sha256. When a check fails,
    O(dest) and O(state_file) are left as they were."
options:
  dest:
    description: Where cjdroute is installed.
    type: path
    default: /usr/local/sbin/cjdroute
  sha256:
    description:
      - SHA-256 of the artifact (the file the operator supplied, not the binary inside an
        archive), 64 hexadecimal characters. O(dest) counts as installed only when it was
        installed from this artifact.
    type: str
    required: true
  architecture:
    description:
      - The node's Debian architecture, which the binary must be built for. The C(cjdns)
        role passes it.
      - When omitted, it is derived on the node from the machine type and the word size of
        its Python (so a 64-bit kernel with a 32-bit userland counts as C(armhf)).
    type: str
    choices: [amd64, arm64, armhf]
  state_file:
    description:
      - JSON file on the node recording which artifact O(dest) was installed from
        (C(artifact_sha256), C(binary_sha256), C(source), C(version), ...).
      - It holds no timestamps, so reinstalling the same artifact writes the same content.
    type: path
    default: /var/lib/meshfleet/cjdns-artifact.json
  candidate:
    description:
      - The new cjdroute, already on the node, to install at O(dest) when the query says
        it is not installed.
      - A file (a raw binary artifact), or a directory (an unpacked tar.gz) that must hold
        exactly one regular file named C(cjdroute), at any depth.
      - Mutually exclusive with O(deb).
    type: path
  deb:
    description:
      - A Debian package, on the node, that M(ansible.builtin.apt) installed. The candidate
        is the one regular file named C(cjdroute) it holds (read with C(dpkg-deb
        --contents)), installed where the package put it; it is copied to O(dest).
      - Mutually exclusive with O(candidate).
    type: path
  artifact:
    description:
      - The artifact file on the node. When given, its sha256 must be O(sha256) before
        anything is installed (a second check after the transfer).
    type: path
  source:
    description:
      - The artifact as messages and O(state_file) name it (its URL without credentials, or
        its controller path).
    type: str
  allow_script:
    description:
      - Accept an executable script starting with C(#!) instead of an ELF binary.
      - B(For test fixtures only), such as the cjdroute stand-in used in CI. Never set it for
        a real fleet.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The query runs; an install reports C(changed) without reading the candidate or
        writing anything.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Run it with C(become) so that O(dest) and O(state_file) can be written and owned by root.
  - Only the standard library is needed on the node; O(deb) needs C(dpkg-deb).
seealso:
  - module: ansible.builtin.get_url
  - module: ansible.builtin.unarchive
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: Read the installed cjdroute
  meshfleet.mesh.cjdns_binary:
    sha256: "{{ artifact_sha256 }}"
    architecture: arm64
  register: cjdroute

- name: Swap in the cjdroute unpacked from the tar.gz
  meshfleet.mesh.cjdns_binary:
    sha256: "{{ artifact_sha256 }}"
    architecture: arm64
    artifact: /var/cache/meshfleet/cjdroute/artifact.tar.gz
    candidate: /var/cache/meshfleet/cjdroute/unpacked
    source: https://artifacts.example.net/cjdns/v22.1/cjdroute-arm64.tar.gz
  when: not cjdroute.installed
  become: true
"""

RETURN = r"""
installed:
  description:
    - Whether O(dest) held the binary installed from this artifact, unchanged, before the
      task (the query's answer).
  returned: success
  type: bool
  sample: true
reason:
  description: Why O(dest) is not installed from this artifact; empty when it is.
  returned: success
  type: str
  sample: /usr/local/sbin/cjdroute was installed from another artifact (sha256 0f1e...)
dest:
  description: Where the binary is installed.
  returned: success
  type: str
  sample: /usr/local/sbin/cjdroute
version:
  description:
    - First line of C(cjdroute --version), run when the binary was installed; the query
      reads it from O(state_file) (the binary is not run).
  returned: success, when known
  type: str
  sample: "Cjdns version: cjdns-v22.1"
binary_sha256:
  description: SHA-256 of the installed binary (for an archive, not the artifact's).
  returned: success, when known
  type: str
  sample: 9f2c7e8f1a0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
architecture:
  description: The node architecture the binary is checked against.
  returned: success
  type: str
  sample: arm64
format:
  description: How the binary was found, C(binary), C(tar.gz) or C(deb).
  returned: changed
  type: str
  sample: tar.gz
member:
  description: Where C(cjdroute) was found inside an archive artifact; null for a raw binary.
  returned: changed
  type: str
  sample: cjdns-v22.1/cjdroute
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import (
    ArtifactError,
    argument_spec,
    check_sha256,
    find_in_tree,
    install_binary,
    node_architecture,
    query_installed,
    read_deb_binary_path,
)


def _candidate(params, label):
    """(path of the new binary, format, member) from O(candidate) or O(deb)."""
    if params["deb"]:
        path = read_deb_binary_path(params["deb"], label)
        return path, "deb", path
    candidate = params["candidate"]
    if os.path.isdir(candidate):
        path = find_in_tree(candidate, label)
        return path, "tar.gz", os.path.relpath(path, candidate)
    if not os.path.isfile(candidate):
        raise ArtifactError("the cjdroute from artifact %s is not on the node at %s"
                            % (label, candidate))
    return candidate, "binary", None


def run_module(module):
    params = module.params
    dest = params["dest"]
    label = params["source"] or params["artifact"] or params["candidate"] or params["deb"] or dest
    result = dict(changed=False, dest=dest, installed=False)
    try:
        sha256 = check_sha256(params["sha256"])
        architecture = params["architecture"] or node_architecture()
        result["architecture"] = architecture
        found = query_installed(dest, params["state_file"], sha256, architecture)
        result.update(installed=found["installed"], reason=found["reason"])
        for key in ("version", "binary_sha256"):
            if found[key]:
                result[key] = found[key]
        if found["installed"] or not (params["candidate"] or params["deb"]):
            return result
        result["changed"] = True
        if module.check_mode:
            return result
        path, fmt, member = _candidate(params, label)
        result.update(
            install_binary(
                path,
                label,
                sha256,
                dest,
                params["state_file"],
                architecture,
                allow_script=params["allow_script"],
                artifact=params["artifact"],
                fmt=fmt,
                member=member,
                move=lambda src, dst: module.atomic_move(src, dst, keep_dest_attrs=False),
            )
        )
        return result
    except ArtifactError as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(
            msg="installing cjdroute from artifact %s failed: %s" % (label, exc), **result
        )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("candidate", "deb")],
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
