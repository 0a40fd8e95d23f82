"""The firewall role's planner: the table from the roles' parts (roles/firewall/README.md)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter.firewall import firewall_table
from ansible_collections.meshfleet.mesh.plugins.module_utils.firewall import assemble

CHAINS = [
    {"name": "input"},
    {"name": "forward"},
    {"name": "forward_mangle"},
    {"name": "postrouting"},
]


def test_rules_in_role_order_tagged_with_their_role():
    got = assemble(
        {
            "meshfleet_nft_part_monitoring": {"input": ["tcp dport 9100 drop"]},
            "meshfleet_nft_part_bridge": {"input": ["udp dport 41000 accept"]},
            "meshfleet_nft_part_gateway": {
                "forward": ["a accept"],
                "postrouting": ["masq"],
                "policy": {"forward": "drop"},
            },
        },
        CHAINS,
    )
    assert got["problems"] == []
    assert got["rules"]["input"] == [
        {"role": "bridge", "rule": "udp dport 41000 accept"},
        {"role": "monitoring", "rule": "tcp dport 9100 drop"},
    ]
    assert got["rules"]["forward_mangle"] == []
    assert got["policy"] == {"forward": "drop"}


def test_drop_wins_over_accept():
    got = assemble(
        {"a": {"policy": {"forward": "drop"}}, "b": {"policy": {"forward": "accept"}}}, CHAINS
    )
    assert got["policy"] == {"forward": "drop"}


def test_no_parts_no_rules():
    got = assemble({}, CHAINS)
    assert got["problems"] == [] and all(v == [] for v in got["rules"].values())


@pytest.mark.parametrize(
    "part, words",
    [
        (["tcp dport 22 accept"], "must be a mapping"),
        ({"output": ["x"]}, "names chain 'output'"),
        ({"input": "tcp dport 22 accept"}, "must be a list of nft rule strings"),
        ({"input": [""]}, "must be a list of nft rule strings"),
        ({"policy": {"input": "reject"}}, "accept or drop"),
        ({"policy": {"output": "drop"}}, "policy.output"),
    ],
)
def test_malformed_parts_are_named(part, words):
    got = assemble({"meshfleet_nft_part_x": part}, CHAINS)
    assert "rules" not in got and any(
        words in p and "meshfleet_nft_part_x" in p for p in got["problems"]
    )


def test_filter():
    assert firewall_table(["meshfleet_nft_part_a"], [{"input": ["r"]}], CHAINS)["rules"][
        "input"
    ] == [{"role": "a", "rule": "r"}]
    with pytest.raises(AnsibleFilterError):
        firewall_table(["a", "b"], [{}], CHAINS)
