# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one cjdns config model: merge role contributions, then check the result.

Every role that needs something in ``cjdroute.conf`` contributes a *part* (a name and a
partial config).  :func:`merge_parts` merges them in order, :func:`validate_config`
checks the result for the mistakes cjdroute would only report at start (or never), and
:func:`redact` hides secrets before anything is shown.  Pure Python, unit tested.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    CjdnsKeyError,
    parse_public_key,
)

# Lists of records that parts may extend; the key that makes a record unique.
_LIST_KEYS = {
    ("authorizedPasswords",): "user",
    ("interfaces", "UDPInterface"): "bind",
    ("interfaces", "ETHInterface"): "bind",
    ("router", "ipTunnel", "allowedConnections"): "publicKey",
    ("router", "ipTunnel", "outgoingConnections"): None,
}
SECRET_KEYS = {"privateKey", "password"}
TUN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class ConfigError(ValueError):
    """A contribution or an assembled config is not acceptable."""


def _merge_dict(target, source, path, owner, owners):
    for key, value in source.items():
        here = path + (key,)
        if here in _LIST_KEYS:
            _merge_list(target.setdefault(key, []), value, here, owner, owners)
        elif isinstance(value, dict):
            existing = target.setdefault(key, {})
            if not isinstance(existing, dict):
                raise ConfigError("%s: part %r sets a mapping where part %r set a value"
                                  % (".".join(here), owner, owners.get(here)))
            _merge_dict(existing, value, here, owner, owners)
        else:
            if key in target and target[key] != value:
                raise ConfigError("%s: part %r sets %r but part %r already set %r"
                                  % (".".join(here), owner, _show(key, value),
                                     owners.get(here), _show(key, target[key])))
            target[key] = value
            owners[here] = owner


def _merge_list(target, items, path, owner, owners):
    if not isinstance(items, list):
        raise ConfigError("%s: part %r must give a list" % (".".join(path), owner))
    unique = _LIST_KEYS[path]
    for item in items:
        if unique is None:
            if item not in target:
                target.append(item)
            continue
        if not isinstance(item, dict) or unique not in item:
            raise ConfigError("%s: every entry from part %r needs %r"
                              % (".".join(path), owner, unique))
        match = next((t for t in target if t.get(unique) == item[unique]), None)
        if match is None:
            target.append(dict(item))
            owners[path + (item[unique],)] = owner
            continue
        if path == ("interfaces", "UDPInterface") or path == ("interfaces", "ETHInterface"):
            # Two parts may share one interface: their peers are combined.
            for key, value in item.items():
                if key == "connectTo":
                    for peer, creds in value.items():
                        old = match.setdefault("connectTo", {}).get(peer)
                        if old is not None and old != creds:
                            raise ConfigError("%s[%s].connectTo[%s]: parts %r and %r disagree"
                                              % (".".join(path), item[unique], peer,
                                                 owners.get(path + (item[unique],)), owner))
                        match["connectTo"][peer] = creds
                elif key in match and match[key] != value:
                    raise ConfigError("%s[%s].%s: part %r sets %r but part %r set %r"
                                      % (".".join(path), item[unique], key, owner, value,
                                         owners.get(path + (item[unique],)), match[key]))
                else:
                    match[key] = value
        elif match != item:
            raise ConfigError("%s: two different entries for %s %r (parts %r and %r)"
                              % (".".join(path), unique, _show(unique, item[unique]),
                                 owners.get(path + (item[unique],)), owner))


def _show(key, value):
    return "<hidden>" if key in SECRET_KEYS else value


def merge_parts(parts):
    """Merge ``[{"name": str, "config": dict}, ...]`` in order into one config dict."""
    config, owners, names = {}, {}, set()
    for part in parts:
        name = part.get("name")
        if not name or not isinstance(part.get("config"), dict):
            raise ConfigError("every part needs a 'name' and a 'config' mapping, got %r"
                              % sorted(part))
        if name in names:
            raise ConfigError("part %r is contributed twice" % name)
        names.add(name)
        _merge_dict(config, part["config"], (), name, owners)
    return config


def _endpoint(text, where):
    """Parse 'IPv4:port' or '[IPv6]:port'; return (ip, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([0-9.]+):(\d+)", str(text))
    if not match:
        raise ConfigError("%s: %r is not IPv4:port or [IPv6]:port" % (where, text))
    host, port = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("%s: %r is not an IP address" % (where, host)) from None
    if not 1 <= int(port) <= 65535:
        raise ConfigError("%s: port %s is outside 1-65535" % (where, port))
    return address, int(port)


def _key(value, where):
    try:
        parse_public_key(value)
    except CjdnsKeyError as exc:
        raise ConfigError("%s: %s" % (where, exc)) from None


def validate_config(conf):
    """Raise ConfigError for the first problem in an assembled config; return conf."""
    if not re.fullmatch(r"[0-9a-f]{64}", str(conf.get("privateKey", ""))):
        raise ConfigError("privateKey: required, 64 lowercase hexadecimal characters")
    admin = conf.get("admin") or {}
    address, _ = _endpoint(admin.get("bind"), "admin.bind")
    if not address.is_loopback:
        raise ConfigError("admin.bind: %s is not a loopback address; the admin API must "
                          "not be reachable from the mesh" % admin.get("bind"))
    if not admin.get("password") or admin.get("password") == "NONE":
        raise ConfigError("admin.password: a real password is required")
    users = set()
    for i, entry in enumerate(conf.get("authorizedPasswords", [])):
        where = "authorizedPasswords[%d]" % i
        if not entry.get("password"):
            raise ConfigError("%s: password is empty" % where)
        if entry.get("user") in users:
            raise ConfigError("%s: user %r appears twice" % (where, entry.get("user")))
        users.add(entry.get("user"))
    for i, iface in enumerate(conf.get("interfaces", {}).get("UDPInterface", [])):
        where = "interfaces.UDPInterface[%d]" % i
        bind, _ = _endpoint(iface.get("bind"), where + ".bind")
        if iface.get("beacon", 0) not in (0, 1, 2):
            raise ConfigError("%s.beacon: must be 0, 1 or 2" % where)
        for peer, creds in (iface.get("connectTo") or {}).items():
            addr, _ = _endpoint(peer, "%s.connectTo" % where)
            if addr.version != bind.version:
                raise ConfigError("%s.connectTo: %s is IPv%d but the interface binds IPv%d"
                                  % (where, peer, addr.version, bind.version))
            _key(creds.get("publicKey"), "%s.connectTo[%s].publicKey" % (where, peer))
            if not creds.get("password"):
                raise ConfigError("%s.connectTo[%s]: password is empty" % (where, peer))
    for i, iface in enumerate(conf.get("interfaces", {}).get("ETHInterface", [])):
        where = "interfaces.ETHInterface[%d]" % i
        if not TUN_NAME.match(str(iface.get("bind", ""))):
            raise ConfigError("%s.bind: %r is not an interface name" % (where, iface.get("bind")))
        if iface.get("beacon", 0) not in (0, 1, 2):
            raise ConfigError("%s.beacon: must be 0, 1 or 2" % where)
    router = conf.get("router", {})
    tun = router.get("interface", {}).get("tunDevice")
    if tun is not None and not TUN_NAME.match(str(tun)):
        raise ConfigError("router.interface.tunDevice: %r is not a valid interface name" % tun)
    tunnel = router.get("ipTunnel", {})
    seen_keys, seen_addrs = {}, {}
    for i, entry in enumerate(tunnel.get("allowedConnections", [])):
        where = "router.ipTunnel.allowedConnections[%d]" % i
        _key(entry.get("publicKey"), where + ".publicKey")
        if entry["publicKey"] in seen_keys:
            raise ConfigError("%s: publicKey %s is already allowed at index %d"
                              % (where, entry["publicKey"], seen_keys[entry["publicKey"]]))
        seen_keys[entry["publicKey"]] = i
        if "ip4Address" not in entry and "ip6Address" not in entry:
            raise ConfigError("%s: needs ip4Address or ip6Address" % where)
        for field, version, width in (("ip4", 4, 32), ("ip6", 6, 128)):
            if field + "Address" in entry:
                try:
                    addr = ipaddress.ip_address(entry[field + "Address"])
                except ValueError:
                    addr = None
                if addr is None or addr.version != version:
                    raise ConfigError("%s.%sAddress: %r is not an IPv%d address"
                                      % (where, field, entry[field + "Address"], version))
                if addr in seen_addrs:
                    raise ConfigError("%s: address %s is already given at index %d"
                                      % (where, addr, seen_addrs[addr]))
                seen_addrs[addr] = i
            for suffix in ("Prefix", "Alloc"):
                value = entry.get(field + suffix)
                if value is not None and (type(value) is not int or not 0 <= value <= width):
                    raise ConfigError("%s.%s%s: must be an integer 0-%d"
                                      % (where, field, suffix, width))
    own = conf.get("publicKey")
    outgoing = tunnel.get("outgoingConnections", [])
    for i, key in enumerate(outgoing):
        where = "router.ipTunnel.outgoingConnections[%d]" % i
        _key(key, where)
        if key == own:
            raise ConfigError("%s: a node cannot use itself as its gateway" % where)
        if outgoing.index(key) != i:
            raise ConfigError("%s: %s is listed twice" % (where, key))
    return conf


def redact(value):
    """A copy of a config with every secret replaced, safe to show in diffs and logs."""
    if isinstance(value, dict):
        return {k: ("<hidden>" if k in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
