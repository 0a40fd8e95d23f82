# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cjdns key primitives: base32, X25519 public keys, fc00::/8 addresses, peer passwords.

Pure Python, standard library only, so it runs on a managed node.  When the
``cryptography`` package is importable it does the X25519 multiplication; otherwise a
small RFC 7748 Montgomery ladder below does it (slower, not constant time).

Facts (checked against a real cjdroute v21.1):

* private key: 32 bytes, written as 64 hex characters (stored unclamped);
* public key: X25519 base-point multiplication with standard clamping;
* ``.k`` string: cjdns base32 of the 32 public key bytes, followed by ``.k``;
* address: first 16 bytes of sha512(sha512(public key)); usable only if it starts with 0xfc.

Private key values never appear in error messages: they are described by length and
position only.
"""

from __future__ import annotations

import hashlib
import hmac
import os

try:  # pragma: no cover - which branch runs depends on the node
    from cryptography.hazmat.primitives import serialization as _serialization
    from cryptography.hazmat.primitives.asymmetric import x25519 as _x25519

    _X25519 = _x25519.X25519PrivateKey
except ImportError:  # pragma: no cover
    _X25519 = None

__all__ = [
    "CjdnsKeyError",
    "base32_decode",
    "base32_encode",
    "check_private_key",
    "generate_keypair",
    "ipv6_from_public_key",
    "parse_public_key",
    "peer_password",
    "public_key_from_private",
]

ALPHABET = "0123456789bcdfghjklmnpqrstuvwxyz"
# cjdns base32 is little-endian in 5-bit groups, so reversing the text gives an ordinary
# base-32 numeral; int(..., 32) reads it once the letters are mapped to Python's digits.
_TO_INT_DIGITS = str.maketrans(ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_HEX = frozenset("0123456789abcdefABCDEF")
PUBLIC_KEY_CHARS = 52
PRIVATE_KEY_CHARS = 64
PEER_PASSWORD_DOMAIN = b"meshfleet.mesh peer v1\0"


class CjdnsKeyError(ValueError):
    """A cjdns key, or its base32 text, is malformed or unusable."""


def _show(text, limit=60):
    """Quote a (public, non-secret) value for an error message, shortened if long."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"'{text}'"


# --- base32 -----------------------------------------------------------------------------


def base32_encode(data):
    """Encode bytes with cjdns base32 (LSB-first 5-bit groups, no padding).

    32 bytes give 52 characters.
    """
    data = bytes(data)
    value = int.from_bytes(data, "little")
    chars = []
    for _i in range((len(data) * 8 + 4) // 5):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(chars)


def base32_decode(text):
    """Decode cjdns base32 text into bytes.

    Raises CjdnsKeyError for a character outside the (lowercase) alphabet, for a length
    no byte string encodes to, or for non-zero bits past the last byte.
    """
    if not isinstance(text, str):
        raise CjdnsKeyError(f"base32 text must be a string, got {type(text).__name__}")
    if text.strip(ALPHABET):  # any character left over is not in the alphabet
        for position, char in enumerate(text):
            if char not in ALPHABET:
                raise CjdnsKeyError(
                    f"character {char!r} at position {position} is not in the cjdns base32 "
                    f"alphabet {ALPHABET}"
                )
    nbytes, spare_bits = divmod(len(text) * 5, 8)
    if spare_bits >= 5:
        raise CjdnsKeyError(
            f"{len(text)} base32 characters is not a length that any byte string encodes to"
        )
    if not text:
        return b""
    value = int(text[::-1].translate(_TO_INT_DIGITS), 32)
    if value >> (nbytes * 8):
        raise CjdnsKeyError(
            f"last base32 character {text[-1]!r} sets bits past the end of {nbytes} bytes"
        )
    return value.to_bytes(nbytes, "little")


# --- X25519 -----------------------------------------------------------------------------

_P = 2**255 - 19
_A24 = 121665


def _clamp(scalar):
    """RFC 7748 clamping of a 32-byte scalar, as an integer."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(k, "little")


def _x25519_base_pure(scalar):
    """X25519(scalar, 9) with the RFC 7748 Montgomery ladder (pure Python)."""
    k = _clamp(scalar)
    x1 = 9
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a = x2 + z2
        aa = a * a % _P
        b = x2 - z2
        bb = b * b % _P
        e = aa - bb
        c = x3 + z3
        d = x3 - z3
        da = d * a % _P
        cb = c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def _x25519_base_cryptography(scalar):
    """X25519(scalar, 9) with the ``cryptography`` package (which clamps itself)."""
    public = _X25519.from_private_bytes(bytes(scalar)).public_key()
    return public.public_bytes(_serialization.Encoding.Raw, _serialization.PublicFormat.Raw)


#: The backend in use; tests swap it to check both.
_x25519_base = _x25519_base_pure if _X25519 is None else _x25519_base_cryptography
X25519_BACKEND = "pure-python" if _X25519 is None else "cryptography"


# --- addresses and keys -----------------------------------------------------------------


def _address(public_bytes):
    """The 16 address bytes of a 32-byte public key."""
    return hashlib.sha512(hashlib.sha512(public_bytes).digest()).digest()[:16]


def _format_ipv6(address):
    """Full IPv6 form: 8 groups of 4 lowercase hex digits."""
    h = address.hex()
    return ":".join((h[0:4], h[4:8], h[8:12], h[12:16], h[16:20], h[20:24], h[24:28], h[28:32]))


def _decode_public_key(public_key):
    """Validate a ``.k`` string; return (32 key bytes, 16 address bytes)."""
    if not isinstance(public_key, str):
        raise CjdnsKeyError(f"public key must be a string, got {type(public_key).__name__}")
    if not public_key.endswith(".k"):
        raise CjdnsKeyError(
            f"public key {_show(public_key)} must be {PUBLIC_KEY_CHARS} base32 characters "
            "followed by '.k', but it does not end in '.k'"
        )
    body = public_key[:-2]
    if len(body) != PUBLIC_KEY_CHARS:
        raise CjdnsKeyError(
            f"public key {_show(public_key)} must be {PUBLIC_KEY_CHARS} base32 characters "
            f"followed by '.k', got {len(body)}"
        )
    try:
        key = base32_decode(body)
    except CjdnsKeyError as exc:
        raise CjdnsKeyError(f"public key {_show(public_key)}: {exc}") from None
    address = _address(key)
    if address[0] != 0xFC:
        raise CjdnsKeyError(
            f"public key {_show(public_key)} is not a valid cjdns key: its address "
            f"{_format_ipv6(address)} does not start with fc"
        )
    return key, address


def parse_public_key(public_key):
    """Validate a cjdns public key (``<52 base32 chars>.k``) and return its 32 bytes.

    The key's address must start with fc, as cjdns requires.
    """
    return _decode_public_key(public_key)[0]


def ipv6_from_public_key(public_key):
    """The cjdns IPv6 address of a public key, e.g. ``fcfb:a2bb:0db5:f5d0:...``."""
    return _format_ipv6(_decode_public_key(public_key)[1])


def _derive(private_hex):
    """Validate a private key; return (normalized hex, public key bytes, address bytes)."""
    if not isinstance(private_hex, str):
        raise CjdnsKeyError(f"private key must be a string, got {type(private_hex).__name__}")
    text = private_hex.strip()
    if len(text) != PRIVATE_KEY_CHARS:
        raise CjdnsKeyError(
            f"private key must be {PRIVATE_KEY_CHARS} hexadecimal characters, got {len(text)}"
        )
    for position, char in enumerate(text):
        if char not in _HEX:
            raise CjdnsKeyError(
                f"private key must be {PRIVATE_KEY_CHARS} hexadecimal characters, but character "
                f"{position} (counting from 0) is not hexadecimal"
            )
    text = text.lower()
    public = _x25519_base(bytes.fromhex(text))
    address = _address(public)
    if address[0] != 0xFC:
        raise CjdnsKeyError(
            f"private key (64 hexadecimal characters) gives address {_format_ipv6(address)}, "
            "which does not start with fc, so cjdns would reject it"
        )
    return text, public, address


def check_private_key(private_hex):
    """Validate a private key and return it as 64 lowercase hex characters.

    Surrounding whitespace (a trailing newline from a file or vault) is ignored.  Raises
    CjdnsKeyError unless it is 64 hex characters whose address starts with fc.
    """
    return _derive(private_hex)[0]


def public_key_from_private(private_hex):
    """The ``.k`` public key of a 64-hex-character private key (validated as above)."""
    return base32_encode(_derive(private_hex)[1]) + ".k"


def generate_keypair(randbytes=os.urandom):
    """Make a new key pair as cjdroute does: draw 32 random bytes until the address
    starts with fc (about 1 try in 256).

    ``randbytes(n)`` must return n random bytes.  Returns (private_hex, public_key, ipv6).
    """
    while True:
        private = bytes(randbytes(32))
        if len(private) != 32:
            raise ValueError(f"randbytes(32) returned {len(private)} bytes")
        public = _x25519_base(private)
        address = _address(public)
        if address[0] == 0xFC:
            return private.hex(), base32_encode(public) + ".k", _format_ipv6(address)


# --- peer passwords ---------------------------------------------------------------------


def peer_password(secret, host_a, host_b):
    """Password for the cjdns peering between two hosts, derived from one fleet secret.

    Symmetric (same for (a, b) and (b, a)), different for every pair, and stable:
    HMAC-SHA256(key=secret, PEER_PASSWORD_DOMAIN + min + NUL + max), first 20 bytes in
    cjdns base32 (32 characters).  Raises ValueError for an empty secret or host name, a
    host name containing NUL, or a host paired with itself, and TypeError for a value that
    is not a string.  The secret never appears in a message.
    """
    for name, value in (("secret", secret), ("host_a", host_a), ("host_b", host_b)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
        if not value:
            raise ValueError(f"{name} must not be empty")
        if name != "secret" and "\0" in value:
            raise ValueError(f"{name} must not contain a NUL character")
    if host_a == host_b:
        raise ValueError(f"a host cannot peer with itself (both hosts are {host_a!r})")
    low, high = sorted((host_a, host_b))
    message = PEER_PASSWORD_DOMAIN + low.encode("utf-8") + b"\0" + high.encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base32_encode(digest[:20])
