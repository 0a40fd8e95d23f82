"""Tests for plugins/module_utils/cjdns_admin.py: bencode, and the client against a fake
admin server on 127.0.0.1.

The fake server is written from the protocol as documented in the module (and in cjdns
admin/Admin.c, authValid): a ``cookie`` query returns the current time in seconds as a
string; an ``auth`` query carries ``cookie`` and ``hash``; the server finds the submitted
hash in the raw request bytes, puts sha256(password + cookie) (hex) in its place, hashes
the whole request and compares.  Like cjdroute it formats password + cookie into a
64-byte buffer with snprintf, so only the first 63 bytes are hashed.  Its encoder and
decoder are separate from the module's, so the round trip is not checked against itself.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns_admin import (
    Admin,
    AdminError,
    admin_settings,
    bdecode,
    bencode,
)
from hypothesis import given, settings
from hypothesis import strategies as st

PASSWORD = "0123456789abcdef0123456789abcdef"  # what cjdns_config generates: 32 hex

# ------------------------------------------------------ reference bencode (test side)


def ref_encode(value, pad=0):
    """Bencode with every string length zero-padded to ``pad`` digits."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%0*d:%s" % (pad, len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(ref_encode(v, pad) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(ref_encode(k, pad) + ref_encode(v, pad) for k, v in items) + b"e"
    raise TypeError(value)


def ref_decode(data):
    """Decode to Python values with bytes strings; returns the value (whole input)."""
    def parse(i):
        c = data[i:i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if c in (b"l", b"d"):
            i += 1
            items = []
            while data[i:i + 1] != b"e":
                item, i = parse(i)
                items.append(item)
            return (items if c == b"l" else dict(zip(items[::2], items[1::2], strict=True))), i + 1
        colon = data.index(b":", i)
        n = int(data[i:colon])
        return data[colon + 1:colon + 1 + n], colon + 1 + n
    value, end = parse(0)
    assert end == len(data)
    return value


# ---------------------------------------------------------------------------- bencode

TEXT = st.text(max_size=20)
VALUES = st.recursive(
    st.integers(min_value=-(2**70), max_value=2**70) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children,
                                                                      max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_round_trip(value):
    data = bencode(value)
    assert bdecode(data) == (value, len(data))
    assert data == ref_encode(value)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.integers(min_value=0, max_value=8))
def test_zero_padded_lengths_decode(value, pad):
    data = ref_encode(value, pad)
    assert bdecode(data) == (value, len(data))


def test_known_encodings():
    assert bencode({"q": "ping"}) == b"d1:q4:pinge"
    assert bencode({"b": 1, "a": [True, False, -3, 0]}) == b"d1:ali1ei0ei-3ei0ee1:bi1ee"
    assert bencode("é") == b"2:\xc3\xa9"
    assert bencode(b"\x00\xff") == b"2:\x00\xff"
    assert bencode([]) == b"le" and bencode({}) == b"de" and bencode("") == b"0:"
    for bad in (1.5, None, {1, 2}):
        with pytest.raises(TypeError):
            bencode(bad)


def test_known_decodings():
    assert bdecode(b"d000001:q4:ponge") == ({"q": "pong"}, 16)
    assert bdecode(b"d1:q4:ponge") == ({"q": "pong"}, 11)
    assert bdecode(b"i-42e") == (-42, 5)
    assert bdecode(b"0:") == ("", 2)
    assert bdecode(b"le") == ([], 2)
    assert bdecode(b"4:spamtrailing") == ("spam", 6)
    assert bdecode(b"xx3:abc", 2) == ("abc", 7)


def test_non_utf8_strings_become_hex():
    assert bdecode(b"3:\xff\x00\x01") == ("ff0001", 5)
    key = bytes(range(200, 232))
    assert bdecode(b"d4:addr32:" + key + b"e") == ({"addr": key.hex()}, 43)


# ------------------------------------------------------------------ fake admin server


class FakeAdmin:
    """One UDP socket on 127.0.0.1 in a thread, answering as cjdroute's admin API."""

    def __init__(self, password=PASSWORD, pad=0, peers=10, page_size=4):
        self.password = password
        self.pad = pad
        self.peers = [{"addr": "v21.0000.0000.0000.%04x.x.k" % i, "state": "ESTABLISHED"}
                      for i in range(peers)]
        self.page_size = page_size
        self.raw = []  # every datagram received
        self.calls = []  # (function, args) of every authenticated call
        self.cookies = set()
        self.before_reply = []  # datagrams to send before the next real reply
        self.raw_reply = None  # sent instead of every reply when set
        self.silent = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.raw.append(data)
            if self.silent:
                continue
            reply = self._handle(data)
            for extra in self.before_reply:
                self.sock.sendto(extra, addr)
            self.before_reply = []
            self.sock.sendto(self.raw_reply or ref_encode(reply, self.pad), addr)

    def _auth_valid(self, data, message):
        cookie = message.get(b"cookie", b"")
        submitted = message.get(b"hash", b"")
        if cookie not in self.cookies or len(submitted) != 64:
            return False
        if not int(time.time()) - 20 <= int(cookie) <= int(time.time()):
            return False
        at = data.find(submitted)
        if at < 0:
            return False
        # snprintf((char*) passAndCookie, 64, "%s%u", password, cookie)
        pass_and_cookie = (self.password.encode() + cookie)[:63]
        inner = hashlib.sha256(pass_and_cookie).hexdigest().encode()
        rebuilt = data[:at] + inner + data[at + 64:]
        return hashlib.sha256(rebuilt).hexdigest().encode() == submitted

    def _handle(self, data):
        message = ref_decode(data)
        txid = {"txid": message[b"txid"]} if b"txid" in message else {}
        query = message.get(b"q")
        if query == b"cookie":
            cookie = str(int(time.time())).encode()
            self.cookies.add(cookie)
            return {"cookie": cookie, **txid}
        if query == b"ping":  # no auth needed, as in cjdroute
            return {"q": "pong", **txid}
        if query != b"auth":
            return {"error": "No functions matched your request.", **txid}
        if not self._auth_valid(data, message):
            return {"error": "Auth failed.", **txid}
        function = message[b"aq"].decode()
        args = message.get(b"args", {})
        self.calls.append((function, args))
        if function == "ping":
            return {"q": "pong", **txid}
        if function == "InterfaceController_peerStats":
            page = args.get(b"page", 0)
            chunk = self.peers[page * self.page_size:(page + 1) * self.page_size]
            more = (page + 1) * self.page_size < len(self.peers)
            return {"peers": chunk, "total": len(self.peers), **({"more": 1} if more else {}),
                    **txid}
        if function == "Core_nodeInfo":
            return {"myAddr": "fcfb::1", "binary": b"\xff\xfe\x00", "error": "none", **txid}
        if function == "IpTunnel_connectTo":
            return {"error": "key not allowed", **txid}
        return {"error": "No functions matched your request.", **txid}


@pytest.fixture
def server():
    fake = FakeAdmin()
    yield fake
    fake.close()


@pytest.fixture
def client(server):
    admin = Admin("127.0.0.1", server.port, PASSWORD, timeout=2.0)
    yield admin
    admin.close()


def test_authenticated_call(server, client):
    reply = client.call("ping")
    assert reply["q"] == "pong"
    assert server.calls == [("ping", {})]
    # Two datagrams: the cookie request, then the authenticated call.
    cookie_request, call = (ref_decode(d) for d in server.raw)
    assert cookie_request[b"q"] == b"cookie"
    assert call[b"q"] == b"auth" and call[b"aq"] == b"ping"
    assert call[b"cookie"] in server.cookies
    assert len(call[b"hash"]) == 64
    assert call[b"txid"].decode() == reply["txid"]
    # The password itself never travels.
    assert PASSWORD.encode() not in b"".join(server.raw)


def test_arguments_reach_the_server(server, client):
    client.call("InterfaceController_peerStats", {"page": 2})
    assert server.calls == [("InterfaceController_peerStats", {b"page": 2})]


def test_wrong_password_is_refused(server):
    admin = Admin("127.0.0.1", server.port, "not-the-password", timeout=2.0)
    try:
        with pytest.raises(AdminError) as info:
            admin.call("ping")
    finally:
        admin.close()
    assert str(info.value) == "ping: Auth failed."
    assert server.calls == []


@pytest.mark.parametrize("password", ["p", "x" * 53, "x" * 54, "f" * 64, "pässwörd" * 9])
def test_any_password_length(password):
    """cjdroute only hashes the first 63 bytes of password + cookie: a long password
    (a 64-hex sha256, say) must still authenticate."""
    fake = FakeAdmin(password=password)
    admin = Admin("127.0.0.1", fake.port, password, timeout=2.0)
    try:
        assert admin.call("ping")["q"] == "pong"
    finally:
        admin.close()
        fake.close()


def test_tampered_request_is_refused(server):
    """The hash covers the whole request: the same hash on other arguments fails."""
    admin = Admin("127.0.0.1", server.port, PASSWORD, timeout=2.0)
    try:
        admin.call("InterfaceController_peerStats", {"page": 0})
        signed = server.raw[-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.sendto(signed.replace(b"4:pagei0e", b"4:pagei1e"), ("127.0.0.1", server.port))
        assert ref_decode(sock.recv(65536))[b"error"] == b"Auth failed."
        sock.sendto(signed, ("127.0.0.1", server.port))  # the genuine request still passes
        assert b"peers" in ref_decode(sock.recv(65536))
        sock.close()
    finally:
        admin.close()


def test_error_reply_raises(server, client):
    with pytest.raises(AdminError) as info:
        client.call("IpTunnel_connectTo", {"publicKeyOfNodeToConnectTo": "x.k"})
    assert str(info.value) == "IpTunnel_connectTo: key not allowed"
    # error "none" is success, as cjdroute writes it.
    reply = client.call("Core_nodeInfo")
    assert reply["myAddr"] == "fcfb::1"
    assert reply["binary"] == "fffe00"  # not UTF-8: hex


def test_zero_padded_replies(server, client):
    server.pad = 6
    assert client.call("ping")["q"] == "pong"
    assert b"000004:pong" in ref_encode({"q": "pong"}, 6)


def test_replies_for_another_txid_are_skipped(server, client):
    server.before_reply = [ref_encode({"txid": "999", "q": "stale"})]
    assert client.call("ping")["q"] == "pong"


def test_pagination(server, client):
    peers = client.call_all_pages("InterfaceController_peerStats", {}, "peers")
    assert peers == server.peers
    assert [args[b"page"] for _unused, args in server.calls] == [0, 1, 2]


def test_pagination_single_page(server, client):
    server.peers = server.peers[:3]
    assert client.call_all_pages("InterfaceController_peerStats", key="peers") == server.peers
    assert len(server.calls) == 1


def test_pagination_empty(server, client):
    server.peers = []
    assert client.call_all_pages("InterfaceController_peerStats", key="peers") == []


def test_no_answer(server):
    server.silent = True
    admin = Admin("127.0.0.1", server.port, PASSWORD, timeout=0.3)
    try:
        with pytest.raises(AdminError) as info:
            admin.call("ping")
    finally:
        admin.close()
    assert str(info.value).startswith("cjdns admin API did not answer: ")


@pytest.mark.parametrize("garbage", [b"not bencode", b"d1:q", b"le", b"i12e", b"d1:qi1ee"])
def test_garbled_reply_is_an_admin_error(server, client, garbage):
    """A reply that is not a bencoded dictionary (or a cookie reply without a cookie)
    is the API's fault: AdminError, not a traceback."""
    server.raw_reply = garbage
    with pytest.raises(AdminError) as info:
        client.call("ping")
    assert str(info.value).startswith("cjdns admin API sent ")


def test_admin_settings(tmp_path):
    conf = tmp_path / "cjdroute.conf"
    conf.write_text(json.dumps({"admin": {"bind": "127.0.0.1:11234", "password": PASSWORD}}))
    assert admin_settings(str(conf)) == ("127.0.0.1", 11234, PASSWORD)
    conf.write_text(json.dumps({"admin": {"bind": "[::1]:4000", "password": "p"}}))
    assert admin_settings(str(conf)) == ("::1", 4000, "p")
    conf.write_text("{}")
    assert admin_settings(str(conf)) == ("127.0.0.1", 11234, "")


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_admin_address():
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.settimeout(2)
    port = sock.getsockname()[1]

    def answer():
        data, addr = sock.recvfrom(65536)
        sock.sendto(ref_encode({"cookie": "1", "txid": ref_decode(data)[b"txid"]}), addr)
        data, addr = sock.recvfrom(65536)
        sock.sendto(ref_encode({"q": "pong", "txid": ref_decode(data)[b"txid"]}), addr)

    thread = threading.Thread(target=answer)
    thread.start()
    admin = Admin("::1", port, PASSWORD, timeout=2.0)
    try:
        assert admin.call("ping")["q"] == "pong"
    finally:
        thread.join()
        admin.close()
        sock.close()
