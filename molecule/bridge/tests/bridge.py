"""What the bridge scenario's tests share: its inventory, the expected plan, helpers."""

import hashlib
import ipaddress
import os
import time
from pathlib import Path

import yaml
from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import link_plan

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[1]
INVENTORY = yaml.safe_load((SCENARIO / "inventory" / "hosts.yml").read_text())
VARS = INVENTORY["all"]["vars"]
LINKS = VARS["bridge_links"]
FLEET_ID = VARS["bridge_fleet_id"]
PLAN = link_plan(LINKS, fleet_id=FLEET_ID)
(LINK,) = list(PLAN.values())
ENDS = {end["host"]: end for end in LINK["ends"]}
FAR = dict(zip(ENDS, reversed(list(ENDS)), strict=True))
# Each bridge end's neighbourhood: (the other node there, the neighbourhood's network).
NEIGHBOUR = {
    "bridge-a-end": ("bridge-a-node", "hood_a"),
    "bridge-b-end": ("bridge-b-node", "hood_b"),
}
PORT = 41300
UNIT = "meshfleet-link-addr.service"


def fleet_prefix():
    """The /48 derived from the fleet id, computed here independently of the collection:
    RFC 4193 style, fd + the first 40 bits of sha256(fleet id)."""
    digest = hashlib.sha256(FLEET_ID.encode()).digest()
    return ipaddress.IPv6Network((b"\xfd" + digest[:5] + bytes(10), 48))


def global_v6(host, dev):
    out = host.check_output("ip -6 -o addr show dev %s scope global" % dev)
    return {line.split()[3] for line in out.splitlines()}


def nft_counter(host, rule_start):
    """Packets counted by the first rule of table inet meshfleet starting with rule_start."""
    out = host.check_output("nft list table inet meshfleet")
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(rule_start) and "counter packets" in line:
            return int(line.split("counter packets ")[1].split()[0])
    raise AssertionError("no counted rule starting with %r in:\n%s" % (rule_start, out))


def peer_stats(host):
    """cjdroute's InterfaceController_peerStats (every page), asked on ``host`` through the
    collection's own admin API client, the meshfleet.mesh.cjdns_admin module."""
    result = host.ansible("meshfleet.mesh.cjdns_admin",
                          "function=InterfaceController_peerStats all_pages=peers", check=False)
    # testinfra raises on a failed module only when the result holds "failed", which the
    # tree output of ansible-core 2.19 leaves out: a result without a reply is the failure.
    if "reply" not in result:
        raise AssertionError("cjdns_admin on %s: %s"
                             % (host.backend.get_hostname(), result.get("msg", result)))
    return result["reply"]


def record(name, text):
    """Keep a measurement in .build/reports/bridge-NAME.txt (Molecule removes its own
    state directory at destroy) and print it (pytest -s / -rA)."""
    directory = ROOT / ".build" / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    suite = os.environ.get("MESHFLEET_TEST_SUITE", "bookworm")
    with open(directory / ("bridge-%s.txt" % name), "a") as handle:
        handle.write("%s %s %s\n" % (stamp, suite, text))
    print(text)
