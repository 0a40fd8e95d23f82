"""The cjdns key vectors the unit tests share: tests/data/key-vectors.tsv, key pairs made
by a real cjdroute (private key, public key, IPv6 address)."""

from __future__ import annotations

import csv
from pathlib import Path

VECTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "key-vectors.tsv"
with VECTORS_FILE.open(newline="") as _handle:
    VECTORS = list(csv.DictReader(_handle, delimiter="\t"))


def entry(vector):
    """What the key registry records for the node holding ``vector``'s key."""
    return {"public_key": vector["public_key"], "ipv6": vector["ipv6"]}
