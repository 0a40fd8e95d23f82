#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cjdns_install
short_description: Install cjdroute from an operator-supplied artifact pinned by sha256
version_added: 0.1.0
author:
  - meshfleet contributors (!UNKNOWN)
description:
  - Installs the C(cjdroute) binary at O(dest) from an artifact the operator provides, given as
    a controller path (O(src)) or a URL (O(url)) and pinned by its SHA-256 digest (O(sha256)).
    This collection ships no cjdns code or binary.
  - "Artifact formats, detected by their first bytes: a raw ELF binary; a gzip-compressed tar
    archive holding exactly one regular file named C(cjdroute) (at any depth); a Debian
    package, from whose C(data.tar.gz), C(data.tar.xz), C(data.tar.bz2), C(data.tar) or
    C(data.tar.zst) only the file named C(cjdroute) is taken. The package is never installed
    with C(dpkg): the C(cjdns) role ships its own systemd unit."
  - The binary must be an ELF file for O(architecture) (C(amd64) is x86-64, C(arm64) is
    aarch64, C(armhf) is 32-bit ARM); otherwise the task fails naming the artifact, the
    binary's machine and the node's architecture, before anything is written.
  - "Cost on the node: the module first runs in a cheap probe mode that reads O(state_file)
    and hashes O(dest), without running it. If O(dest) was installed from the artifact with
    this O(sha256) and still has the recorded content, mode C(0755) and owner C(root), the
    task is C(ok) after that one module execution and nothing is transferred."
  - Otherwise a URL artifact is downloaded on the controller into O(cache_dir), once for
    the whole fleet, and checked against O(sha256); a O(src) artifact is checked likewise.
    In check mode the task stops here and reports C(changed).
  - The artifact is then transferred to the node, checked again (sha256, format,
    architecture), the binary is written to a temporary file next to O(dest) (mode C(0755),
    owner C(root)), C(<temp> --version) must exit 0, and the file is moved onto O(dest)
    atomically. Finally O(state_file) records the artifact and binary digests.
  - Nothing is written next to O(dest) or to O(state_file) when any check fails.
options:
  src:
    description:
      - Path of the artifact on the controller. A relative path is looked up in the role's or
        playbook's C(files/) directory.
      - Exactly one of O(src) and O(url) is required.
    type: path
  url:
    description:
      - HTTP(S) URL of the artifact. It is downloaded by the controller, never by the nodes.
      - Exactly one of O(src) and O(url) is required.
    type: str
  sha256:
    description:
      - SHA-256 digest of the artifact file (not of the binary inside it), 64 hexadecimal
        characters. Required, checked on the controller and again on the node.
    type: str
    required: true
  dest:
    description: Where the binary is installed on the node.
    type: path
    default: /usr/local/sbin/cjdroute
  architecture:
    description:
      - The node's Debian architecture, which the artifact must be built for. The C(cjdns)
        role passes it.
      - When omitted, it is derived on the node from the machine type and the word size of
        its Python (so a 64-bit kernel with a 32-bit userland counts as C(armhf)).
    type: str
    choices: [amd64, arm64, armhf]
  cache_dir:
    description:
      - Controller directory that caches downloads from O(url), as C(<cache_dir>/<sha256>).
      - Concurrent forks share one download through a lock file.
    type: path
    default: ~/.cache/meshfleet/artifacts
  state_file:
    description:
      - JSON file on the node recording which artifact O(dest) was installed from
        (C(artifact_sha256), C(binary_sha256), C(source), C(version), ...).
      - It holds no timestamps, so reinstalling the same artifact writes the same content.
    type: path
    default: /var/lib/meshfleet/cjdns-artifact.json
  validate_certs:
    description: Verify TLS certificates when downloading O(url).
    type: bool
    default: true
  url_timeout:
    description: Timeout in seconds for connecting to and reading from O(url).
    type: int
    default: 60
  allow_script:
    description:
      - Accept an executable script starting with C(#!) instead of an ELF binary.
      - B(For test fixtures only), such as the cjdroute stand-in used in CI. Never set it for
        a real fleet.
    type: bool
    default: false
  _probe:
    description:
      - Internal use only, set by the action plugin (which refuses it in a task) for its
        first module execution on the node, the probe, which changes nothing.
    type: bool
    default: false
  _artifact:
    description:
      - Internal use only, set by the action plugin (which refuses it in a task) to the
        path of the artifact it transferred to the node.
    type: str
  _source:
    description:
      - Internal use only, set by the action plugin (which refuses it in a task) to the
        artifact's O(url) (credentials masked) or O(src), as messages and O(state_file)
        name it.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - The probe runs on the node and a URL artifact is downloaded and verified on the
        controller, but nothing is transferred or written on the node.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Run it with C(become) so that O(dest) and O(state_file) can be written and owned by root.
  - Only the standard library is needed on the node. A C(data.tar.zst) package member is read
    with Python 3.14+ or, on older Pythons, through C(dpkg-deb --fsys-tarfile).
seealso:
  - module: ansible.builtin.get_url
"""

EXAMPLES = r"""
- name: Install cjdroute from the fleet's pinned release artifact
  meshfleet.mesh.cjdns_install:
    url: "https://artifacts.example.net/cjdns/v22.1/cjdroute-{{ cjdns_arch }}.tar.gz"
    sha256: "{{ cjdns_artifact_sha256[cjdns_arch] }}"
    architecture: "{{ cjdns_arch }}"
  become: true
  register: cjdroute

- name: Install from a Debian package kept on the controller
  meshfleet.mesh.cjdns_install:
    src: artifacts/cjdns_22.1-1_arm64.deb
    sha256: 3b7f5c1e0d2a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706
    architecture: arm64
  become: true

- name: Show what is installed
  ansible.builtin.debug:
    msg: "{{ cjdroute.dest }}: {{ cjdroute.version }}"
"""

RETURN = r"""
dest:
  description: Where the binary is installed.
  returned: success
  type: str
  sample: /usr/local/sbin/cjdroute
version:
  description:
    - First line of C(cjdroute --version), run when the binary was installed; on a no-op run
      it is read from O(state_file) (the binary is not run).
    - Not returned in check mode when an install is pending.
  returned: success, unless an install is pending in check mode
  type: str
  sample: "Cjdns version: cjdns-v22.1"
binary_sha256:
  description:
    - SHA-256 of the installed binary (the C(cjdroute) file itself, which differs from the
      artifact's for archives).
    - In check mode, the binary that would be installed.
  returned: success
  type: str
  sample: 9f2c7e8f1a0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
sha256:
  description: SHA-256 of the artifact.
  returned: success
  type: str
  sample: 3b7f5c1e0d2a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706
architecture:
  description: The node architecture the binary was checked against.
  returned: success
  type: str
  sample: arm64
source:
  description: The artifact, as its O(url) or O(src).
  returned: success
  type: str
  sample: https://artifacts.example.net/cjdns/v22.1/cjdroute-arm64.tar.gz
probe:
  description:
    - True when the task ended after the probe, that is O(dest) was already installed from
      this artifact and only that one module execution ran on the node.
  returned: success
  type: bool
  sample: true
reason:
  description: Why the binary is (or in check mode would be) installed.
  returned: changed
  type: str
  sample: /usr/local/sbin/cjdroute was installed from another artifact (sha256 0f1e...)
cached:
  description:
    - For a O(url) artifact, whether it was already in O(cache_dir) (downloaded earlier or by
      another fork for another host) rather than downloaded by this task.
  returned: changed, with O(url)
  type: bool
  sample: true
format:
  description: The artifact's format, C(elf), C(gzip), C(deb) or C(script).
  returned: changed
  type: str
  sample: deb
member:
  description: Where C(cjdroute) was found inside an archive artifact; null for a raw binary.
  returned: changed
  type: str
  sample: data.tar.xz:./usr/bin/cjdroute
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import (
    ArtifactError,
    check_sha256,
    install_artifact,
    node_architecture,
    probe_installed,
    public_argument_spec,
)


def module_argument_spec():
    # The documented options, as the action plugin validates them on the controller (it
    # never passes the controller-side src and cache_dir on to the node, where they are
    # unused), and the internal ones it sets.
    spec = public_argument_spec()
    spec.update(
        _probe=dict(type="bool", default=False),
        _artifact=dict(type="str"),
        _source=dict(type="str"),
    )
    return spec


def run_module(module):
    params = module.params
    dest = params["dest"]
    state_file = params["state_file"]
    label = params["_source"] or params["url"] or params["src"] or "(unnamed)"
    result = dict(changed=False, dest=dest, source=label)
    try:
        sha256 = check_sha256(params["sha256"])
        result["sha256"] = sha256
        if params["_probe"]:
            found = probe_installed(dest, state_file, sha256, params["architecture"])
            result.update(found, probe=True)
            if params["architecture"]:
                result["architecture"] = params["architecture"]
            elif not found["installed"]:
                # The controller needs it to check the artifact before transferring it.
                result["architecture"] = node_architecture()
            return result
        if not params["_artifact"]:
            raise ArtifactError(
                "meshfleet.mesh.cjdns_install runs through its action plugin, which sets "
                "_probe or _artifact; it cannot run on its own"
            )
        if module.check_mode:
            raise ArtifactError("internal error: install requested in check mode")
        architecture = params["architecture"] or node_architecture()
        result["architecture"] = architecture
        result.update(
            install_artifact(
                params["_artifact"],
                label,
                sha256,
                dest,
                state_file,
                architecture,
                allow_script=params["allow_script"],
                move=lambda src, dst: module.atomic_move(src, dst, keep_dest_attrs=False),
            ),
            probe=False,
        )
        return result
    except ArtifactError as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(
            msg="installing cjdroute from artifact %s failed: %s" % (label, exc), **result
        )


def main():
    module = AnsibleModule(argument_spec=module_argument_spec(), supports_check_mode=True)
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
