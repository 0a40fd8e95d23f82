"""mesh_point planning against real data: iw 5.19 output of a mac80211_hwsim radio (Debian
12 kernel) and Debian's regulatory.db (wireless-regdb 2026.05.30, ISC licence)."""

import copy
import struct
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils.mesh_point import (
    MeshPointError,
    channel_block,
    channel_to_mhz,
    conflicting_units,
    parse_iw_dev,
    parse_iw_list,
    parse_iw_reg,
    parse_regdb,
    plan,
    regulatory_problem,
    select_radio,
)

DATA = Path(__file__).resolve().parents[3] / "data" / "mesh_point"
REGDB = parse_regdb((DATA / "regulatory.db").read_bytes())
PHYS = parse_iw_list((DATA / "iw-list-hwsim.txt").read_text())
DEV = parse_iw_dev((DATA / "iw-dev-hwsim.txt").read_text())


def radio(name="phy1", index=1, mac="02:00:00:00:01:00", modes=None, interfaces=None):
    info = copy.deepcopy(PHYS["phy1"])
    return {
        "name": name, "index": index, "mac": mac, "addresses": [mac],
        "modes": info["modes"] if modes is None else modes, "bands": info["bands"],
        "rfkill": {"soft": False, "hard": False},
        "interfaces": interfaces if interfaces is not None else [
            {"name": "wlan%d" % index, "type": "managed", "mac": mac, "up": False,
             "addresses": []}],
    }


def test_iw_list_modes_bands_and_frequencies():
    phy = PHYS["phy1"]
    assert phy["index"] == 1
    assert "mesh point" in phy["modes"] and "managed" in phy["modes"]
    band1, band2 = phy["bands"][1], phy["bands"][2]
    assert band1["ht40"] and not band1["vht"]
    assert band2["ht40"] and band2["vht"]
    # Captured after `iw reg set CA`: flags are CA's.
    ch = {f["channel"]: f for f in band2["frequencies"]}
    assert ch[36] == {"mhz": 5180, "channel": 36, "disabled": False, "no_ir": False, "radar": False}
    assert ch[52]["radar"] and not ch[52]["no_ir"]
    assert ch[169]["mhz"] == 5845 and not ch[169]["disabled"]
    ch1 = {f["channel"]: f for f in band1["frequencies"]}
    assert ch1[14]["disabled"] and not ch1[12]["disabled"]
    assert [f["mhz"] for f in band1["frequencies"]][:2] == [2412, 2417]
    assert {f["mhz"] for f in phy["bands"][4]["frequencies"]} >= {5955, 7115}  # 6 GHz


def test_iw_list_frequency_with_decimals_and_other_flags():
    text = ("Wiphy phy7\n\twiphy index: 7\n\tSupported interface modes:\n\t\t * managed\n"
            "\tBand 1:\n\t\tCapabilities: 0x1\n\t\tFrequencies:\n"
            "\t\t\t* 2412.0 MHz [1] (20.0 dBm)\n\t\t\t* 2484.0 MHz [14] (disabled)\n"
            "\tSupported commands:\n\t\t * new_interface\n")
    phy = parse_iw_list(text)["phy7"]
    assert phy["modes"] == ["managed"]
    assert not phy["bands"][1]["ht40"]
    assert [(f["mhz"], f["disabled"]) for f in phy["bands"][1]["frequencies"]] == [
        (2412, False), (2484, True)]


def test_iw_dev_maps_interfaces_to_phys():
    by_name = {i["name"]: i for i in DEV}
    assert by_name["mesh0"] == {"phy_index": 1, "name": "mesh0", "type": "mesh point",
                                "mac": "42:00:00:00:01:00"}
    assert by_name["wlan0"]["phy_index"] == 0 and by_name["wlan0"]["type"] == "managed"


def test_iw_reg_global_country_and_self_managed():
    text = ("global\ncountry CA: DFS-FCC\n\t(2400 - 2483 @ 40), (N/A, 36), (N/A)\n\n"
            "phy#2 (self-managed)\ncountry DE: DFS-ETSI\n\t(2400 - 2483 @ 40), (N/A, 20), (N/A)\n")
    assert parse_iw_reg(text) == {"country": "CA", "self_managed": [2]}
    assert parse_iw_reg("global\ncountry 00: DFS-UNSET\n")["country"] == "00"


def test_regdb_matches_what_the_kernel_applied():
    """`iw reg get` on the test VM after `iw reg set CA` printed exactly these rules."""
    rules = [(r["start_mhz"], r["end_mhz"], r["max_bw_mhz"], r["flags"])
             for r in REGDB["CA"]["rules"]]
    assert rules == [
        (2400, 2483.5, 40, []),
        (5150, 5250, 80, ["NO-OUTDOOR", "AUTO-BW"]),
        (5250, 5350, 80, ["DFS", "AUTO-BW"]),
        (5470, 5730, 160, ["DFS"]),
        (5730, 5850, 80, ["AUTO-BW"]),
        (5850, 5895, 40, ["AUTO-BW"]),
        (5925, 7125, 320, ["NO-OUTDOOR"]),
    ]
    assert REGDB["CA"]["dfs_region"] == 1  # FCC
    assert len(REGDB) > 150 and "00" in REGDB


def test_regdb_rejects_other_files():
    with pytest.raises(MeshPointError, match="not a version 20"):
        parse_regdb(struct.pack(">II", 0x52474442, 19) + b"\0" * 8)
    with pytest.raises(MeshPointError, match="empty or truncated"):
        parse_regdb(b"RGDB")


def test_channels_and_blocks():
    assert channel_to_mhz(1) == 2412 and channel_to_mhz(13) == 2472 and channel_to_mhz(14) == 2484
    assert channel_to_mhz(36) == 5180 and channel_to_mhz(165) == 5825
    with pytest.raises(MeshPointError):
        channel_to_mhz(15)
    assert channel_block(5180, 20) == [5180]
    assert channel_block(5200, 40) == [5180, 5200]
    assert channel_block(5240, 80) == [5180, 5200, 5220, 5240]
    assert channel_block(5765, 80) == [5745, 5765, 5785, 5805]
    with pytest.raises(MeshPointError, match="only supported on 5 GHz"):
        channel_block(2412, 40)


@pytest.mark.parametrize(("country", "block", "width", "problem"), [
    ("CA", [5180], 20, None),
    ("CA", [5180, 5200, 5220, 5240], 80, None),
    ("CA", [2412], 20, None),
    ("CA", [2484], 20, "no rule allows 2474-2494 MHz"),
    ("CA", [5260], 20, "radar detection"),
    ("US", [5865], 20, "NO-IR"),
    ("00", [5180], 20, "NO-IR"),
    ("JP", [2484], 20, "no OFDM"),
    # AUTO-BW: 5730-5850 (80) touches 5850-5895 (40, AUTO-BW): a 40 MHz channel there is fine.
    ("CA", [5845, 5865], 40, None),
])
def test_regulatory_problem(country, block, width, problem):
    found = regulatory_problem(REGDB[country]["rules"], block, width)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_select_by_mac_interface_and_automatically():
    radios = [radio("phy0", 0, "02:00:00:00:00:00"), radio("phy1", 1, "02:00:00:00:01:00")]
    assert select_radio(radios, "mesh0", mac="02:00:00:00:01:00")["name"] == "phy1"
    assert select_radio(radios, "mesh0", interface="wlan1")["name"] == "phy1"
    assert select_radio(radios, "mesh0")["name"] == "phy0"
    # Once the mesh interface exists, automatic selection keeps its radio.
    radios[1]["interfaces"].append({"name": "mesh0", "type": "mesh point",
                                    "mac": "42:00:00:00:01:00", "up": True, "addresses": []})
    assert select_radio(radios, "mesh0")["name"] == "phy1"


def test_automatic_selection_skips_a_radio_in_use():
    busy = radio("phy0", 0, "02:00:00:00:00:00")
    busy["interfaces"][0].update(up=True, addresses=["192.168.1.20"])
    radios = [busy, radio("phy1", 1, "02:00:00:00:01:00")]
    assert select_radio(radios, "mesh0")["name"] == "phy1"
    with pytest.raises(MeshPointError, match="wlan0 is up with address 192.168.1.20"):
        select_radio(radios, "mesh0", interface="wlan0")


def test_no_mesh_radio_lists_radios_and_modes():
    radios = [radio("phy0", 0, "b8:27:eb:00:00:01", modes=["managed", "AP", "monitor"])]
    with pytest.raises(MeshPointError) as err:
        select_radio(radios, "mesh0")
    message = str(err.value)
    assert "no radio on this node supports mesh point" in message
    assert "phy0 (MAC b8:27:eb:00:00:01, interfaces: wlan0; modes: managed, AP, monitor)" in message
    with pytest.raises(MeshPointError, match="selects phy0, which does not support mesh point"):
        select_radio(radios, "mesh0", interface="wlan0")


def test_missing_interface_and_mac():
    radios = [radio()]
    with pytest.raises(MeshPointError,
                       match="mesh_point_interface 'wlan9' does not exist.*wlan1 \\(phy1\\)"):
        select_radio(radios, "mesh0", interface="wlan9")
    with pytest.raises(MeshPointError, match="no radio has mesh_point_mac 00:11:22:33:44:55"):
        select_radio(radios, "mesh0", mac="00:11:22:33:44:55")
    with pytest.raises(MeshPointError, match="no wireless radio at all"):
        select_radio([], "mesh0")


def test_plan_on_5ghz():
    result = plan([radio()], REGDB, "CA", channel=36, width=20, mac="02:00:00:00:01:00")
    assert result == {"radio": "phy1", "radio_mac": "02:00:00:00:01:00",
                      "radio_interfaces": ["wlan1"], "frequency": 5180, "channel": 36,
                      "width": 20, "block": [5180], "band": "5GHz"}
    assert plan([radio()], REGDB, "CA", frequency=2437)["channel"] == 6


def test_plan_refuses_with_the_usable_channels():
    with pytest.raises(MeshPointError) as err:
        plan([radio()], REGDB, "CA", channel=52)
    message = str(err.value)
    assert "mesh_point_channel 52 (5260 MHz)" in message and "radar detection" in message
    assert "36 (5180 MHz)" in message and "149 (5745 MHz)" in message
    assert "52 (5260 MHz)," not in message.split("can use")[1]


def test_plan_refuses_what_the_radio_lacks():
    with pytest.raises(MeshPointError, match="phy1 does not support 4920 MHz"):
        plan([radio()], REGDB, "JP", frequency=4920)
    no_vht = radio()
    no_vht["bands"][2]["vht"] = False
    with pytest.raises(MeshPointError, match="no VHT"):
        plan([no_vht], REGDB, "CA", channel=36, width=80)


def test_plan_refuses_unknown_country_and_6ghz():
    with pytest.raises(MeshPointError,
                       match="'XX' is not in this node's regulatory database; it knows AD"):
        plan([radio()], REGDB, "XX", channel=36)
    with pytest.raises(MeshPointError, match="not on 2.4 or 5 GHz"):
        plan([radio()], REGDB, "CA", frequency=5955)


def test_plan_uses_radio_flags_once_the_country_is_in_force():
    # The radio's flags describe the domain in force; before the target country is set
    # (world domain: 5 GHz is no-IR) they say nothing about the target country.
    blocked = radio()
    for f in blocked["bands"][2]["frequencies"]:
        f["no_ir"] = True
    assert plan([blocked], REGDB, "CA", channel=36, current_country="00")["frequency"] == 5180
    with pytest.raises(MeshPointError, match="reports 5180 MHz as no_ir"):
        plan([blocked], REGDB, "CA", channel=36, current_country="CA")
    assert plan([blocked], REGDB, "CA", channel=36, current_country="CA",
                self_managed=[1])["frequency"] == 5180


def _unit(load="loaded", enabled="disabled", active="inactive"):
    return {"load": load, "enabled": enabled, "active": active}


def test_conflicting_wpa_supplicant_units():
    units = {
        "wpa_supplicant.service": _unit(enabled="enabled", active="failed"),
        "wpa_supplicant@wlan1.service": _unit(enabled="enabled"),
        "wpa_supplicant@wlan0.service": _unit(enabled="enabled", active="active"),
        "wpa_supplicant-nl80211@mesh0.service": _unit(active="active"),
        "wpa_supplicant@mesh0.service": _unit(),
        "NetworkManager.service": _unit(load="not-found", enabled=""),
    }
    # wlan0 is another radio's interface: not ours to stop.
    assert conflicting_units(units, ["wlan1", "mesh0"], network_manager=False) == [
        "wpa_supplicant-nl80211@mesh0.service", "wpa_supplicant.service",
        "wpa_supplicant@wlan1.service"]
    # NetworkManager drives Wi-Fi through the global service: it stays.
    assert "wpa_supplicant.service" not in conflicting_units(units, ["wlan1"], network_manager=True)
    masked = {"wpa_supplicant.service": _unit(load="masked", enabled="masked", active="failed")}
    assert conflicting_units(masked, ["wlan1"], network_manager=False) == []
