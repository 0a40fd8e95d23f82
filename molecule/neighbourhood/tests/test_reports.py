"""The validation playbook (side_effect) wrote its report; in real-daemon mode every
answer that ran is positive (the playbook itself fails on a negative one)."""

import json
from pathlib import Path

from meshtest import real_daemon

REPORT = Path(__file__).resolve().parents[3] / ".build" / "lab" / "validate.json"


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
