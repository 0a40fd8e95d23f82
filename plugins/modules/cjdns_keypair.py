# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cjdns_keypair
short_description: Ensure a node has a cjdns private key file and report its public key
version_added: 0.1.0
author:
  - meshfleet contributors (!UNKNOWN)
description:
  - Makes sure the cjdns private key file at O(path) exists, holds a valid key and is
    mode C(0600) owned by C(root:root), and returns the node's public key and IPv6 address.
  - If the file exists and holds a valid key, that key is kept; only its mode and owner are
    corrected if needed.
  - If the file is missing, the key given in O(private_key) is written, or, without one, a new
    key is generated on the node the way C(cjdroute --genconf) does (random keys until the
    address starts with C(fc)).
  - A supplied O(private_key) that differs from the stored one is an error unless O(force=true),
    because replacing a key changes the node's identity and address.
  - The private key is never returned or logged. Files are written to a temporary file in the
    same directory and moved into place atomically.
  - Ownership is set to C(root:root) only when the module runs as root (use C(become)).
options:
  path:
    description:
      - The private key file. It holds the key as 64 hexadecimal characters and a newline.
      - A missing parent directory is created with mode C(0700).
    type: path
    default: /etc/cjdns/private.key
  private_key:
    description:
      - The private key to install, 64 hexadecimal characters, typically from Ansible Vault.
      - Its address must start with C(fc), as cjdns requires.
      - If omitted, an existing key is kept and a missing one is generated.
    type: str
  force:
    description:
      - Replace the stored key with O(private_key) when they differ, or when the stored file
        does not hold a valid key.
      - Without it such a difference fails the task and leaves the file alone.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - A key that would be generated cannot be known in check mode, so RV(public_key) and
        RV(ipv6) are empty strings and RV(check_mode_pending) is true.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - The cjdns primitives run in pure Python; the C(cryptography) package is used for X25519
    when it is installed on the node, a pure-Python implementation otherwise.
seealso:
  - plugin: meshfleet.mesh.cjdns_public_key
    plugin_type: filter
  - plugin: meshfleet.mesh.cjdns_ipv6
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Make sure the node has a key (generate one on first run)
  meshfleet.mesh.cjdns_keypair:
  become: true
  register: cjdns_key

- name: Show the node's mesh address
  ansible.builtin.debug:
    msg: "{{ cjdns_key.public_key }} is {{ cjdns_key.ipv6 }}"

- name: Install the key kept in Ansible Vault
  meshfleet.mesh.cjdns_keypair:
    path: /etc/cjdns/private.key
    private_key: "{{ vault_cjdns_private_key }}"
  become: true

- name: Replace the node's key (changes its identity and address)
  meshfleet.mesh.cjdns_keypair:
    private_key: "{{ vault_cjdns_private_key }}"
    force: true
  become: true
"""

RETURN = r"""
public_key:
  description:
    - The node's cjdns public key.
    - Empty in check mode when the key would be generated.
  returned: success
  type: str
  sample: q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k
ipv6:
  description:
    - The node's cjdns IPv6 address, full form.
    - Empty in check mode when the key would be generated.
  returned: success
  type: str
  sample: fcfb:a2bb:0db5:f5d0:83d6:c0b7:a756:94c8
path:
  description: The private key file.
  returned: success
  type: str
  sample: /etc/cjdns/private.key
generated:
  description: Whether a new key was (or, in check mode, would be) generated.
  returned: success
  type: bool
  sample: false
check_mode_pending:
  description: True in check mode when the key would be generated, so it is not known yet.
  returned: in check mode, when a key would be generated
  type: bool
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    check_private_key,
    generate_keypair,
    ipv6_from_public_key,
    public_key_from_private,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import (
    fix_secret_attributes,
    secret_attributes_wrong,
    write_secret,
)

MAX_READ = 4096


def _read_key(module, path):
    """Return (normalized key or None, error message or None) for an existing file."""
    if not os.path.isfile(path):
        module.fail_json(msg=f"{path} exists but is not a regular file", path=path)
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            content = handle.read(MAX_READ)
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {to_native(exc)}", path=path)
    if len(content.strip()) >= 32:  # mask anything key-like, just in case
        module.no_log_values.add(content.strip())
    try:
        key = check_private_key(content)
    except CjdnsKeyError as exc:
        return None, to_native(exc)
    module.no_log_values.add(key)
    return key, None


def _address_of(private_hex):
    return ipv6_from_public_key(public_key_from_private(private_hex))


def ensure_keypair(module):
    """Bring the key file to the wanted state; return the result dict (no private key)."""
    path = module.params["path"]
    force = module.params["force"]
    supplied = module.params["private_key"]
    result = {"changed": False, "generated": False, "path": path, "public_key": "", "ipv6": ""}

    if supplied is not None:
        try:
            supplied = check_private_key(supplied)
        except CjdnsKeyError as exc:
            module.fail_json(msg=f"private_key: {to_native(exc)}", **result)
        module.no_log_values.add(supplied)

    stored, problem = (None, None)
    exists = os.path.lexists(path)
    if exists:
        stored, problem = _read_key(module, path)

    if stored is not None and (supplied is None or supplied == stored):
        # Keep the stored key; only correct mode and owner.
        key = stored
        if secret_attributes_wrong(path):
            result["changed"] = True
            if not module.check_mode:
                fix_secret_attributes(path)
    else:
        if stored is not None and not force:
            module.fail_json(
                msg=f"{path} holds a different private key (address {_address_of(stored)}) "
                f"than the supplied private_key (address {_address_of(supplied)}); "
                "set force=true to replace the node's key",
                **result,
            )
        if problem is not None and not (supplied is not None and force):
            module.fail_json(
                msg=f"{path} does not hold a valid cjdns private key: {problem}; fix or remove "
                "the file, or supply private_key with force=true",
                **result,
            )
        result["changed"] = True
        if supplied is not None:
            key = supplied
        elif module.check_mode:
            result.update({"generated": True, "check_mode_pending": True})
            return result
        else:
            key = generate_keypair()[0]
            module.no_log_values.add(key)
            result["generated"] = True
        if not module.check_mode:
            try:
                write_secret(module, path, key + "\n", prefix=".cjdns-private-key.")
            except OSError as exc:
                module.fail_json(msg=f"cannot write {path}: {to_native(exc)}", **result)

    result["public_key"] = public_key_from_private(key)
    result["ipv6"] = ipv6_from_public_key(result["public_key"])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/cjdns/private.key"},
            "private_key": {"type": "str", "no_log": True},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    module.exit_json(**ensure_keypair(module))


if __name__ == "__main__":
    main()
