#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cjdns_config
short_description: Assemble, check and write the one cjdroute.conf of a node
version_added: 0.1.0
description:
  - Merges the config parts that the collection's roles contribute (interfaces, peers,
    authorized passwords, IP tunnel entries) with the node's own key pair, checks the
    result, and only then replaces the live config file.
  - The private key is read on the node from O(private_key_path); it is never passed
    through Ansible and never returned.
  - The admin API password is generated on the node the first time and kept afterwards.
  - The file is strict JSON, owned by root, mode C(0600). An unchanged config is not
    rewritten, so a handler that restarts cjdns runs only when something changed.
  - With O(apply_live), a change only inside C(router.ipTunnel.allowedConnections) (a
    gateway's clients) is also applied to the running cjdroute through its admin API
    (C(IpTunnel_removeConnection), C(IpTunnel_allowConnection)), and RV(restart) says
    that no restart is needed (a restart would cut every client of the gateway off for
    about a minute, cjdns' session reset). Any other change, no running cjdroute, or an
    admin call that fails leaves RV(restart) true. The file is written either way.
options:
  path:
    description: The config file the daemon reads.
    type: path
    default: /etc/cjdns/cjdroute.conf
  private_key_path:
    description: The node's private key, as written by M(meshfleet.mesh.cjdns_keypair).
    type: path
    default: /etc/cjdns/private.key
  parts:
    description:
      - Ordered list of contributions, each C({name, config}). Mappings are merged;
        C(authorizedPasswords), C(UDPInterface), C(ETHInterface), C(allowedConnections)
        and C(outgoingConnections) entries are collected, and two parts that set one
        value differently are an error naming both parts.
    type: list
    elements: dict
    required: true
  apply_live:
    description:
      - Apply a change that is only inside C(router.ipTunnel.allowedConnections) to the
        running cjdroute through its admin API (address and password from the config's
        C(admin) section) instead of asking for a restart.
      - In check mode the running daemon's connections are read (read-only admin calls)
        to tell whether the change would be applied live; nothing is changed.
    type: bool
    default: false
  admin_timeout:
    description: Seconds to wait for each admin API reply with O(apply_live).
    type: float
    default: 3
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Secrets (private key, passwords) are shown as C(<hidden>).
  platform:
    support: full
    platforms: posix
author:
  - meshfleet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write cjdroute.conf from the parts the roles contributed
  meshfleet.mesh.cjdns_config:
    parts:
      - name: cjdns
        config:
          admin: {bind: "127.0.0.1:11234"}
          router: {interface: {type: TUNInterface, tunDevice: cjdns0}}
      - name: gateway
        config:
          router:
            ipTunnel:
              allowedConnections:
                - publicKey: q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k
                  ip4Address: 10.99.0.2
  notify: Restart cjdns
"""

RETURN = r"""
path:
  description: The config file.
  returned: always
  type: str
public_key:
  description: The node's public key.
  returned: always
  type: str
ipv6:
  description: The node's cjdns IPv6 address.
  returned: always
  type: str
restart:
  description:
    - Whether cjdroute must restart to run the config. False when nothing changed and
      when the change was (in check mode, would be) applied live with O(apply_live).
  returned: always
  type: bool
restart_reason:
  description: Why a changed config needs a restart (for example, what else changed).
  returned: when RV(restart) is true
  type: str
live:
  description:
    - What was (in check mode, would be) applied to the running daemon, by public key
      (C(added), C(removed), C(changed) compared with the old file), and the admin calls
      (C(removed_connections), C(allowed_connections)).
  returned: when the change was applied live
  type: dict
  sample: {added: [q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k], removed: [],
           changed: [], removed_connections: 0, allowed_connections: 1}
summary:
  description: Counts of what the config holds.
  returned: always
  type: dict
  sample: {udp_peers: 1, eth_interfaces: 0, authorized_passwords: 1,
           allowed_connections: 2, outgoing_connections: 0}
"""

import json
import secrets

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    check_private_key,
    ipv6_from_public_key,
    public_key_from_private,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_admin import (
    Admin,
    AdminError,
    admin_endpoint,
    tunnel_connections,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_config import (
    SECRET_KEYS,
    ConfigError,
    allow_args,
    allowed_changes,
    allowed_connections,
    live_tunnel_plan,
    merge_parts,
    redact,
    tunnel_only_change,
    validate_config,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.statefile import (
    fix_secret_attributes,
    secret_attributes_wrong,
    write_secret,
)


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _secrets(value):
    """Every secret value (password, privateKey) anywhere in the parts."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_KEYS and item not in (None, "") and not isinstance(item, dict):
                yield str(item)
            else:
                yield from _secrets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item)


def _summary(conf):
    udp = conf.get("interfaces", {}).get("UDPInterface", [])
    tunnel = conf.get("router", {}).get("ipTunnel", {})
    return {
        "udp_peers": sum(len(i.get("connectTo") or {}) for i in udp),
        "eth_interfaces": len(conf.get("interfaces", {}).get("ETHInterface", [])),
        "authorized_passwords": len(conf.get("authorizedPasswords", [])),
        "allowed_connections": len(tunnel.get("allowedConnections", [])),
        "outgoing_connections": len(tunnel.get("outgoingConnections", [])),
    }


def _apply_live(module, current, conf):
    """Apply an allowedConnections-only change to the running cjdroute (check mode: only
    read its connections).  Returns (live result, None) or (None, why a restart is
    needed)."""
    if not module.params["apply_live"]:
        return None, "apply_live is off"
    if current is None:
        return None, "no readable config on the node yet"
    if not tunnel_only_change(current, conf):
        return None, "more than router.ipTunnel.allowedConnections changed"
    desired = allowed_connections(conf)
    live = allowed_changes(allowed_connections(current), desired)
    try:
        admin = Admin(*admin_endpoint(conf.get("admin") or {}),
                      timeout=module.params["admin_timeout"])
    except (OSError, ValueError) as exc:
        return None, "cjdns admin API unusable: %s" % exc
    try:
        plan = live_tunnel_plan(tunnel_connections(admin), desired)
        if not module.check_mode:
            for item in plan["remove"]:
                admin.call("IpTunnel_removeConnection", {"connection": item["connection"]})
            for entry in plan["add"]:
                admin.call("IpTunnel_allowConnection", allow_args(entry))
    except (AdminError, KeyError, TypeError, ValueError) as exc:
        # Not running, or a call failed (part of the plan may be applied): the restart
        # that follows starts from the file, which holds the whole new config.
        return None, "cjdns admin API: %s" % exc
    finally:
        admin.close()
    live.update(removed_connections=len(plan["remove"]), allowed_connections=len(plan["add"]))
    return live, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/cjdns/cjdroute.conf"),
            private_key_path=dict(type="path", default="/etc/cjdns/private.key"),
            parts=dict(type="list", elements="dict", required=True, no_log=True),
            apply_live=dict(type="bool", default=False),
            admin_timeout=dict(type="float", default=3),
        ),
        supports_check_mode=True,
    )
    # parts is no_log so that the peer passwords in it never reach the node's journal.
    # But Ansible then masks every value found in it (0, 1, "cjdns0", host names...)
    # wherever it appears in the result, mangling the public key, the address and error
    # messages.  Mask the secrets only.
    module.no_log_values.clear()
    module.no_log_values.update(_secrets(module.params["parts"]))
    path = module.params["path"]
    try:
        with open(module.params["private_key_path"]) as handle:
            private_key = check_private_key(handle.read().strip())
    except OSError as exc:
        if module.check_mode:
            module.exit_json(changed=True, path=path, public_key="", ipv6="", summary={},
                             restart=True, restart_reason="no key pair yet",
                             msg="no key pair yet (%s); it is made on a real run" % exc.strerror)
        module.fail_json(msg="cannot read the private key %s: %s"
                         % (module.params["private_key_path"], exc.strerror))
    except CjdnsKeyError as exc:
        module.fail_json(msg="%s: %s" % (module.params["private_key_path"], exc))

    module.no_log_values.add(private_key)
    public_key = public_key_from_private(private_key)
    ipv6 = ipv6_from_public_key(public_key)
    current = _read_json(path)
    try:
        conf = merge_parts(module.params["parts"])
        conf["privateKey"] = private_key
        conf["publicKey"] = public_key
        conf["ipv6"] = ipv6
        admin = conf.setdefault("admin", {})
        if not admin.get("password"):
            old = ((current or {}).get("admin") or {}).get("password")
            admin["password"] = old if old and old != "NONE" else secrets.token_hex(16)
        module.no_log_values.add(str(admin["password"]))
        conf.setdefault("version", 2)
        validate_config(conf)
    except ConfigError as exc:
        module.fail_json(msg="cjdroute.conf would be invalid, nothing was changed: %s" % exc)

    result = dict(changed=current != conf, path=path, public_key=public_key, ipv6=ipv6,
                  summary=_summary(conf), restart=current != conf)
    if not result["changed"] and secret_attributes_wrong(path):
        # Same content, but the file holding the private key is readable by others.
        result.update(changed=True, restart=True,
                      restart_reason="the config file's owner or mode was wrong")
        if not module.check_mode:
            fix_secret_attributes(path)
        module.exit_json(**result)
    if result["changed"] and module._diff:
        result["diff"] = dict(
            before_header=path, after_header=path,
            before=json.dumps(redact(current), indent=2, sort_keys=True) + "\n"
            if current is not None else "",
            after=json.dumps(redact(conf), indent=2, sort_keys=True) + "\n")
    if result["changed"] and not module.check_mode:
        # Written first: whatever happens to the live change, a restart (now, or later)
        # runs exactly this config.
        write_secret(module, path, json.dumps(conf, indent=2, sort_keys=True) + "\n",
                     prefix=".cjdroute.conf.")
    if result["changed"]:
        live, reason = _apply_live(module, current, conf)
        if live is None:
            result["restart_reason"] = reason
        else:
            result.update(restart=False, live=live, msg=(
                "%s live through the admin API, no restart: %d added, %d removed, %d "
                "changed allowed connection(s)" % (
                    "would apply" if module.check_mode else "applied",
                    len(live["added"]), len(live["removed"]), len(live["changed"]))))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
