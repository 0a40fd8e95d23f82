"""The monitoring role's cjdns collector (templates/meshfleet-cjdns-metrics.py.j2): rendered
as the role renders it, then run against a fake admin API reply, its output must be
valid Prometheus text with the figures of that reply and nothing secret."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import jinja2
import pytest

ROLE = Path(__file__).resolve().parents[3] / "roles" / "monitoring"
GW_KEY = "3fdqgz2vtqb0wx02hhvx3wjmjqktyt567fcuvj3m72vw5u6ubu70.k"
ANN_KEY = "lpu15wrt3tbyyyw7hu0mp9qrs6kd2trjbn1qwvt1cfnvk7uryq90.k"
SECRET = "0123456789abcdef0123456789abcdef"
LINE = re.compile(r'^[a-z_]+(\{([a-z]+="[^"]*",?)*\})? -?[0-9.e+]+$')


def render(tmp_path, plan, probe=""):
    # Renders a Python program, not HTML: nothing to escape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    env.filters["comment"] = lambda text: "#\n# %s\n#" % text
    env.filters["to_json"] = json.dumps
    text = env.from_string(
        (ROLE / "templates" / "meshfleet-cjdns-metrics.py.j2").read_text()
    ).render(
        ansible_managed="Ansible managed",
        lookup=lambda kind, path: Path(path).read_text(),
        role_path=str(ROLE),
        __monitoring_config_path=str(tmp_path / "cjdroute.conf"),
        __monitoring_textfile_dir=str(tmp_path),
        __monitoring_plan=plan,
        monitoring_uplink_probe=probe,
    )
    (tmp_path / "cjdroute.conf").write_text(
        json.dumps(
            {"admin": {"bind": "127.0.0.1:11234", "password": SECRET}, "privateKey": "x" * 64}
        )
    )
    script = tmp_path / "collector.py"
    script.write_text(text)
    return script


class FakeAdmin:
    def __init__(self, host, port, password, timeout=3.0):
        assert (host, port, password) == ("127.0.0.1", 11234, SECRET)

    def call_all_pages(self, function, args=None, key=None):
        assert function == "InterfaceController_peerStats" and key == "peers"
        return [
            {
                "addr": "v21.0000.0000.0000.0013.%s" % GW_KEY,
                "state": "ESTABLISHED",
                "bytesIn": 1200,
                "bytesOut": 3400,
            },
            {
                "addr": "v21.0000.0000.0000.0015.%s" % ANN_KEY,
                "state": "UNRESPONSIVE",
                "bytesIn": 5,
                "bytesOut": 0,
            },
        ]

    def close(self):
        pass


def collector(tmp_path, plan, tunnels, monkeypatch, admin=FakeAdmin):
    namespace = runpy.run_path(str(render(tmp_path, plan)), run_name="collector")
    collect = namespace["collect"]
    collect.__globals__["Admin"] = admin
    collect.__globals__["tunnel_connections"] = lambda _admin: tunnels
    collect.__globals__["uplink_up"] = lambda: 1
    return collect


PLAN = {"names": {GW_KEY: "rs-gw", ANN_KEY: "rs-ana"}, "gateways": {"rs-gw": GW_KEY}, "uplink": ""}


def parse(text):
    for line in text.splitlines():
        if not line.startswith("#"):
            assert LINE.match(line), line
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }


def test_client_figures(tmp_path, monkeypatch):
    tunnels = [{"key": GW_KEY, "outgoing": 1, "ip4Address": "10.98.0.2", "connection": 0}]
    text = collector(tmp_path, PLAN, tunnels, monkeypatch)()
    got = parse(text)
    assert got["meshfleet_cjdns_up"] == 1
    assert got['meshfleet_cjdns_peers{state="ESTABLISHED"}'] == 1
    assert got['meshfleet_cjdns_peers{state="UNRESPONSIVE"}'] == 1
    assert got['meshfleet_cjdns_peer_up{peer="rs-gw"}'] == 1
    assert got['meshfleet_cjdns_peer_up{peer="rs-ana"}'] == 0
    assert got['meshfleet_cjdns_peer_transmit_bytes_total{peer="rs-gw"}'] == 3400
    assert got['meshfleet_cjdns_tunnel_up{gateway="rs-gw"}'] == 1
    assert "meshfleet_gateway_uplink_up" not in text
    assert SECRET not in text and "x" * 64 not in text


@pytest.mark.parametrize(
    "tunnels",
    [
        [],
        [{"key": GW_KEY, "outgoing": 1, "connection": 0}],
        [{"key": ANN_KEY, "outgoing": 1, "ip4Address": "10.98.0.2"}],
    ],
)
def test_tunnel_down_without_an_addressed_connection_to_that_gateway(
    tmp_path, monkeypatch, tunnels
):
    got = parse(collector(tmp_path, PLAN, tunnels, monkeypatch)())
    assert got['meshfleet_cjdns_tunnel_up{gateway="rs-gw"}'] == 0


def test_gateway_figures(tmp_path, monkeypatch):
    plan = dict(PLAN, gateways={}, uplink="wan")
    tunnels = [{"key": ANN_KEY, "outgoing": 0, "ip4Address": "10.98.0.2", "connection": 1}]
    got = parse(collector(tmp_path, plan, tunnels, monkeypatch)())
    assert got["meshfleet_gateway_clients_pinned"] == 1
    assert got['meshfleet_gateway_client_pinned{address="10.98.0.2",client="rs-ana"}'] == 1
    assert got['meshfleet_gateway_uplink_up{interface="wan"}'] == 1
    assert not any(k.startswith("meshfleet_cjdns_tunnel_up") for k in got)


def test_daemon_down_is_a_figure_not_a_crash(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise OSError("connection refused")

    got = parse(collector(tmp_path, PLAN, [], monkeypatch, admin=refuse)())
    assert got["meshfleet_cjdns_up"] == 0
    assert got['meshfleet_cjdns_tunnel_up{gateway="rs-gw"}'] == 0


def test_written_atomically_where_the_exporter_reads(tmp_path, monkeypatch):
    namespace = runpy.run_path(str(render(tmp_path, PLAN)), run_name="collector")
    namespace["write"](str(tmp_path / "meshfleet_cjdns.prom"), "meshfleet_cjdns_up 1\n")
    assert (tmp_path / "meshfleet_cjdns.prom").read_text() == "meshfleet_cjdns_up 1\n"
    assert [p.name for p in tmp_path.glob("*.tmp")] == []
