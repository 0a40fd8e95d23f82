"""playbooks/diagnose.yml on the lab fleet, for client rs-ana (gateway rs-gw): all links OK
on the healthy fleet (read-only, one module execution on the client and on its gateway,
no other host contacted), then each link broken in turn, named with its fix, repaired
(with the printed fix where it is a command to run) and the fleet waited for until it is
healthy again: the file leaves the fleet as it found it, for the test files after it."""

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from meshtest import REAL_REASON, real_daemon, wait_for

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab"
CLIENT, GATEWAY = "rs-ana", "rs-gw"
TUN, PEER_INTERFACE, UPLINK = "cjdns0", "riverside", "wan"
LAB_ROUTER = "203.0.113.100"  # inet on the wan network: the gateways' default router
REAL = pytest.mark.skipif(not real_daemon(), reason=REAL_REASON)
LINK_IDS = {1: "cjdns", 2: "peers", 3: "tunnel", 4: "routes", 5: "pinned", 6: "forwarding",
            7: "uplink"}


def env(budget=None):
    out = dict(
        os.environ,
        ANSIBLE_CONFIG=str(INVENTORY / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(ROOT / ".build" / "lab" / "facts"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    if budget:
        out["MESHFLEET_RUN_BUDGET_OUTPUT"] = str(budget)
    return out


def diagnose(*extra, budget=None):
    """Run the playbook; return (exit status, its lines, the broken link or None)."""
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / "diagnose.yml"),
         "-e", "client=%s" % CLIENT, *extra],
        cwd=ROOT, env=env(budget), capture_output=True, text=True, timeout=300, check=False)
    start = proc.stdout.find("{\n")
    assert start >= 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc, _end = json.JSONDecoder().raw_decode(proc.stdout[start:])
    lines = None
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "The way out, link by link":
                lines = task["hosts"]["localhost"]["msg"]
    assert lines is not None, proc.stdout[-3000:] + proc.stderr[-2000:]
    broken = None
    for index, line in enumerate(lines):
        match = re.match(r"^(\d) BROKEN (.*)$", line)
        if match:
            fix = lines[index + 1]
            assert fix.startswith("  fix: "), lines
            broken = {"link": int(match.group(1)), "id": LINK_IDS[int(match.group(1))],
                      "text": match.group(2), "fix": fix[len("  fix: "):]}
    return proc.returncode, lines, broken


def sh(host, command, check=True):
    """A shell command in a lab container (docker exec, as the lab's connection does)."""
    proc = subprocess.run(["docker", "exec", host, "sh", "-c", command],
                          capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, (host, command, proc.stdout, proc.stderr)
    return proc


def run_fix(fix):
    """Run the command a fix names: "on HOST: CMD (...)" in the container, or an
    `ansible ... -m meshfleet.mesh.cjdns_admin -a '...'` command line on the controller."""
    on = re.match(r"^on (\S+): (.*?)(?: \(|$)", fix)
    if on:
        sh(on.group(1), on.group(2))
        return on.group(2)
    match = re.search(r"(ansible \S+ -i \S+ -m meshfleet\.mesh\.cjdns_admin -a '[^']+')", fix)
    assert match, fix
    proc = subprocess.run(shlex.split(match.group(1)), cwd=ROOT,
                          env=dict(env(), ANSIBLE_STDOUT_CALLBACK="default"), capture_output=True,
                          text=True, timeout=120, check=False)
    # "rs-gw | CHANGED": the host matched and the call was made (no match would exit 0 too).
    assert proc.returncode == 0 and re.search(r"^\S+ \| (CHANGED|SUCCESS) =>", proc.stdout, re.M), (
        proc.stdout[-2000:] + proc.stderr[-2000:])
    return match.group(1)


def healthy():
    rc, lines, broken = diagnose()
    return (rc, lines) if rc == 0 and broken is None else None


def wait_healthy(seconds=150):
    """Bounded: the fleet is healthy again, or the test fails with the last diagnosis."""
    result = wait_for(healthy, seconds, interval=3)
    if not result:
        rc, lines, _broken = diagnose()
        pytest.fail("the fleet did not become healthy in %d s: rc %d\n%s"
                    % (seconds, rc, "\n".join(lines)))
    return result


def wait_broken(link, seconds=90):
    """Poll until the diagnosis names ``link``; return (rc, lines, broken)."""
    last = []

    def named():
        last[:] = [diagnose()]
        return last[0][2] is not None and last[0][2]["id"] == link

    wait_for(named, seconds, interval=3)
    rc, lines, broken = last[0]
    assert broken is not None and broken["id"] == link, "\n".join(lines)
    assert rc == 2, (rc, lines)  # a failed run: scripts can use it
    return rc, lines, broken


# The admin API of a node, run in its container: the collection's own client, fed over stdin.
ADMIN = (ROOT / "plugins" / "module_utils" / "cjdns_admin.py").read_text()


def admin_script(host, body):
    code = ADMIN + "\n" + body
    proc = subprocess.run(["docker", "exec", "-i", host, "python3", "-"], input=code,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def client_key():
    conf = json.loads(sh(CLIENT, "cat /etc/cjdns/cjdroute.conf").stdout)
    return conf["publicKey"]


def remove_pin():
    return admin_script(GATEWAY, """
admin = Admin(*admin_settings("/etc/cjdns/cjdroute.conf"))
for conn in tunnel_connections(admin):
    if not conn.get("outgoing") and conn["key"] == %r:
        admin.call("IpTunnel_removeConnection", {"connection": conn["connection"]})
        print("removed", conn["connection"])
""" % client_key())


def restore_pin():
    """The lab's own repair, whatever the printed fix did: allow the client again as the
    gateway's cjdroute.conf says, unless the running daemon already does."""
    admin_script(GATEWAY, """
import json
conf = json.load(open("/etc/cjdns/cjdroute.conf"))
admin = Admin(*admin_settings("/etc/cjdns/cjdroute.conf"))
live = [c["key"] for c in tunnel_connections(admin) if not c.get("outgoing")]
for entry in conf["router"]["ipTunnel"]["allowedConnections"]:
    if entry["publicKey"] == %r and entry["publicKey"] not in live:
        args = {"publicKeyOfAuthorizedNode": entry["publicKey"]}
        args.update((k, v) for k, v in entry.items() if k.startswith(("ip4", "ip6")))
        admin.call("IpTunnel_allowConnection", args)
""" % client_key())


def postrouting_handles():
    out = sh(GATEWAY, "nft -a list chain inet meshfleet postrouting").stdout
    return re.findall(r"masquerade.* # handle (\d+)", out)


CUT_PEERS = """table inet meshfleet_diagnose_test {
  chain in {
    type filter hook input priority -50; iifname "%(i)s" meta l4proto udp drop;
  }
  chain out {
    type filter hook output priority -50; oifname "%(i)s" meta l4proto udp drop;
  }
}
"""


def cut_peers():
    """cjdns UDP in and out of the client's peer interface dropped, in a table of its own."""
    proc = subprocess.run(["docker", "exec", "-i", CLIENT, "nft", "-f", "-"],
                          input=CUT_PEERS % {"i": PEER_INTERFACE}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


# name: (break, link it breaks, words in the fix, repair through the printed fix?, the
# lab's own repair, run whatever happened).
CASES = [
    ("cjdns stopped on the client",
     lambda: sh(CLIENT, "systemctl stop cjdns.service"),
     "cjdns", "on rs-ana: systemctl start cjdns.service", True,
     lambda: sh(CLIENT, "systemctl start cjdns.service")),
    ("peers cut on the client",
     cut_peers,
     "peers", "cjdns UDP passes on rs-ana interface riverside", False,
     lambda: sh(CLIENT, "nft delete table inet meshfleet_diagnose_test", check=False)),
    ("client route deleted",
     lambda: sh(CLIENT, "ip route del 128.0.0.0/1 dev %s" % TUN),
     "routes", "on rs-ana: ip route replace 128.0.0.0/1 dev cjdns0 proto 52 src", True,
     lambda: sh(CLIENT, "ip route show dev %s | grep -q '^128.0.0.0/1' || systemctl restart "
                        "cjdns.service" % TUN)),
    ("pin removed on the gateway",
     remove_pin,
     "pinned", "-m meshfleet.mesh.cjdns_admin -a", True,
     restore_pin),
    ("forwarding off on the gateway",
     lambda: sh(GATEWAY, "sysctl -w net.ipv4.ip_forward=0"),
     "forwarding", "on rs-gw: sysctl -p /etc/sysctl.d/90-meshfleet-gateway.conf", True,
     lambda: sh(GATEWAY, "sysctl -w net.ipv4.ip_forward=1")),
    ("masquerade deleted on the gateway",
     lambda: [sh(GATEWAY, "nft delete rule inet meshfleet postrouting handle %s" % h)
              for h in postrouting_handles()],
     "forwarding", "on rs-gw: systemctl reload-or-restart meshfleet-firewall.service", True,
     lambda: sh(GATEWAY, "systemctl reload-or-restart meshfleet-firewall.service")),
    ("gateway unreachable (container paused)",
     lambda: subprocess.run(["docker", "pause", GATEWAY], check=True, capture_output=True),
     "pinned", "bring rs-gw back (power, network, container), then check: ansible rs-gw", False,
     lambda: subprocess.run(["docker", "unpause", GATEWAY], check=False, capture_output=True)),
    ("uplink route deleted on the gateway",
     lambda: sh(GATEWAY, "ip route del default"),
     "uplink", "ip route replace default via ROUTER dev wan", False,
     lambda: sh(GATEWAY, "ip route replace default via %s dev %s" % (LAB_ROUTER, UPLINK))),
]


def test_a_host_outside_group_clients_is_refused():
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / "diagnose.yml"),
         "-e", "client=inet"],
        cwd=ROOT, env=dict(env(), ANSIBLE_STDOUT_CALLBACK="default"), capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "inet is not in group clients" in proc.stdout + proc.stderr


@REAL
def test_healthy_fleet_all_links_ok_read_only_within_budget(tmp_path):
    wait_healthy()
    budget = tmp_path / "budget.json"
    rc, lines, broken = diagnose(budget=budget)
    assert rc == 0 and broken is None, lines
    assert lines[0] == "way out of rs-ana (gateways: rs-gw):"
    assert [line.split()[:2] for line in lines[1:]] == [[str(n), "OK"] for n in range(1, 8)]
    hosts = json.loads(budget.read_text())["hosts"]
    assert sorted(h for h, v in hosts.items() if v["modules"]) == [CLIENT, GATEWAY]
    assert {h: v["modules"] for h, v in hosts.items() if v["modules"]} == {CLIENT: 1, GATEWAY: 1}
    assert {h: v["changed"] for h, v in hosts.items() if v["changed"]} == {}
    # check mode: the same, nothing changed
    rc, lines, broken = diagnose("--check")
    assert rc == 0 and broken is None, lines


@REAL
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_broken_link_is_named_with_its_fix_then_repaired(case):
    _name, breaker, link, fix_words, run_printed_fix, repair = case
    started = time.monotonic()
    try:
        breaker()
        _rc, lines, broken = wait_broken(link)
        assert fix_words in broken["fix"], "\n".join(lines)
        if run_printed_fix:
            run_fix(broken["fix"])
            wait_healthy(60)  # the printed fix alone repaired it
    finally:
        repair()
    wait_healthy()
    assert time.monotonic() - started < 200
