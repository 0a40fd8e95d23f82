"""Tests for plugins/filter/addressing.py and its sidecar documentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.filter import addressing as filters
from ansible_collections.meshfleet.mesh.plugins.module_utils import addressing

FILTERS = filters.FilterModule().filters()
PREFIX = "fd12:3456:789a::/48"
LINKS = [
    {
        "name": "riverside-hilltop",
        "ends": [{"host": "pi-b", "interface": "eth1"}, {"host": "pi-a", "interface": "eth0"}],
    },
    {
        "name": "hilltop-school",
        "ends": [{"host": "pi-b", "interface": "eth2"}, {"host": "pi-c", "interface": "eth0"}],
    },
]


def test_filter_names():
    assert set(FILTERS) == {"allocate_addresses", "link_addresses", "link_plan"}
    assert all(callable(f) for f in FILTERS.values())


def test_filters_match_module_utils():
    clients = ["pi-garden", "pi-library", "pi-school"]
    kwargs = {"pinned": {"pi-school": "10.64.0.10"}, "reserved": ["10.64.255.0/24"]}
    assert FILTERS["allocate_addresses"](clients, "10.64.0.0/16", **kwargs) == (
        addressing.allocate_addresses(clients, "10.64.0.0/16", **kwargs)
    )
    assert FILTERS["link_addresses"]("a-b", prefix=PREFIX) == addressing.link_addresses(
        "a-b", prefix=PREFIX
    )
    assert FILTERS["link_addresses"]("a-b", PREFIX, None, 7)["subnet"] == 7
    assert FILTERS["link_plan"](LINKS, fleet_id="f") == addressing.link_plan(LINKS, fleet_id="f")


def test_positional_arguments_follow_the_documented_order():
    previous = FILTERS["allocate_addresses"](["a"], "10.0.0.0/24")
    assert (
        FILTERS["allocate_addresses"](["a", "b"], "10.0.0.0/24", {}, [], "10.0.0.254", previous)[
            "a"
        ]
        == previous["a"]
    )
    assert FILTERS["link_plan"](LINKS, PREFIX) == FILTERS["link_plan"](LINKS, prefix=PREFIX)


def test_omit_means_default():
    from ansible._internal._templating._utils import Omit

    default = FILTERS["allocate_addresses"](["a", "b"], "10.0.0.0/29")
    assert FILTERS["allocate_addresses"](["a", "b"], "10.0.0.0/29", gateway_address=Omit) == default
    legacy = "__omit_place_holder__0123456789abcdef"
    assert FILTERS["allocate_addresses"](["a", "b"], "10.0.0.0/29", previous=legacy) == default
    assert FILTERS["link_plan"](LINKS, prefix=Omit, fleet_id="f") == FILTERS["link_plan"](
        LINKS, fleet_id="f"
    )


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "message"),
    [
        (
            "allocate_addresses",
            (["a", "b"], "10.0.0.0/24"),
            {"pinned": {"a": "10.0.0.9", "b": "10.0.0.9"}},
            "address 10.0.0.9 is pinned for both client 'a' and client 'b'",
        ),
        (
            "allocate_addresses",
            (["a", "b", "c"], "10.0.0.0/30"),
            {},
            "pool 10.0.0.0/30 is too small: capacity 1",
        ),
        ("allocate_addresses", (["a"], "10.0.0.1"), {}, "not in CIDR notation"),
        ("link_addresses", ("a-b",), {"prefix": "fc00:1:2::/48"}, "cjdns"),
        ("link_addresses", ("a-b",), {}, "no link prefix"),
        ("link_plan", ([{"name": "x", "ends": []}],), {"prefix": PREFIX}, "link 'x' has 0 ends"),
    ],
)
def test_errors_become_filter_errors_with_the_same_message(name, args, kwargs, message):
    with pytest.raises(addressing.AddressingError) as plain:
        getattr(addressing, name)(*args, **kwargs)
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS[name](*args, **kwargs)
    assert message in str(err.value)
    assert err.value.message == str(plain.value)


TEMPLAR_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.template import Templar, trust_as_template
templar = Templar(loader=None, variables=json.loads(sys.argv[2]))
out = [templar.template(trust_as_template(t)) for t in json.loads(sys.argv[3])]
try:
    templar.template(trust_as_template(
        "{{ ['a', 'b'] | meshfleet.mesh.allocate_addresses('10.0.0.0/24',"
        " pinned={'a': '10.0.0.9', 'b': '10.0.0.9'}) }}"))
except Exception as exc:
    out.append(str(exc))
print(json.dumps(out))
"""


def test_through_templar():
    """Loaded by collection name in a real template, in its own process so this process's
    imports stay untouched."""
    collections = next(p for p in sys.path if p.endswith(os.path.join(".build", "collections")))
    templates = [
        "{{ clients | meshfleet.mesh.allocate_addresses(pool, gateway_address=omit) }}",
        "{{ clients | meshfleet.mesh.allocate_addresses(pool, gateway_address=gw) }}",
        "{{ 'riverside-hilltop' | meshfleet.mesh.link_addresses(prefix=prefix) }}",
        "{{ links | meshfleet.mesh.link_plan(fleet_id='riverside-community-mesh') }}",
    ]
    variables = {
        "clients": ["pi-garden", "pi-school"],
        "pool": "10.64.0.0/16",
        "gw": "10.64.0.254",
        "prefix": PREFIX,
        "links": LINKS,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            TEMPLAR_SCRIPT,
            collections,
            json.dumps(variables),
            json.dumps(templates),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    with_omit, with_gateway, link, plan, error = json.loads(proc.stdout)
    expected = addressing.allocate_addresses(["pi-garden", "pi-school"], "10.64.0.0/16")
    assert with_omit == expected
    assert with_gateway == expected  # neither client hashes to .1 or .254
    assert link == addressing.link_addresses("riverside-hilltop", prefix=PREFIX)
    assert plan == addressing.link_plan(LINKS, fleet_id="riverside-community-mesh")
    assert "address 10.0.0.9 is pinned for both client 'a' and client 'b'" in error


ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")


@pytest.mark.skipif(not ANSIBLE_DOC.exists(), reason="ansible-doc not installed next to python")
def test_sidecar_docs_render():
    collections = next(p for p in sys.path if p.endswith(os.path.join(".build", "collections")))
    names = [f"meshfleet.mesh.{n}" for n in ("allocate_addresses", "link_addresses", "link_plan")]
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "--json", "-t", "filter", *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections),
    )
    docs = json.loads(proc.stdout)
    assert set(docs) == set(names)
    for name, entry in docs.items():
        doc = entry["doc"]
        assert doc["name"] == name.rsplit(".", 1)[1]
        assert str(doc["version_added"]) == "0.1.0"
        assert doc["short_description"] and doc["description"]
        assert "_input" in doc["options"]
        assert all("type" in opt for opt in doc["options"].values())
        assert entry["examples"] and entry["return"]
    assert docs["meshfleet.mesh.allocate_addresses"]["doc"]["positional"] == "pool"
    assert set(docs["meshfleet.mesh.allocate_addresses"]["doc"]["options"]) == {
        "_input",
        "pool",
        "pinned",
        "reserved",
        "gateway_address",
        "previous",
    }
