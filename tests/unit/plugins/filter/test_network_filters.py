"""meshfleet.mesh.cidr_overlaps."""

import ipaddress

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.network import cidr_overlaps
from hypothesis import given
from hypothesis import strategies as st


def test_returns_only_the_overlapping_entries_in_order():
    others = ["10.99.0.0/24", "192.168.0.0/16", "", None, "192.168.50.128/25", "fd00::/8"]
    assert cidr_overlaps("192.168.50.0/24", others) == ["192.168.0.0/16", "192.168.50.128/25"]


def test_adjacent_networks_do_not_overlap():
    assert cidr_overlaps("10.99.1.0/24", ["10.99.0.0/24", "10.99.2.0/24"]) == []


def test_a_single_address_is_a_network_of_one():
    assert cidr_overlaps("10.99.0.0/24", ["10.99.0.7"]) == ["10.99.0.7"]


def test_ipv6():
    assert cidr_overlaps("2001:db8:99::/64", ["2001:db8::/32", "10.0.0.0/8"]) == ["2001:db8::/32"]


@pytest.mark.parametrize("bad, message", [
    ("192.168.50.1/24", "client_lan_prefix '192.168.50.1/24' has host bits set; did you mean "
                        "192.168.50.0/24?"),
    ("192.168.50.0", "client_lan_prefix '192.168.50.0' is not a network in CIDR notation"),
    ("lan/24", "client_lan_prefix 'lan/24' is not a valid network"),
    (24, "client_lan_prefix 24 is not a network in CIDR notation"),
])
def test_bad_input_names_what_it_is(bad, message):
    with pytest.raises(AnsibleFilterError, match="^" + message.replace("?", r"\?")):
        cidr_overlaps(bad, [], "client_lan_prefix")


@given(st.integers(0, 2**32 - 1), st.integers(8, 32), st.integers(0, 2**32 - 1), st.integers(8, 32))
def test_agrees_with_set_intersection(a, alen, b, blen):
    net_a = ipaddress.ip_network((a, alen), strict=False)
    net_b = ipaddress.ip_network((b, blen), strict=False)
    a_range = range(int(net_a[0]), int(net_a[-1]) + 1)
    shared = int(net_b[0]) in a_range or int(net_a[0]) in range(int(net_b[0]), int(net_b[-1]) + 1)
    assert (cidr_overlaps(str(net_a), [str(net_b)]) == [str(net_b)]) == shared
