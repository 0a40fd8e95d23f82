#!/usr/bin/env python3
"""Benchmark (not a test): converge time of lab fleets of 5, 10 and 20 nodes.

For each size it starts that many systemd containers (one neighbourhood segment, one
gateway per five nodes, the rest its clients, statically peered), then measures with the
real cjdroute of dist/cjdroute (`make cjdroute`; the stand-in with CJDNS_STANDIN=1 or
without a build):

  - first converge of playbooks/site.yml,
  - a no-op rerun of it (and the module executions per host, from the run_budget callback),
  - a bare `ansible -m setup` over the same nodes,

and prints a table with the ratio of the no-op rerun to the bare setup.  Run it with the
project's environment:  `. scripts/env.sh && benchmarks/bench_fleet.py [5 10 20]`
(or `make bench`).  It removes its containers when done.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".build" / "bench"


def inventory(size):
    nodes = ["bn%02d" % i for i in range(1, size + 1)]
    gateways = nodes[::5]
    clients = [n for n in nodes if n not in gateways]
    pool = {gw: "10.%d.%d.0/24" % (80 + i // 200, i % 200) for i, gw in enumerate(gateways)}
    hosts = {}
    for i, node in enumerate(nodes):
        gw = gateways[i // 5]
        vars_ = {"molecule_networks": ["hood", "wan"] if node in gateways else ["hood"]}
        if node in gateways:
            vars_["gateway_pool"] = pool[node]
        else:
            vars_["client_gateways"] = [gw]
            vars_["cjdns_peers"] = [gw]
        hosts[node] = vars_
    return {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker",
                "cjdns_peer_interface": "hood",
                "gateway_uplink_interface": "wan",
                "cjdns_registry_path": str(WORK / ("registry-%d.yml" % size)),
                "gateway_allocations_path": str(WORK / ("allocations-%d.yml" % size)),
            },
            "children": {
                "mesh_nodes": {"hosts": hosts},
                "gateways": {"hosts": {g: None for g in gateways}},
                "clients": {"hosts": {c: None for c in clients}},
            },
        }
    }


def run(args, env, budget_file=None):
    env = dict(env)
    if budget_file:
        env["MESHFLEET_RUN_BUDGET_OUTPUT"] = str(budget_file)
    start = time.monotonic()
    proc = subprocess.run(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit("command failed: %s" % " ".join(args))
    return took


def bench(size, env):
    inv_dir = WORK / ("fleet-%d" % size)
    inv_dir.mkdir(parents=True, exist_ok=True)
    (inv_dir / "hosts.yml").write_text(json.dumps(inventory(size), indent=1))
    # The shared artifact variables (real build or stand-in) come first.
    inv = ["-i", str(ROOT / "molecule/resources/inventory"), "-i", str(inv_dir)]
    env = dict(env, MOLECULE_SCENARIO_NAME="bench%d" % size,
               MOLECULE_EPHEMERAL_DIRECTORY=str(WORK))
    for stale in WORK.glob("*-%d.yml" % size):
        stale.unlink()
    run(["ansible-playbook", *inv, "molecule/resources/create.yml"], env)
    try:
        first = run(["ansible-playbook", *inv, "playbooks/site.yml"], env,
                    WORK / ("first-%d.json" % size))
        rerun_file = WORK / ("rerun-%d.json" % size)
        rerun = run(["ansible-playbook", *inv, "playbooks/site.yml"], env, rerun_file)
        setup = run(["ansible", *inv, "mesh_nodes", "-m", "ansible.builtin.setup"], env)
    finally:
        run(["ansible-playbook", *inv, "molecule/resources/destroy.yml"], env)
    hosts = json.loads(rerun_file.read_text())["hosts"]
    return {
        "size": size, "first": first, "rerun": rerun, "setup": setup,
        "changed": sum(h["changed"] for h in hosts.values()),
        "modules": max(h["modules"] for h in hosts.values()),
    }


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [5, 10, 20]
    # One artifact for every fleet size (MOLECULE_SCENARIO_NAME changes per size).
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="meshfleet.mesh.run_budget",
               ANSIBLE_FORKS="20", ANSIBLE_PIPELINING="True",
               MESHFLEET_ARTIFACT_DIR=str(WORK / "artifacts"))
    WORK.mkdir(parents=True, exist_ok=True)
    run(["ansible-playbook", "molecule/resources/artifact.yml"], env)
    load_before = os.getloadavg()[0]
    rows = [bench(size, env) for size in sizes]
    mode_file = WORK / "artifacts" / "mode"
    mode = "real cjdroute" if mode_file.read_text().strip() == "real" else "stand-in daemon"
    print("\nfleet converge benchmark (%s, forks 20, pipelining; %d cores, load average %.1f "
          "before, %.1f after)" % (mode, os.cpu_count(), load_before, os.getloadavg()[0]))
    print("%5s %12s %12s %10s %14s %10s %14s" % ("nodes", "first (s)", "no-op (s)", "setup (s)",
                                                 "no-op/setup", "changed", "max modules"))
    for r in rows:
        print("%5d %12.1f %12.1f %10.1f %14.1f %10d %14d" % (
            r["size"], r["first"], r["rerun"], r["setup"], r["rerun"] / r["setup"],
            r["changed"], r["modules"]))


if __name__ == "__main__":
    main()
