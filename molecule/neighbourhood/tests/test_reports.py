"""The validation playbook (side_effect) wrote its report; in real-daemon mode every
answer that ran is positive (the playbook itself fails on a negative one)."""

import json
import subprocess
from pathlib import Path

import yaml
from meshtest import real_daemon

ROOT = Path(__file__).resolve().parents[3]
REPORT = ROOT / ".build" / "lab" / "validate.json"


def test_validation_report_answers_the_three_questions():
    report = json.loads(REPORT.read_text())
    assert report["pinning"] and report["capacity"]
    if real_daemon():
        assert all(p["status"] == "yes" for p in report["pinning"])
        assert report["refused"] and all(r["status"] == "yes" for r in report["refused"])
        assert all(c["alone_mbps"] and c["together_mbps"] for c in report["capacity"])
        assert report["bridged"] and all(b["rtt_ms"] is not None for b in report["bridged"])
    else:
        assert "stand-in" in report["daemon"]
        assert all(p["status"].startswith("not run") for p in report["pinning"])


def test_an_arm64_client_reaches_the_internet_through_its_gateway():
    """rs-cam stands for a Raspberry Pi: an arm64 userland (qemu-user) running the arm64
    cjdroute, whose traffic exits through its gateway like any other client's."""
    hosts = yaml.safe_load((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    cam = hosts["all"]["children"]["mesh_nodes"]["children"]["hood_riverside"]["hosts"]["rs-cam"]
    assert cam["molecule_arch"] == "arm64"
    machine = subprocess.run(["docker", "exec", "rs-cam", "uname", "-m"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert machine == "aarch64"
    report = json.loads(REPORT.read_text())
    (entry,) = [p for p in report["pinning"] if p["client"] == "rs-cam"]
    if real_daemon():
        assert entry["status"] == "yes", entry
    else:
        assert entry["status"].startswith("not run")
