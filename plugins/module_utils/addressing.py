# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic address planning for meshfleet gateways and bridge links.

Pure Python (standard library only: ``ipaddress`` and ``hashlib``) so the same code
runs on the controller (filter plugins) and, if ever needed, on managed nodes.

Gateway client pools -- :func:`allocate_addresses`
--------------------------------------------------
A gateway hands each client it pins one address from its pool.  Placement is
hash based: a client's probe sequence is ``sha256(name)``, ``sha256(name + "\\0" + "1")``,
``sha256(name + "\\0" + "2")`` ... (big-endian integers) modulo the *pool size*, and the
client takes the first probe that is neither excluded (network, IPv4 broadcast,
gateway, reserved, pinned) nor already taken.  Clients are placed in a fixed global
order -- ascending ``(sha256(name), name)`` -- so the result depends only on the *set*
of inputs, never on their order, dict order, ``PYTHONHASHSEED``, time or controller.
After :data:`RANDOM_PROBES` misses (only in an almost full pool) the client takes the
next free address after its last probe, wrapping around.

Stability, honestly: without state, hashing cannot be perfectly stable.  If two
clients contest a slot, the lower-ranked one moves to its next probe; remove the
winner and the loser would move *back*.  So the function takes ``previous`` -- the
last allocation, e.g. from the gateway's key registry -- and keeps every previous
assignment that is still valid, placing only new clients.  With ``previous``, adding or
removing clients never changes any other client's address.  Without it the result is
deterministic and order independent, and removals never push any client to a later
probe (by induction over the rank order, the set of taken slots each client sees can
only shrink), so a client sitting on its first probe keeps its address when others are
removed; a newly added client that ranks earlier can still claim its slot.

Bridge links -- :func:`link_addresses` and :func:`link_plan`
-------------------------------------------------------------
Every bridge link gets a /64 inside the fleet's link prefix, a ULA /48 inside
``fd00::/8`` (the locally assigned half of ``fc00::/7``; ``fc00::/8`` is where cjdns puts
its own node addresses, so it is rejected).  The /48 is either given or derived
RFC 4193 style from a fleet id: ``fd`` + the first 40 bits of ``sha256(fleet_id)``.
The 16-bit subnet id is the first two bytes of ``sha256(link_name)``; the two ends get
``::1`` and ``::2``, ordered by inventory hostname so either end computes the same
answer.  16 bits collide plausibly in big fleets (birthday bound: ~50% at 300 links),
so :func:`link_plan` fails on a collision, naming both links; pin ``subnet``
(0-65535) on one of them to resolve it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Mapping

__all__ = [
    "RANDOM_PROBES",
    "AddressingError",
    "allocate_addresses",
    "cidr_overlaps",
    "fleet_link_prefix",
    "link_addresses",
    "link_plan",
    "parse_network",
]

RANDOM_PROBES = 16
"""Hashed probes a client tries before falling back to a linear scan."""

ULA_LOCAL = ipaddress.IPv6Network("fd00::/8")
CJDNS_RANGE = ipaddress.IPv6Network("fc00::/8")


class AddressingError(ValueError):
    """Invalid addressing input.  The message is written for operators."""


# --------------------------------------------------------------------------- helpers


def _sha256_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def _is_unset(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _type_name(value) -> str:
    return type(value).__name__


class _Intervals:
    """Sorted, merged, inclusive integer intervals with O(log n) membership."""

    def __init__(self, ranges: Iterable[tuple[int, int]]):
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.starts = [lo for lo, _hi in merged]
        self.ends = [hi for _lo, hi in merged]
        self.total = sum(hi - lo + 1 for lo, hi in merged)

    def _index(self, value: int) -> int:
        i = bisect_right(self.starts, value) - 1
        return i if i >= 0 and value <= self.ends[i] else -1

    def __contains__(self, value: int) -> bool:
        return self._index(value) >= 0

    def next_clear(self, value: int) -> int:
        """Smallest value >= ``value`` outside every interval."""
        i = self._index(value)
        return value if i < 0 else self.ends[i] + 1


def _parse_pool(pool) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(pool, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return pool
    if not isinstance(pool, str):
        raise AddressingError(
            f"pool must be a CIDR string such as '10.64.0.0/16', got {_type_name(pool)} {pool!r}"
        )
    text = pool.strip()
    if "/" not in text:
        raise AddressingError(
            f"pool {pool!r} is not in CIDR notation; give network/prefix, e.g. '10.64.0.0/16'"
        )
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise AddressingError(f"pool {pool!r} is not a valid CIDR network: {exc}") from None
        raise AddressingError(f"pool {pool!r} has host bits set; did you mean '{loose}'?") from None


def parse_network(value, what="network"):
    """``value`` as an ``ip_network``: CIDR notation, no host bits; errors name ``what``."""
    if not isinstance(value, str) or "/" not in value:
        raise AddressingError("%s %r is not a network in CIDR notation (e.g. 192.168.50.0/24)"
                              % (what, value))
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise AddressingError("%s %r is not a valid network: %s" % (what, value, exc)) from None
        raise AddressingError("%s %r has host bits set; did you mean %s?"
                              % (what, value, loose)) from None


def cidr_overlaps(network, others, what="network"):
    """The entries of ``others`` that share an address with ``network``, in their order.

    ``network`` must be a network in CIDR notation (:func:`parse_network`, errors naming
    ``what``); empty entries (an unset pool) and entries of the other IP version are
    ignored, and an entry with host bits set stands for its network.
    """
    mine = parse_network(network, what)
    if isinstance(others, str):
        others = [others]
    out = []
    for other in others or []:
        if _is_unset(other):
            continue
        theirs = ipaddress.ip_network(str(other).strip(), strict=False)
        if theirs.version == mine.version and theirs.overlaps(mine):
            out.append(other)
    return out


def _parse_address(value, what: str):
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if not isinstance(value, str):
        raise AddressingError(f"{what} must be an IP address string, got {_type_name(value)}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise AddressingError(f"{what} {value!r} is not a valid IP address") from None


def _parse_clients(clients) -> list[str]:
    if clients is None:
        return []
    if isinstance(clients, (str, bytes)) or not isinstance(clients, Iterable):
        raise AddressingError(
            f"clients must be a list of client names, got {_type_name(clients)} {clients!r}"
        )
    names = set()
    for name in clients:
        if not isinstance(name, str) or not name:
            raise AddressingError(f"client names must be non-empty strings, got {name!r}")
        names.add(name)
    return sorted(names)


# ----------------------------------------------------------------- client allocation


def allocate_addresses(
    clients,
    pool,
    pinned=None,
    reserved=None,
    gateway_address=None,
    previous=None,
) -> dict[str, str]:
    """Give every client one unique address in ``pool``.

    :param clients: iterable of client names (duplicates are folded; a mapping's keys).
    :param pool: the gateway's client pool as a CIDR string, IPv4 or IPv6.
    :param pinned: ``{client: address}`` fixed assignments.  A pin for a client that is
        not in ``clients`` still holds its address, so nobody else gets it.
    :param reserved: addresses or CIDRs never handed out (parts outside the pool and
        entries of the other IP version are ignored).
    :param gateway_address: the gateway's own address, never handed out; default is the
        first usable host of the pool (network + 1).  It may lie outside the pool.
    :param previous: ``{client: address}`` from the last run.  Every entry that is still
        valid (client listed and not pinned, address in the pool and not excluded, not
        pinned or kept for another client) is kept; only the others are placed.
    :returns: ``{client: address}`` for every client, keys sorted.
    :raises AddressingError: on invalid input, conflicting pins or an exhausted pool.
    """
    network = _parse_pool(pool)
    names = _parse_clients(clients)
    size = network.num_addresses
    base = int(network.network_address)
    address_type = type(network.network_address)
    is_v4 = network.version == 4

    last = base + size - 1

    def offset_of(address) -> int | None:
        value = int(address)
        if address.version != network.version or not base <= value <= last:
            return None
        return value - base

    # Addresses never handed to anyone.
    network_offset = 0
    broadcast_offset = size - 1 if is_v4 else None
    if _is_unset(gateway_address):
        gateway_offset = 1 if size > 1 else None  # first usable host; /32, /128: none
    else:
        gateway = _parse_address(gateway_address, "gateway_address")
        if gateway.version != network.version:
            raise AddressingError(
                f"gateway_address {gateway} is IPv{gateway.version} but pool {network} is "
                f"IPv{network.version}"
            )
        gateway_offset = offset_of(gateway)  # None: the gateway lives outside the pool
        if gateway_offset is not None and gateway_offset in (network_offset, broadcast_offset):
            raise AddressingError(
                f"gateway_address {gateway} is the network or broadcast address of pool {network}"
            )

    reserved_ranges = _parse_reserved(reserved, network)
    fixed = [(network_offset, network_offset)]
    if broadcast_offset is not None:
        fixed.append((broadcast_offset, broadcast_offset))
    if gateway_offset is not None:
        fixed.append((gateway_offset, gateway_offset))
    blocked = _Intervals(fixed + reserved_ranges)
    reserved_set = _Intervals(reserved_ranges)
    capacity = size - blocked.total

    # Pins.
    taken: dict[int, str] = {}
    result: dict[str, int] = {}
    if not _is_unset(pinned) and pinned != {}:
        if not isinstance(pinned, Mapping):
            raise AddressingError(
                f"pinned must be a mapping of client name to address, got {_type_name(pinned)}"
            )
        for name in sorted(pinned, key=str):
            if not isinstance(name, str) or not name:
                raise AddressingError(f"pinned client names must be non-empty strings: {name!r}")
            address = _parse_address(pinned[name], f"pinned address for client {name!r}")
            offset = offset_of(address)
            where = f"pinned address {address} for client {name!r}"
            if offset is None:
                raise AddressingError(f"{where} is outside pool {network}")
            if offset == network_offset:
                raise AddressingError(f"{where} is the network address of pool {network}")
            if offset == broadcast_offset:
                raise AddressingError(f"{where} is the broadcast address of pool {network}")
            if offset == gateway_offset:
                raise AddressingError(f"{where} is the gateway address of pool {network}")
            if offset in reserved_set:
                raise AddressingError(f"{where} is reserved in pool {network}")
            if offset in taken:
                raise AddressingError(
                    f"address {address} is pinned for both client {taken[offset]!r} and "
                    f"client {name!r}"
                )
            taken[offset] = name
            result[name] = offset

    wanted = set(names)
    absent_pins = len(set(result) - wanted)
    needed = len(wanted) + absent_pins
    if needed > capacity:
        extra = f" plus {absent_pins} pinned for clients not in the list" if absent_pins else ""
        raise AddressingError(
            f"pool {network} is too small: capacity {capacity} client addresses (after "
            f"excluding network, broadcast, gateway and reserved addresses) but "
            f"{len(wanted)} clients{extra} need one"
        )

    # Everyone not pinned, in the fixed global order.
    ranked = sorted(
        ((_sha256_int(name), name) for name in names if name not in result),
    )

    if not _is_unset(previous) and previous != {}:
        if not isinstance(previous, Mapping):
            raise AddressingError(
                f"previous must be a mapping of client name to address, got {_type_name(previous)}"
            )
        for _rank, name in ranked:
            value = previous.get(name)
            if value is None:
                continue
            try:
                address = _parse_address(value, "previous address")
            except AddressingError:
                continue  # not a valid assignment any more: place it afresh
            offset = offset_of(address)
            if offset is None or offset in blocked or offset in taken:
                continue
            taken[offset] = name
            result[name] = offset

    scanner = _FreeScanner(size, blocked, taken)
    for digest, name in ranked:
        if name in result:
            continue
        offset = digest % size
        probe = 0
        while offset in taken or offset in blocked:
            probe += 1
            if probe >= RANDOM_PROBES:
                offset = scanner.next_free(offset + 1)
                break
            offset = _sha256_int(f"{name}\0{probe}") % size
        taken[offset] = name
        result[name] = offset

    return {name: str(address_type(base + result[name])) for name in names}


class _FreeScanner:
    """First free offset at or after a start (wrapping), for the rare dense-pool fallback.

    A union-find style "next candidate" map with path compression over the taken
    offsets keeps repeated scans near O(1) amortised instead of O(clients) each.  The
    caller guarantees that a free offset exists (capacity check), so scans terminate.
    """

    def __init__(self, size: int, blocked: _Intervals, taken: Mapping[int, str]):
        self.size = size
        self.blocked = blocked
        self.taken = taken
        self.skip: dict[int, int] = {}

    def _scan(self, offset: int) -> int:
        path = []
        while True:
            offset = self.blocked.next_clear(offset)
            if offset >= self.size or offset not in self.taken:
                break
            path.append(offset)
            offset = self.skip.get(offset, offset + 1)
        for visited in path:
            self.skip[visited] = offset
        return offset

    def next_free(self, start: int) -> int:
        offset = self._scan(start % self.size)
        if offset >= self.size:
            offset = self._scan(0)
        if offset >= self.size:  # pragma: no cover - excluded by the capacity check
            raise AddressingError("internal error: no free address left in the pool")
        return offset


def _parse_reserved(reserved, network) -> list[tuple[int, int]]:
    if _is_unset(reserved) or reserved == []:
        return []
    if isinstance(reserved, (str, bytes, Mapping)) or not isinstance(reserved, Iterable):
        raise AddressingError(
            f"reserved must be a list of addresses or CIDRs, got {_type_name(reserved)} "
            f"{reserved!r}"
        )
    base = int(network.network_address)
    last = int(network.broadcast_address)
    ranges = []
    for item in reserved:
        if isinstance(item, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            item = str(item)
        if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            entry = item
        elif isinstance(item, str):
            try:
                entry = ipaddress.ip_network(item.strip(), strict=True)
            except ValueError as exc:
                raise AddressingError(
                    f"reserved entry {item!r} is not a valid address or CIDR: {exc}"
                ) from None
        else:
            raise AddressingError(
                f"reserved entries must be address or CIDR strings, got {_type_name(item)} {item!r}"
            )
        if entry.version != network.version:
            continue
        lo = max(int(entry.network_address), base)
        hi = min(int(entry.broadcast_address), last)
        if lo <= hi:
            ranges.append((lo - base, hi - base))
    return ranges


# ----------------------------------------------------------------------- link plans


def _resolve_prefix(prefix=None, fleet_id=None) -> ipaddress.IPv6Network:
    if not _is_unset(prefix):
        if isinstance(prefix, ipaddress.IPv6Network):
            network = prefix
        elif not isinstance(prefix, str):
            raise AddressingError(
                f"link prefix must be an IPv6 CIDR string such as 'fd12:3456:789a::/48', "
                f"got {_type_name(prefix)} {prefix!r}"
            )
        elif "/" not in prefix:
            raise AddressingError(
                f"link prefix {prefix!r} is not in CIDR notation; give a /48 such as "
                f"'fd12:3456:789a::/48'"
            )
        else:
            try:
                network = ipaddress.ip_network(prefix.strip(), strict=True)
            except ValueError as exc:
                raise AddressingError(
                    f"link prefix {prefix!r} is not a valid CIDR network: {exc}"
                ) from None
        if network.version != 6:
            raise AddressingError(
                f"link prefix {prefix!r} is IPv4; it must be an IPv6 ULA /48 inside fd00::/8"
            )
        if network.overlaps(CJDNS_RANGE):
            raise AddressingError(
                f"link prefix {network} overlaps fc00::/8, which cjdns uses for its own node "
                f"addresses; use a ULA /48 from fd00::/8 (the locally assigned half of "
                f"fc00::/7, RFC 4193) instead"
            )
        if not network.subnet_of(ULA_LOCAL):
            raise AddressingError(
                f"link prefix {network} is not inside fd00::/8; it must be a locally assigned "
                f"ULA /48 (RFC 4193)"
            )
        if network.prefixlen != 48:
            raise AddressingError(
                f"link prefix {network} is a /{network.prefixlen}; it must be a /48 so every "
                f"link gets one of its 65536 /64 subnets"
            )
        return network
    if not _is_unset(fleet_id):
        if not isinstance(fleet_id, str):
            raise AddressingError(f"fleet_id must be a string, got {_type_name(fleet_id)}")
        global_id = _sha256_int(fleet_id) >> (256 - 40)
        return ipaddress.IPv6Network(((0xFD << 120) | (global_id << 80), 48))
    raise AddressingError(
        "no link prefix: set the fleet's link prefix (a ULA /48 inside fd00::/8) or a "
        "fleet_id to derive one from"
    )


def fleet_link_prefix(prefix=None, fleet_id=None) -> str:
    """The fleet's validated link /48: ``prefix`` if set, else derived from ``fleet_id``."""
    return str(_resolve_prefix(prefix, fleet_id))


def _subnet_id(link_name: str) -> int:
    return _sha256_int(link_name) >> (256 - 16)


def _parse_subnet(subnet, link_name) -> int:
    value = subnet
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise AddressingError(
            f"subnet for link {link_name!r} must be an integer 0-65535, got {subnet!r}"
        )
    return value


def _check_link_name(link_name) -> str:
    if not isinstance(link_name, str) or not link_name:
        raise AddressingError(f"link name must be a non-empty string, got {link_name!r}")
    return link_name


def _link_subnet(net48: ipaddress.IPv6Network, subnet_id: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network((int(net48.network_address) | (subnet_id << 64), 64))


def link_addresses(link_name, prefix=None, fleet_id=None, subnet=None) -> dict:
    """The /64 and the two end addresses of one bridge link.

    :param link_name: the link's name; its sha256 picks the 16-bit subnet id.
    :param prefix: the fleet's link prefix, a /48 inside fd00::/8.  Wins over fleet_id.
    :param fleet_id: used when ``prefix`` is unset: ``fd`` + first 40 bits of its sha256.
    :param subnet: optional pinned subnet id 0-65535 instead of the hash.
    :returns: ``{"name", "prefix": "<...>/64", "subnet": int, "addresses": [::1, ::2]}``.
    """
    name = _check_link_name(link_name)
    net48 = _resolve_prefix(prefix, fleet_id)
    subnet_id = _subnet_id(name) if _is_unset(subnet) else _parse_subnet(subnet, name)
    net64 = _link_subnet(net48, subnet_id)
    return {
        "name": name,
        "prefix": str(net64),
        "subnet": subnet_id,
        "addresses": [str(net64[1]), str(net64[2])],
    }


def link_plan(links, prefix=None, fleet_id=None) -> dict[str, dict]:
    """Addresses for every bridge link of the fleet, with collision detection.

    :param links: list of ``{"name": str, "ends": [{"host", "interface", ...}, {...}],
        "subnet": optional int 0-65535}``.
    :returns: ``{link_name: {"name", "prefix", "subnet", "ends": [...]}}`` where the ends
        are sorted by host, carry their input keys plus ``address`` (``::1`` for the first
        host, ``::2`` for the second).
    :raises AddressingError: malformed links, duplicate names, an interface used by two
        links, or two links on the same /64 (pin ``subnet`` on one of them).
    """
    if isinstance(links, (str, bytes, Mapping)) or not isinstance(links, Iterable):
        raise AddressingError(f"links must be a list of link definitions, got {_type_name(links)}")
    net48 = _resolve_prefix(prefix, fleet_id)

    parsed: dict[str, tuple[list[dict], int | None]] = {}
    for index, link in enumerate(links):
        if not isinstance(link, Mapping):
            raise AddressingError(f"link #{index} must be a mapping, got {_type_name(link)}")
        if "name" not in link:
            raise AddressingError(f"link #{index} has no 'name'")
        name = _check_link_name(link["name"])
        if name in parsed:
            raise AddressingError(f"link name {name!r} is defined more than once")
        ends = link.get("ends")
        if isinstance(ends, (str, bytes, Mapping)) or not isinstance(ends, Iterable):
            raise AddressingError(f"link {name!r} needs 'ends', a list of exactly two ends")
        ends = list(ends)
        if len(ends) != 2:
            raise AddressingError(f"link {name!r} has {len(ends)} ends; a link has exactly two")
        clean = []
        for end in ends:
            if not isinstance(end, Mapping):
                raise AddressingError(f"link {name!r}: each end must be a mapping, got {end!r}")
            for key in ("host", "interface"):
                if key not in end:
                    raise AddressingError(f"link {name!r}: an end is missing {key!r}: {dict(end)}")
                if not isinstance(end[key], str) or not end[key]:
                    raise AddressingError(
                        f"link {name!r}: end {key} must be a non-empty string, got {end[key]!r}"
                    )
            clean.append(dict(end))
        if clean[0]["host"] == clean[1]["host"]:
            raise AddressingError(
                f"link {name!r} has both ends on host {clean[0]['host']!r}; a link joins two hosts"
            )
        clean.sort(key=lambda end: end["host"])
        subnet = link.get("subnet")
        parsed[name] = (clean, None if _is_unset(subnet) else _parse_subnet(subnet, name))

    interfaces: dict[tuple[str, str], str] = {}
    subnets: dict[int, str] = {}
    plan: dict[str, dict] = {}
    for name in sorted(parsed):
        ends, pinned_subnet = parsed[name]
        for end in ends:
            key = (end["host"], end["interface"])
            if key in interfaces:
                raise AddressingError(
                    f"interface {key[1]!r} on host {key[0]!r} is used by both link "
                    f"{interfaces[key]!r} and link {name!r}"
                )
            interfaces[key] = name
        subnet_id = _subnet_id(name) if pinned_subnet is None else pinned_subnet
        net64 = _link_subnet(net48, subnet_id)
        if subnet_id in subnets:
            raise AddressingError(
                f"links {subnets[subnet_id]!r} and {name!r} both map to subnet {subnet_id} "
                f"({net64}) of link prefix {net48}; pin a free 'subnet' (0-65535) on one of them"
            )
        subnets[subnet_id] = name
        for position, end in enumerate(ends, start=1):
            end["address"] = str(net64[position])
        plan[name] = {"name": name, "prefix": str(net64), "subnet": subnet_id, "ends": ends}
    return plan
