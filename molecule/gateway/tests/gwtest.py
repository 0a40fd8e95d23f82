"""What the gateway scenario's tests share: its hosts, the allocation file, helpers."""

import ipaddress
import json
import os
import time
from pathlib import Path

import yaml

GATEWAY = "gw-gw1"
INET = "gw-inet"
ROGUE = "gw-rogue"
# gw-client3 becomes a client in side_effect (the rerun that adds a third client).
CLIENTS = ["gw-client1", "gw-client2", "gw-client3"]
POOL = ipaddress.ip_network("10.99.0.0/24")
POOL6 = ipaddress.ip_network("2001:db8:99::/64")
INET6 = "2001:db8:ffff::2"  # gw-inet's IPv6 address on the uplink (prepare.yml)
PORT = 8080  # gw-inet's what-is-my-address HTTP service (prepare.yml)
TUN = "cjdns0"
UNIT = "meshfleet-gateway.service"


def allocations():
    """The gateway's allocation as the controller keeps it: {family: {pool, address, clients}}."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "gateway_allocations.yml"
    return yaml.safe_load(path.read_text())["gateways"][GATEWAY]


def ipv4(host, dev):
    """The IPv4 addresses (without prefix length) on ``dev``."""
    out = host.check_output("ip -4 -o addr show dev %s" % dev)
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def ipv6_global(host, dev):
    out = host.check_output("ip -6 -o addr show dev %s scope global" % dev)
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def fetch(host, url, timeout=5):
    """GET ``url`` from ``host``: (rc, body); gw-inet answers with the source it sees."""
    out = host.run("curl -sS -g --max-time %d %s" % (timeout, url))
    return out.rc, out.stdout.strip()


def fetch_until_answered(host, url, seconds):
    """Retry :func:`fetch` until it gets an answer or ``seconds`` pass:
    (rc, body, seconds waited)."""
    started = time.monotonic()
    while True:
        rc, body = fetch(host, url)
        waited = time.monotonic() - started
        if rc == 0 or waited > seconds:
            return rc, body, round(waited, 1)
        time.sleep(1)


def node_admin(host, function, args=None):
    """Call cjdroute's admin API on ``host`` through the collection's own client, the
    meshfleet.mesh.cjdns_admin module: its reply."""
    result = host.ansible("meshfleet.mesh.cjdns_admin",
                          "function=%s args='%s'" % (function, json.dumps(args or {})),
                          check=False)
    # testinfra raises on a failed module only when the result holds "failed", which the
    # tree output of ansible-core 2.19 leaves out: a result without a reply is the failure.
    if "reply" not in result:
        raise AssertionError("cjdns_admin %s on %s: %s"
                             % (function, host.backend.get_hostname(), result.get("msg", result)))
    return result["reply"]
