# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one cjdns config model: merge role contributions, then check the result.

Every role that needs something in ``cjdroute.conf`` contributes a *part* (a name and a
partial config).  :func:`merge_parts` merges them in order, :func:`validate_config`
checks the result for the mistakes cjdroute would only report at start (or never), and
:func:`redact` hides secrets before anything is shown.  Pure Python, unit tested.
"""

from __future__ import annotations

import copy
import ipaddress
import json
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
# Strings cjdroute's config reader takes as json.dump writes them: printable ASCII
# without '"' (0x22) and '\\' (0x5c), which json.dump would escape.
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# Linux interface names: at most 15 characters (IFNAMSIZ - 1), not "." or "..".
TUN_NAME = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.-]{1,15}\Z")


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
            owners.setdefault(here, owner)
            _merge_dict(existing, value, here, owner, owners)
        else:
            if isinstance(target.get(key), dict):
                raise ConfigError("%s: part %r sets a value where part %r set a mapping"
                                  % (".".join(here), owner, owners.get(here)))
            if key in target and target[key] != value:
                raise ConfigError("%s: part %r sets %r but part %r already set %r"
                                  % (".".join(here), owner, _show(key, value),
                                     owners.get(here), _show(key, target[key])))
            target[key] = copy.deepcopy(value)
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
        interface = path in (("interfaces", "UDPInterface"), ("interfaces", "ETHInterface"))
        if interface and not isinstance(item.get("connectTo") or {}, dict):
            raise ConfigError("%s[%s].connectTo: part %r must give a mapping"
                              % (".".join(path), item[unique], owner))
        match = next((t for t in target if t.get(unique) == item[unique]), None)
        if match is None:
            # A copy: merging later parts must not change the parts passed in.
            target.append(copy.deepcopy(item))
            owners[path + (item[unique],)] = owner
            for key in item:
                owners[path + (item[unique], key)] = owner
            for peer in (item.get("connectTo") or {}) if interface else ():
                owners[path + (item[unique], "connectTo", peer)] = owner
            continue
        if interface:
            # Two parts may share one interface: their peers are combined.  Conflicts
            # name the part that set the value, not just the one that declared the bind.
            for key, value in item.items():
                here = path + (item[unique], key)
                if key == "connectTo":
                    if not isinstance(match.get("connectTo"), dict):
                        match["connectTo"] = {}
                    for peer, creds in (value or {}).items():
                        old = match["connectTo"].get(peer)
                        if old is not None and old != creds:
                            raise ConfigError("%s[%s].connectTo[%s]: parts %r and %r disagree"
                                              % (".".join(path), item[unique], peer,
                                                 owners.get(here + (peer,)), owner))
                        match["connectTo"][peer] = copy.deepcopy(creds)
                        owners.setdefault(here + (peer,), owner)
                elif key in match and match[key] != value:
                    raise ConfigError("%s[%s].%s: part %r sets %r but part %r set %r"
                                      % (".".join(path), item[unique], key, owner,
                                         _show(key, value), owners.get(here),
                                         _show(key, match[key])))
                else:
                    match[key] = copy.deepcopy(value)
                    owners.setdefault(here, owner)
        elif match != item:
            raise ConfigError("%s: two different entries for %s %r (parts %r and %r)"
                              % (".".join(path), unique, _show(unique, item[unique]),
                                 owners.get(path + (item[unique],)), owner))


def _show(key, value):
    """A value for an error message: secrets hidden, also inside mappings and lists."""
    return "<hidden>" if key in SECRET_KEYS else redact(value)


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
        # Brackets hold an IPv6 address only (cjdroute rejects "[192.0.2.1]:port").
        address = (ipaddress.IPv6Address if match.group(1) else ipaddress.IPv4Address)(host)
    except ValueError:
        raise ConfigError("%s: %r is not an IP address" % (where, host)) from None
    if not 1 <= int(port) <= 65535:
        raise ConfigError("%s: port %s is outside 1-65535" % (where, port))
    return address, int(port)


def _is_int(value, low, high):
    """A JSON integer in [low, high]; bool is not one (json.dump writes true/false)."""
    return type(value) is int and low <= value <= high  # pylint: disable=unidiomatic-typecheck


def _key(value, where):
    try:
        parse_public_key(value)
    except CjdnsKeyError as exc:
        raise ConfigError("%s: %s" % (where, exc)) from None


def _readable(value, where):
    """Refuse what cjdroute's config reader (JsonBencMessageReader.c) gets wrong, as
    measured with cjdroute v21.1: true, false and null stop it at start; a fraction is
    dropped silently (2.5 reads as 2); in strings it knows no escape but \\xNN, so a
    quote, backslash or control character (which json.dump escapes) stops it and a
    non-ASCII character (a \\u escape) is corrupted.  Values are not shown: they may be
    secrets."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not _PLAIN.fullmatch(key):
                raise ConfigError("%s: key %r is not a string cjdroute can read (printable "
                                  "ASCII without quote or backslash)" % (where or "(top)", key))
            if not where:
                _readable(item, key)
            elif re.fullmatch(r"[A-Za-z_]\w*", key):
                _readable(item, "%s.%s" % (where, key))
            else:
                _readable(item, "%s[%s]" % (where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _readable(item, "%s[%d]" % (where, i))
    elif isinstance(value, str):
        if not _PLAIN.fullmatch(value):
            raise ConfigError("%s: cjdroute cannot read this string: only printable ASCII "
                              "without quote or backslash" % where)
    # Exactly int: bool, an int subclass, is not an integer to cjdroute.
    elif type(value) is not int:  # pylint: disable=unidiomatic-typecheck
        shown = json.dumps(value) if isinstance(value, (bool, float, type(None))) else None
        raise ConfigError("%s: cjdroute reads only strings, integers, lists and mappings, "
                          "not %s" % (where, shown or type(value).__name__))


def validate_config(conf):
    """Raise ConfigError for the first problem in an assembled config; return conf."""
    if not re.fullmatch(r"[0-9a-f]{64}", str(conf.get("privateKey", ""))):
        raise ConfigError("privateKey: required, 64 lowercase hexadecimal characters")
    admin = conf.get("admin") or {}
    address, _port = _endpoint(admin.get("bind"), "admin.bind")
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
        bind, _port = _endpoint(iface.get("bind"), where + ".bind")
        if not _is_int(iface.get("beacon", 0), 0, 2):
            raise ConfigError("%s.beacon: must be 0, 1 or 2" % where)
        for peer, creds in (iface.get("connectTo") or {}).items():
            addr, _port = _endpoint(peer, "%s.connectTo" % where)
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
        if not _is_int(iface.get("beacon", 0), 0, 2):
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
                    # A string: ip_address() would also take an int, which cjdroute cannot.
                    addr = ipaddress.ip_address(str(entry[field + "Address"]))
                except ValueError:
                    addr = None
                if not isinstance(entry[field + "Address"], str):
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
                if value is not None and not _is_int(value, 0, width):
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
    _readable(conf, "")
    return conf


def redact(value):
    """A copy of a config with every secret replaced, safe to show in diffs and logs."""
    if isinstance(value, dict):
        return {k: ("<hidden>" if k in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# --------------------------------------------------------------- live tunnel changes
#
# cjdroute reads its config once, at start, and a restart costs every client of a
# gateway its session (measured with cjdns v21.1: about 57 s without traffic).  One kind
# of change can be applied to the running daemon instead: the clients a gateway allows,
# router.ipTunnel.allowedConnections, through the admin API's IpTunnel_allowConnection
# and IpTunnel_removeConnection (cjdns tunnel/IpTunnel_admin.c).  At start cjdroute
# passes each entry to IpTunnel_allowConnection itself, so the same call with the same
# fields gives the same state as a restart.

_ALLOW_FIELDS = ("ip4Address", "ip4Prefix", "ip4Alloc", "ip6Address", "ip6Prefix", "ip6Alloc")
# What IpTunnel_allowConnection takes when a field is not given.
_ALLOW_DEFAULTS = {"ip4Prefix": 32, "ip4Alloc": 32, "ip6Prefix": 128, "ip6Alloc": 128}


def allowed_connections(conf):
    """The router.ipTunnel.allowedConnections list of a config (empty when absent)."""
    router = (conf or {}).get("router") or {}
    return list((router.get("ipTunnel") or {}).get("allowedConnections") or [])


def _without_allowed(conf):
    conf = copy.deepcopy(conf)
    tunnel = (conf.get("router") or {}).get("ipTunnel")
    if isinstance(tunnel, dict):
        tunnel.pop("allowedConnections", None)
        if not tunnel:
            conf["router"].pop("ipTunnel")
    return conf


def tunnel_only_change(current, new):
    """True when the two configs differ, and only inside
    router.ipTunnel.allowedConnections: a change cjdroute can take without a restart."""
    if not isinstance(current, dict) or not isinstance(new, dict) or current == new:
        return False
    return _without_allowed(current) == _without_allowed(new)


def allowed_changes(old, new):
    """Compare two allowedConnections lists by publicKey.

    Returns ``{"added": [key], "removed": [key], "changed": [key]}``: keys only in
    ``new``, keys only in ``old``, and keys whose entry differs, each in list order.
    """
    before = {e.get("publicKey"): e for e in old}
    after = {e.get("publicKey"): e for e in new}
    return {
        "added": [k for k in after if k not in before],
        "removed": [k for k in before if k not in after],
        "changed": [k for k in after if k in before and before[k] != after[k]],
    }


def allow_args(entry):
    """The IpTunnel_allowConnection arguments for an allowedConnections entry, as
    cjdroute's own config reader passes them at start (fields left out take the admin
    function's defaults)."""
    args = {"publicKeyOfAuthorizedNode": entry["publicKey"]}
    args.update((field, entry[field]) for field in _ALLOW_FIELDS if field in entry)
    return args


def _address(text):
    """An address as IpTunnel_showConnection prints it (possibly with brackets, a
    port or a prefix length), in canonical form; None if it is not one."""
    text = str(text).split("/", maxsplit=1)[0]
    if text.startswith("["):
        text = text[1:].split("]")[0]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _grant(fields):
    """What a connection grants, from an entry or an IpTunnel_showConnection reply:
    addresses in canonical form, prefix and alloc with cjdroute's defaults."""
    out = {}
    for family in ("ip4", "ip6"):
        if fields.get(family + "Address") is None:
            continue
        out[family + "Address"] = _address(fields[family + "Address"])
        for suffix in ("Prefix", "Alloc"):
            name = family + suffix
            out[name] = fields.get(name, _ALLOW_DEFAULTS[name])
    return out


def live_tunnel_plan(live, desired):
    """What to call on a running cjdroute so that it allows exactly ``desired``.

    ``live``: its IpTunnel connections, each an IpTunnel_showConnection reply
    (``key``, ``outgoing``, addresses) with its number under ``connection``.
    ``desired``: the new allowedConnections entries.

    Returns ``{"remove": [{"connection": n, "key": key}], "add": [entry]}``: incoming
    connections whose key is no longer allowed, whose addresses differ from the entry
    (removed, then allowed again with the new ones) or that duplicate another for the same
    key; then the entries the daemon does not grant yet.  Outgoing connections (this node
    as a client of another gateway) are never touched.
    """
    want = {e["publicKey"]: _grant(e) for e in desired}
    kept, remove = set(), []
    for conn in sorted(live, key=lambda c: c["connection"]):
        if conn.get("outgoing"):
            continue
        key = conn.get("key")
        if key in want and key not in kept and _grant(conn) == want[key]:
            kept.add(key)
        else:
            remove.append({"connection": conn["connection"], "key": key})
    return {"remove": remove, "add": [e for e in desired if e["publicKey"] not in kept]}
