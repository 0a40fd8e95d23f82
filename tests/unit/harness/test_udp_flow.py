"""The outage measure of the UDP flow test harness (tests/molecule/udp_flow.py), which the
client scenario and the failover benchmark report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "molecule"))
import udp_flow  # noqa: E402

STEP = 0.05


def replies(start, end, via, step=STEP):
    n = round((end - start) / step)
    return [(start + i * step, start + i * step + 0.01, via) for i in range(n)]


def test_a_gap_is_the_outage_and_the_switch_is_when_it_settled():
    flow = replies(0.0, 10.0, "gw1") + replies(12.5, 20.0, "gw2")
    outage, settled = udp_flow.measure(flow, 10.0, "gw2", 20.0, STEP)
    assert outage == pytest.approx(12.5 - (10.0 - STEP) - STEP)
    assert settled == pytest.approx(2.5)


def test_no_interruption_is_no_outage():
    flow = replies(0.0, 10.0, "gw2") + replies(10.0, 20.0, "gw1")
    outage, settled = udp_flow.measure(flow, 10.0, "gw1", 20.0, STEP)
    assert outage == pytest.approx(0.0, abs=1e-9) and settled == pytest.approx(0.0)


def test_no_reply_since_the_event_is_an_outage_until_now_and_never_settled():
    outage, settled = udp_flow.measure(replies(0.0, 10.0, "gw1"), 10.0, "gw2", 25.0, STEP)
    assert outage == pytest.approx(25.0 - (10.0 - STEP) - STEP) and settled is None


def test_no_reply_at_all():
    outage, settled = udp_flow.measure([], 10.0, "gw1", 25.0, STEP)
    assert outage == pytest.approx(16.0 - STEP) and settled is None


def test_a_late_reply_through_the_old_gateway_delays_settling():
    flow = replies(0.0, 10.0, "gw1") + replies(12.0, 13.0, "gw2") + [(13.0, 13.1, "gw1")] \
        + replies(13.05, 20.0, "gw2")
    assert udp_flow.measure(flow, 10.0, "gw2", 20.0, STEP)[1] == pytest.approx(3.05)


def test_parse_reads_the_flow_lines():
    assert udp_flow.parse("1 10.5000 10.5100 192.0.2.1\nnoise\n") == [(10.5, 10.51, "192.0.2.1")]
