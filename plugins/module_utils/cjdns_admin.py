# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for cjdroute's admin API (bencode over UDP, cookie + sha256 auth).

Protocol (cjdns admin/Admin.c): ask for a cookie, send ``{q: auth, aq: FUNCTION, args,
cookie, txid, hash: sha256(password + cookie)}``, then replace ``hash`` by the sha256 of
that whole bencoded request.  cjdroute builds ``password + cookie`` in a 64-byte buffer
(snprintf), so only its first 63 bytes count.  Replies may carry zero-padded string
lengths.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket

# The public key at the end of a peerStats ``addr`` (v21.0000.0000.0000.0013.<key>.k).
PEER_KEY = re.compile(r"([0-9a-z]{52}\.k)$")


def peer_key(addr):
    """The public key of a peer from its peerStats ``addr``, or None."""
    match = PEER_KEY.search(addr or "")
    return match.group(1) if match else None


class AdminError(Exception):
    """The admin API did not answer, or answered with an error."""


def bencode(value):
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError("cannot bencode %r" % type(value))


def bdecode(data, index=0):
    """Return (value, next index).  Byte strings that are not UTF-8 become hex."""
    head = data[index:index + 1]
    if head == b"i":
        end = data.index(b"e", index)
        return int(data[index + 1:end]), end + 1
    if head in (b"l", b"d"):
        index += 1
        items = []
        while data[index:index + 1] != b"e":
            item, index = bdecode(data, index)
            items.append(item)
        if head == b"l":
            return items, index + 1
        return dict(zip(items[::2], items[1::2], strict=True)), index + 1
    colon = data.index(b":", index)
    length = int(data[index:colon])
    raw = data[colon + 1:colon + 1 + length]
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.hex()
    return text, colon + 1 + length


def admin_settings(config_path):
    """(host, port, password) from cjdroute.conf's admin section."""
    with open(config_path) as handle:
        return admin_endpoint(json.load(handle).get("admin", {}))


def admin_endpoint(admin):
    """(host, port, password) from a config's ``admin`` mapping."""
    host, _sep, port = admin.get("bind", "127.0.0.1:11234").rpartition(":")
    return host.strip("[]"), int(port), admin.get("password", "")


class Admin:
    def __init__(self, host, port, password, timeout=3.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.settimeout(timeout)
        self._sock.connect((host, port))
        self._password = password
        self._txid = 0

    def close(self):
        self._sock.close()

    def _rpc(self, request):
        self._txid += 1
        request["txid"] = str(self._txid)
        try:
            self._sock.send(bencode(request))
            while True:
                data = self._sock.recv(1 << 17)
                try:
                    reply = bdecode(data)[0]
                except (ValueError, TypeError, RecursionError):
                    reply = None
                if not isinstance(reply, dict):
                    raise AdminError("cjdns admin API sent a reply that is not a bencoded "
                                     "dictionary: %r" % data[:60])
                if reply.get("txid") in (None, request["txid"]):
                    return reply
        except OSError as exc:
            raise AdminError("cjdns admin API did not answer: %s" % exc) from None

    def call(self, function, args=None):
        cookie = self._rpc({"q": "cookie"}).get("cookie")
        if not isinstance(cookie, str):
            raise AdminError("cjdns admin API sent no cookie")
        request = {"q": "auth", "aq": function, "args": args or {}, "cookie": cookie,
                   # cjdroute hashes at most 63 bytes of password + cookie (see above).
                   "hash": hashlib.sha256((self._password + cookie).encode()[:63]).hexdigest(),
                   "txid": str(self._txid + 1)}
        request["hash"] = hashlib.sha256(bencode(request)).hexdigest()
        request.pop("txid")
        reply = self._rpc(request)
        if reply.get("error") not in (None, "none"):
            raise AdminError("%s: %s" % (function, reply["error"]))
        return reply

    def call_all_pages(self, function, args=None, key=None):
        """Follow ``more``/``page`` pagination; return the concatenated ``key`` list."""
        items, page = [], 0
        while True:
            reply = self.call(function, dict(args or {}, page=page))
            items.extend(reply.get(key, []))
            if not reply.get("more"):
                return items
            page += 1


def tunnel_connections(admin):
    """Every IpTunnel connection of the running daemon: the IpTunnel_showConnection
    reply (``key``, ``outgoing``, addresses, prefixes, allocs) of each number that
    IpTunnel_listConnections gives, with that number under ``connection``."""
    numbers = admin.call("IpTunnel_listConnections").get("connections")
    if not isinstance(numbers, list):
        raise AdminError("IpTunnel_listConnections: no list of connections in the reply")
    out = []
    for number in numbers:
        reply = admin.call("IpTunnel_showConnection", {"connection": number})
        reply = {k: v for k, v in reply.items() if k not in ("txid", "error")}
        if not isinstance(reply.get("key"), str):
            raise AdminError("IpTunnel_showConnection %s: no key in the reply" % number)
        out.append(dict(reply, connection=number))
    return out
