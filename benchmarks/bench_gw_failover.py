#!/usr/bin/env python3
# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outage times of the client's gateway failover, measured with a real cjdroute.

Not a CI test: it needs root, network namespaces and a real cjdroute build.

    sudo [CJDNS_ARTIFACT=/path/to/cjdroute] python3 benchmarks/bench_gw_failover.py \
        [--no-failover] [--addresses-from-cjdns] [--client-restarts N] [--keep]

The cjdroute is CJDNS_ARTIFACT, by default the amd64 build of `make cjdroute`
(dist/cjdroute/amd64/cjdroute). It builds, on this machine, five network namespaces (prefix mfb-):

    lan --- cl ===(UDP peering)=== gw1 --- uplink 192.0.2.1/24 -------- inet 203.0.113.10
                 \\=(UDP peering)=== gw2 --- uplink 198.51.100.1/24 ---/

`cl` is a cjdns client with two gateways (gw1 first); each gateway issues it one address
with ip4Prefix 0 and masquerades out of its uplink; `inet` stands for the Internet and
echoes every UDP datagram with the source address it saw, so each reply says which
gateway carried it; `lan` is a host behind the client (client_lan_prefix), masqueraded
out of the TUN only.  The client runs roles/client/files/meshfleet-gw-failover (unless
--no-failover).  Three flows send a datagram every 20 ms to inet: from the client (a new
socket per datagram), from the LAN host (new socket each) and from the LAN host on one
long-lived socket (one conntrack entry all along).  Then, in order:

  1. kill gw1's cjdroute            -> outage until traffic flows through gw2
  2. start gw1's cjdroute again     -> time until traffic is back on gw1
  3. take gw1's uplink down         -> outage until traffic flows through gw2
  4. bring gw1's uplink up          -> time until traffic is back on gw1
  5. restart the client's cjdroute  -> outage, and the gateway used afterwards (N times)

and prints one line per event and flow.  Everything is removed at the end (--keep
leaves it for inspection; run with --cleanup to remove it later).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "molecule"))
import udp_flow  # noqa: E402  (the test harness both this and the client scenario use)

HARNESS = ROOT / "tests" / "molecule" / "udp_flow.py"
FAILOVER = ROOT / "roles" / "client" / "files" / "meshfleet-gw-failover"
KEYS = ROOT / "tests" / "data" / "key-vectors.tsv"
NS = ["mfb-inet", "mfb-gw1", "mfb-gw2", "mfb-cl", "mfb-lan"]
TARGET, PORT, STEP = "203.0.113.10", 9000, 0.02
GATEWAYS = {
    # name: (mesh link /30 client side, gateway side, uplink, inet side, pool, issued address)
    "gw1": ("10.200.1.1", "10.200.1.2", "192.0.2.1", "192.0.2.254", "10.64.1.0/24",
            "10.64.1.7"),
    "gw2": ("10.200.2.1", "10.200.2.2", "198.51.100.1", "198.51.100.254", "10.65.2.0/24",
            "10.65.2.9"),
}
UPLINK = {GATEWAYS[g][2]: g for g in GATEWAYS}
LAN_PREFIX = "192.168.50.0/24"


def run(ns, *cmd, check=True, **kw):
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def cleanup():
    for ns in NS:
        if os.path.exists("/run/netns/" + ns):
            pids = run(None, "ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            run(None, "ip", "netns", "del", ns, check=False)


def veth(a_ns, a_name, a_addr, b_ns, b_name, b_addr):
    run(None, "ip", "link", "add", a_name, "netns", a_ns, "type", "veth",
        "peer", b_name, "netns", b_ns)
    run(a_ns, "ip", "addr", "add", a_addr, "dev", a_name)
    run(b_ns, "ip", "addr", "add", b_addr, "dev", b_name)
    run(a_ns, "ip", "link", "set", a_name, "up")
    run(b_ns, "ip", "link", "set", b_name, "up")


class Bench:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.cjdroute = args.cjdroute
        keys = [line.split("\t") for line in KEYS.read_text().splitlines()[1:]]
        self.keys = {"cl": keys[0], "gw1": keys[1], "gw2": keys[2]}
        self.procs: dict[str, subprocess.Popen] = {}
        self.flows: dict[str, list] = {}

    # ------------------------------------------------------------------ topology
    def build(self):
        cleanup()
        for ns in NS:
            run(None, "ip", "netns", "add", ns)
            run(ns, "ip", "link", "set", "lo", "up")
        run("mfb-inet", "ip", "addr", "add", TARGET + "/32", "dev", "lo")
        for name, (cl, gw, up, inet, _pool, _addr) in GATEWAYS.items():
            ns = "mfb-" + name
            veth("mfb-cl", "to" + name, cl + "/30", ns, "mesh", gw + "/30")
            veth(ns, "uplink", up + "/24", "mfb-inet", "to" + name, inet + "/24")
            run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            run(ns, "ip", "route", "add", "default", "via", inet)
            nft = self.work / (name + ".nft")
            nft.write_text("table ip mfb {\n chain post {\n"
                           "  type nat hook postrouting priority srcnat; policy accept;\n"
                           '  oifname "uplink" masquerade\n }\n}\n')
            run(ns, "nft", "-f", nft)
        veth("mfb-lan", "eth0", "192.168.50.2/24", "mfb-cl", "lan", "192.168.50.1/24")
        run("mfb-lan", "ip", "route", "add", "default", "via", "192.168.50.1")
        # The client role's LAN sharing: forwarding on, masquerade from the LAN prefix
        # out of the TUN only (the failover's probes keep their own source address).
        run("mfb-cl", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        nft = self.work / "cl.nft"
        nft.write_text("table inet mfb {\n chain postrouting {\n"
                       "  type nat hook postrouting priority srcnat; policy accept;\n"
                       f'  ip saddr {LAN_PREFIX} oifname "cjdns0" masquerade\n }}\n}}\n')
        run("mfb-cl", "nft", "-f", nft)

    def conf(self, name):
        priv, pub, ipv6 = self.keys[name]
        conf = {
            "privateKey": priv, "publicKey": pub, "ipv6": ipv6,
            # 64 characters: cjdroute hashes only 63 bytes of password + cookie
            "admin": {"bind": "127.0.0.1:11234",
                      "password": hashlib.sha256(name.encode()).hexdigest()},
            "authorizedPasswords": [],
            "interfaces": {"UDPInterface": [
                {"bind": "0.0.0.0:41300", "beacon": 0, "connectTo": {}}]},
            "router": {"interface": {"type": "TUNInterface", "tunDevice": "cjdns0"},
                       "ipTunnel": {"allowedConnections": [], "outgoingConnections": []}},
            "security": [{"setuser": "nobody", "keepNetAdmin": 1}, {"chroot": "/var/run/"},
                         {"nofiles": 0}, {"noforks": 1}, {"seccomp": 1}, {"setupComplete": 1}],
            "logging": {"logTo": "stdout"}, "noBackground": 1, "pipe": "mfb-%s.sock" % name,
        }
        if name == "cl":
            udp = conf["interfaces"]["UDPInterface"][0]["connectTo"]
            for gw, (_name, addr, *_rest) in GATEWAYS.items():
                udp[addr + ":41300"] = {"password": "pw-" + gw, "publicKey": self.keys[gw][1],
                                        "login": "cl"}
                conf["router"]["ipTunnel"]["outgoingConnections"].append(self.keys[gw][1])
        else:
            conf["authorizedPasswords"] = [{"password": "pw-" + name, "user": "cl"}]
            conf["router"]["ipTunnel"]["allowedConnections"] = [{
                "publicKey": self.keys["cl"][1], "ip4Address": GATEWAYS[name][5],
                "ip4Prefix": 0, "ip4Alloc": 32}]
        path = self.work / (name + ".conf")
        path.write_text(json.dumps(conf, indent=1))
        return path

    def start_cjdns(self, name):
        ns = "mfb-" + name
        log = open(self.work / (name + ".log"), "a")  # noqa: SIM115
        # A killed cjdroute leaves its pipe behind, and the next one's angel then connects
        # to the stale file before its core replaces it, and exits: remove it first.
        Path("/tmp/mfb-%s.sock" % name).unlink(missing_ok=True)  # noqa: S108
        with open(self.conf(name)) as conf:
            self.procs[name] = subprocess.Popen(
                ["ip", "netns", "exec", ns, self.cjdroute, "--nobg"], stdin=conf, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        if name in GATEWAYS:  # cjdns configures nothing for IPv4 on a gateway
            for _i in range(100):
                if run(ns, "ip", "link", "show", "cjdns0", check=False).returncode == 0:
                    break
                time.sleep(0.05)
            run(ns, "ip", "link", "set", "cjdns0", "up")
            run(ns, "ip", "route", "replace", GATEWAYS[name][4], "dev", "cjdns0")

    def stop(self, name):
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ns = "mfb-" + name
        for _i in range(100):  # the core runs as nobody in its own process: wait for the TUN to go
            if run(ns, "ip", "link", "show", "cjdns0", check=False).returncode != 0:
                return
            time.sleep(0.05)

    def start_failover(self):
        cfg = {
            "tun_device": "cjdns0", "interval": 1, "down_after": 2, "up_after": 3,
            "probe_targets": [TARGET],
            "state_file": str(self.work / "failover-state.json"),
            "cjdns_config": str(self.work / "cl.conf"),
            "gateways": [{"name": g, "public_key": self.keys[g][1],
                          "address": "" if self.args.addresses_from_cjdns else GATEWAYS[g][5]}
                         for g in GATEWAYS],
        }
        path = self.work / "gw-failover.json"
        path.write_text(json.dumps(cfg))
        self.procs["failover"] = subprocess.Popen(
            ["ip", "netns", "exec", "mfb-cl", sys.executable, FAILOVER, "--config", path],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "failover.log", "w"),  # noqa: SIM115
            start_new_session=True)

    def start_flows(self):
        self.procs["echo"] = subprocess.Popen(
            ["ip", "netns", "exec", "mfb-inet", sys.executable, HARNESS, "echo", TARGET, str(PORT)],
            start_new_session=True)
        for flow, ns, steady in (("client", "mfb-cl", "new"), ("lan", "mfb-lan", "new"),
                                 ("lan-steady", "mfb-lan", "steady")):
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-u", HARNESS, "flow", TARGET,
                 str(PORT), str(STEP), steady],
                stdout=subprocess.PIPE, text=True, start_new_session=True)
            self.procs["flow-" + flow] = proc
            self.flows[flow] = []
            threading.Thread(target=self._read, args=(proc, self.flows[flow]), daemon=True).start()

    @staticmethod
    def _read(proc, out):
        for line in proc.stdout:
            out.extend((sent, recv, UPLINK.get(via, via))
                       for sent, recv, via in udp_flow.parse(line))

    # ------------------------------------------------------------------ measuring
    def replies(self, flow, since):
        return [r for r in list(self.flows[flow]) if r[0] >= since]

    def wait_via(self, gw, since, timeout, settle=1.0):
        """Until every flow's replies have come via `gw` for `settle` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            now = time.monotonic()
            ok = True
            for flow in self.flows:
                recent = self.replies(flow, max(since, now - settle - 0.3))
                if not recent or recent[0][0] > now - settle or any(r[2] != gw for r in recent):
                    ok = False
            if ok:
                return True
            time.sleep(0.1)
        return False

    def report(self, event, t0, expect, timeout):
        reached = self.wait_via(expect, t0, timeout)
        time.sleep(0.3)
        for flow in self.flows:
            outage, settled = udp_flow.measure(self.flows[flow], t0, expect, time.monotonic(), STEP)
            print("%-34s %-11s outage %6.2f s   on %s from t+%s%s" % (
                event, flow, outage, expect, "%.2f s" % settled if settled is not None else "never",
                "" if reached else "   (NOT REACHED within %d s)" % timeout), flush=True)
        return reached

    def main(self):
        self.build()
        for name in ("gw1", "gw2", "cl"):
            self.start_cjdns(name)
        if not self.args.no_failover:
            self.start_failover()
        t0 = time.monotonic()
        self.start_flows()
        first_gw = "gw1" if not self.args.no_failover else None
        if first_gw and not self.report("start (all up)", t0, "gw1", 60):
            return 1
        if first_gw is None:  # without the failover, whichever cjdns chose
            time.sleep(8)
            last = self.flows["client"][-1][2] if self.flows["client"] else None
            print("without failover: traffic goes via %s" % last)
            first_gw = last or "gw1"
        other = "gw2" if first_gw == "gw1" else "gw1"

        t = time.monotonic()
        self.stop(first_gw)
        self.report("kill %s's cjdroute" % first_gw, t, other, 30)
        t = time.monotonic()
        self.start_cjdns(first_gw)
        self.report("start %s's cjdroute again" % first_gw, t, first_gw, 150)

        t = time.monotonic()
        run("mfb-" + first_gw, "ip", "link", "set", "uplink", "down")
        self.report("%s uplink down" % first_gw, t, other, 30)
        t = time.monotonic()
        run("mfb-" + first_gw, "ip", "link", "set", "uplink", "up")
        run("mfb-" + first_gw, "ip", "route", "replace", "default", "via", GATEWAYS[first_gw][3])
        self.report("%s uplink up" % first_gw, t, first_gw, 60)

        for i in range(self.args.client_restarts):
            t = time.monotonic()
            self.stop("cl")
            self.start_cjdns("cl")
            self.report("restart client cjdroute (%d)" % (i + 1), t, first_gw, 60)
        if "failover" in self.procs:
            self.cpu_report()
        return 0

    def cpu_report(self):
        """CPU time the service used (user + system, children included)."""
        tick = os.sysconf("SC_CLK_TCK")
        pid = self.procs["failover"].pid
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        cpu = sum(int(f) for f in fields[11:15]) / tick
        age = float(Path("/proc/uptime").read_text().split()[0]) - int(fields[19]) / tick
        print("failover service: %.2f s CPU in %.0f s (%.2f %%)" % (cpu, age, 100 * cpu / age))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-failover", action="store_true", help="cjdns alone, for comparison")
    parser.add_argument("--addresses-from-cjdns", action="store_true",
                        help="give the service only the gateways' keys, not their addresses")
    parser.add_argument("--client-restarts", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the namespaces for inspection")
    parser.add_argument("--cleanup", action="store_true", help="only remove a kept set-up")
    args = parser.parse_args()
    if args.cleanup:
        cleanup()
        return 0
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dist", "cjdroute",
                           "amd64", "cjdroute")
    args.cjdroute = os.environ.get("CJDNS_ARTIFACT") or default
    if not os.access(args.cjdroute, os.X_OK):
        sys.exit("no cjdroute at %s: run make cjdroute, or set CJDNS_ARTIFACT to a real "
                 "cjdroute binary" % args.cjdroute)
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="mfb-"))
    bench = Bench(args, work)
    try:
        return bench.main()
    finally:
        for proc in bench.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not args.keep:
            cleanup()
        print("logs: %s" % work)


if __name__ == "__main__":
    sys.exit(main())
