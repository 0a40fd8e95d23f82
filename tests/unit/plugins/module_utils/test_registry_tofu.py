"""Tests for plugins/module_utils/registry.py: the fleet's key registry (trust on first use).

Real key pairs from tests/data/key-vectors.tsv; concurrent writers are real processes.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import yaml
from ansible_collections.meshfleet.mesh.plugins.module_utils import registry
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import CjdnsKeyError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyvectors import VECTORS, entry

A, B = VECTORS[0], VECTORS[1]


def snapshot(path):
    st_ = os.stat(path)
    return st_.st_ino, st_.st_mtime_ns, Path(path).read_bytes()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "inventory" / "cjdns_registry.yml")


# ----------------------------------------------------------------------- load / dump


def test_missing_and_empty_files_are_empty_registries(tmp_path):
    assert registry.load(str(tmp_path / "nope.yml")) == {}
    (tmp_path / "empty.yml").write_text("")
    assert registry.load(str(tmp_path / "empty.yml")) == {}
    (tmp_path / "header.yml").write_text(registry.HEADER)
    assert registry.load(str(tmp_path / "header.yml")) == {}
    (tmp_path / "nodes.yml").write_text("nodes:\n")
    assert registry.load(str(tmp_path / "nodes.yml")) == {}


def test_dump_load_round_trip_with_every_vector(tmp_path):
    nodes = {"node-%02d" % i: entry(v) for i, v in enumerate(VECTORS)}
    text = registry.dump(nodes)
    assert text.startswith(registry.HEADER)
    assert yaml.safe_load(text) == {"schema_version": registry.SCHEMA_VERSION, "nodes": nodes}
    # The version right under the header, then hosts sorted, block style: a reviewable file.
    body = text[len(registry.HEADER):]
    assert body.splitlines()[:2] == ["schema_version: 1", "nodes:"]
    hosts = [line.strip(" :") for line in body.splitlines() if line.startswith("  ")
             and not line.startswith("    ")]
    assert hosts == sorted(nodes)
    file = tmp_path / "r.yml"
    file.write_text(text)
    assert registry.load(str(file)) == nodes


class Tagged(str):
    """Stands for the str subclasses Ansible hands over (safe_dump refuses them)."""


def test_dump_takes_str_subclasses():
    text = registry.dump({Tagged("n1"): {Tagged("public_key"): Tagged(A["public_key"]),
                                         "ipv6": Tagged(A["ipv6"])}})
    assert yaml.safe_load(text)["nodes"] == {"n1": entry(A)}


HOSTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=20)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(HOSTS, st.sampled_from(VECTORS), max_size=12))
def test_round_trip_any_host_names(tmp_path, nodes):
    nodes = {host: entry(v) for host, v in nodes.items()}
    file = tmp_path / "rt.yml"
    file.write_text(registry.dump(nodes))
    assert registry.load(str(file)) == nodes


@pytest.mark.parametrize("text, message", [
    ("nodes: [unclosed\n", "is not valid YAML"),
    ("nodes:\n  n1: {public_key: x\n", "is not valid YAML"),
    ("\tnodes: {}\n", "is not valid YAML"),
    ("- n1\n", "must be a mapping with a 'nodes' mapping"),
    ("nodes: [n1]\n", "must be a mapping with a 'nodes' mapping"),
    ("nodes:\n  n1: just-a-string\n", "node 'n1' has no public_key"),
    ("nodes:\n  n1: {ipv6: 'fc00::1'}\n", "node 'n1' has no public_key"),
    ("nodes:\n  n1: {public_key: not-a-key}\n", "node 'n1': public key 'not-a-key'"),
])
def test_bad_files_are_named_in_the_message(tmp_path, text, message):
    file = tmp_path / "broken_registry.yml"
    file.write_text(text)
    with pytest.raises(registry.RegistryError) as info:
        registry.load(str(file))
    assert str(info.value).startswith("key registry %s" % file)
    assert message in str(info.value)


def test_wrong_ipv6_for_the_key_is_detected(tmp_path):
    file = tmp_path / "r.yml"
    file.write_text(registry.dump({"n1": entry(A), "n2": {"public_key": B["public_key"],
                                                          "ipv6": A["ipv6"]}}))
    with pytest.raises(registry.RegistryError) as info:
        registry.load(str(file))
    assert str(info.value) == ("key registry %s: node 'n2' lists ipv6 %s but its key gives %s"
                               % (file, A["ipv6"], B["ipv6"]))
    file.write_text("nodes:\n  n1: {public_key: %s}\n" % A["public_key"])
    with pytest.raises(registry.RegistryError, match="node 'n1' lists ipv6 None but its key "
                                                     "gives " + A["ipv6"]):
        registry.load(str(file))


def test_unreadable_path_is_a_registry_error_naming_it(tmp_path):
    with pytest.raises(registry.RegistryError) as info:
        registry.load(str(tmp_path))  # a directory
    assert str(info.value) == "key registry %s cannot be read: Is a directory" % tmp_path
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"nodes: \xff\xfe\n")
    with pytest.raises(registry.RegistryError) as info:
        registry.load(str(binary))
    assert str(info.value).startswith("key registry %s cannot be read: " % binary)


# ------------------------------------------------------------------------------ record


def test_first_record_writes_then_nothing_changes(path):
    changed, nodes = registry.record(path, "rs-ben", A["public_key"])
    assert changed is True
    assert nodes == {"rs-ben": entry(A)}
    assert registry.load(path) == {"rs-ben": entry(A)}
    text = Path(path).read_text()
    assert text.startswith(registry.HEADER)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)  # public data, reviewable
    before = snapshot(path)
    assert registry.record(path, "rs-ben", A["public_key"]) == (False, {"rs-ben": entry(A)})
    assert snapshot(path) == before
    # No temporary file is left beside the registry.
    assert sorted(p.name for p in Path(path).parent.iterdir()
                  if not p.name.endswith(".lock")) == ["cjdns_registry.yml"]


def test_other_hosts_are_kept(path):
    for i, vector in enumerate(VECTORS[:5]):
        registry.record(path, "n%d" % i, vector["public_key"])
    assert registry.load(path) == {"n%d" % i: entry(v) for i, v in enumerate(VECTORS[:5])}


def test_changed_key_is_refused_naming_host_and_both_keys(path):
    registry.record(path, "rs-cam", A["public_key"])
    before = snapshot(path)
    with pytest.raises(registry.RegistryError) as info:
        registry.record(path, "rs-cam", B["public_key"])
    message = str(info.value)
    assert message.startswith("host rs-cam presents cjdns key %s but the key registry %s "
                              "records %s." % (B["public_key"], path, A["public_key"]))
    assert "cjdns_accept_key_change=true" in message
    assert snapshot(path) == before
    # Check mode refuses it too.
    with pytest.raises(registry.RegistryError):
        registry.record(path, "rs-cam", B["public_key"], write=False)


def test_accept_change_overwrites_the_entry(path):
    registry.record(path, "rs-cam", A["public_key"])
    registry.record(path, "other", VECTORS[4]["public_key"])
    changed, nodes = registry.record(path, "rs-cam", B["public_key"], accept_change=True)
    assert changed is True
    assert nodes["rs-cam"] == entry(B)
    assert registry.load(path) == {"rs-cam": entry(B), "other": entry(VECTORS[4])}
    # Accepting when nothing changed is a no-op.
    before = snapshot(path)
    assert registry.record(path, "rs-cam", B["public_key"], accept_change=True)[0] is False
    assert snapshot(path) == before


def test_check_mode_leaves_the_file_untouched(path):
    changed, nodes = registry.record(path, "n1", A["public_key"], write=False)
    assert (changed, nodes) == (True, {"n1": entry(A)})
    assert not Path(path).exists()

    registry.record(path, "n1", A["public_key"])
    before = snapshot(path)
    changed, nodes = registry.record(path, "n2", B["public_key"], write=False)
    assert (changed, nodes) == (True, {"n1": entry(A), "n2": entry(B)})
    changed, nodes = registry.record(path, "n1", B["public_key"], accept_change=True,
                                     write=False)
    assert (changed, nodes["n1"]) == (True, entry(B))
    assert snapshot(path) == before
    assert registry.load(path) == {"n1": entry(A)}


@pytest.mark.parametrize("bad", ["", "x.k", A["public_key"][:-2], A["public_key"].upper(),
                                 "358rcy4vyrbwpby41jyz3q15rlgfu4h7wdpgd4mdtn18f1m19lm0.k"])
def test_bad_key_is_refused_before_anything_is_written(path, bad):
    registry.record(path, "n1", A["public_key"])
    before = snapshot(path)
    with pytest.raises(CjdnsKeyError):
        registry.record(path, "n2", bad)
    assert snapshot(path) == before


def test_a_corrupt_registry_is_not_overwritten(path):
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text("nodes: [oops\n")
    with pytest.raises(registry.RegistryError, match="is not valid YAML"):
        registry.record(path, "n1", A["public_key"])
    assert Path(path).read_text() == "nodes: [oops\n"


# ------------------------------------------------------------------ concurrent writers


def _writer(path, barrier, hosts):
    barrier.wait()
    for host, public_key in hosts:
        registry.record(path, host, public_key)


def test_concurrent_writers_lose_nothing(path):
    """8 processes record different hosts into one file at the same moment (several
    rounds each, to give a lost update every chance); every host must be there."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    rounds = 5
    jobs = []
    expected = {}
    for worker in range(8):
        hosts = []
        for round_ in range(rounds):
            vector = VECTORS[(worker * rounds + round_) % len(VECTORS)]
            host = "w%d-r%d" % (worker, round_)
            hosts.append((host, vector["public_key"]))
            expected[host] = entry(vector)
        jobs.append(ctx.Process(target=_writer, args=(path, barrier, hosts)))
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    assert [job.exitcode for job in jobs] == [0] * 8
    assert registry.load(path) == expected
    assert len(expected) == 40
