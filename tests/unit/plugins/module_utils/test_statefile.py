"""Tests for plugins/module_utils/statefile.py: the one atomic write, secret files on the
nodes, and the loader of the controller's YAML state files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.meshfleet.mesh.plugins.module_utils import statefile


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Refused(Exception):
    pass


# ------------------------------------------------------------------------ atomic_write


@pytest.mark.parametrize("data, expected", [
    ("a: 1\n", b"a: 1\n"),
    ("h\u00e9\n", "h\u00e9\n".encode()),
    (b"\x00\xff", b"\x00\xff"),
])
def test_atomic_write_text_and_bytes(tmp_path, data, expected):
    path = tmp_path / "state"
    statefile.atomic_write(str(path), data)
    assert path.read_bytes() == expected and mode(path) == 0o644
    assert os.listdir(tmp_path) == ["state"]


def test_atomic_write_replaces_with_the_new_mode(tmp_path):
    path = tmp_path / "state"
    path.write_text("old")
    path.chmod(0o666)
    statefile.atomic_write(str(path), "new", mode=0o640)
    assert path.read_text() == "new" and mode(path) == 0o640


def test_temporary_file_has_its_mode_and_prefix_before_the_move(tmp_path):
    path = tmp_path / "state"
    seen = []

    def move(src, dest):
        seen.append((os.path.dirname(src), os.path.basename(src), mode(src),
                     Path(src).read_text(), dest))
        os.replace(src, dest)

    statefile.atomic_write(str(path), "x", mode=0o600, prefix=".mine.", move=move)
    ((directory, name, tmp_mode, content, dest),) = seen
    assert directory == str(tmp_path) and name.startswith(".mine.")
    assert (tmp_mode, content, dest) == (0o600, "x", str(path))
    seen.clear()
    statefile.atomic_write(str(path), "y", move=move)
    assert seen[0][1].startswith(".state.")


def test_a_failed_move_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "state"
    path.write_text("old")

    def move(src, dest):
        raise Refused

    with pytest.raises(Refused):
        statefile.atomic_write(str(path), "new", move=move)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state"]


def test_the_nodes_need_no_pyyaml(tmp_path):
    """Modules import statefile on the nodes, where PyYAML may be missing."""
    collections = next(p for p in sys.path if p.endswith(os.path.join(".build", "collections")))
    script = (
        "import sys; sys.modules['yaml'] = None; sys.path.insert(0, sys.argv[1])\n"
        "from ansible_collections.meshfleet.mesh.plugins.module_utils import statefile\n"
        "statefile.atomic_write(sys.argv[2], 'ok')\n"
    )
    subprocess.run([sys.executable, "-c", script, collections, str(tmp_path / "f")],
                   check=True, timeout=60)
    assert (tmp_path / "f").read_text() == "ok"


# ------------------------------------------------------------------------ secret files


class FakeModule:
    """Records how write_secret calls AnsibleModule.atomic_move (the module tests run the
    real one)."""

    def __init__(self):
        self.calls = []

    def atomic_move(self, src, dest, keep_dest_attrs=True):
        umask = os.umask(0)
        os.umask(umask)
        self.calls.append({"keep_dest_attrs": keep_dest_attrs, "umask": umask,
                           "mode": mode(src), "dest": dest})
        os.replace(src, dest)


def test_write_secret_makes_a_0600_file_in_a_0700_directory(tmp_path):
    module = FakeModule()
    path = tmp_path / "etc" / "cjdns" / "private.key"
    old_umask = os.umask(0o022)
    try:
        statefile.write_secret(module, str(path), "secret\n", prefix=".key.")
        assert os.umask(0o022) == 0o022  # restored
    finally:
        os.umask(old_umask)
    assert path.read_text() == "secret\n" and mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert module.calls == [{"keep_dest_attrs": False, "umask": 0o077, "mode": 0o600,
                             "dest": str(path)}]
    assert os.listdir(path.parent) == ["private.key"]


def test_write_secret_over_a_readable_file(tmp_path):
    path = tmp_path / "cjdroute.conf"
    path.write_text("{}")
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    statefile.write_secret(FakeModule(), str(path), "{\"a\": 1}\n")
    assert path.read_text() == "{\"a\": 1}\n" and mode(path) == 0o600
    assert mode(tmp_path) == 0o755  # an existing directory is left alone


def test_secret_attributes(tmp_path):
    path = tmp_path / "key"
    assert statefile.secret_attributes_wrong(str(path)) is False  # missing
    path.write_text("k")
    path.chmod(0o640)
    assert statefile.secret_attributes_wrong(str(path)) is True
    statefile.fix_secret_attributes(str(path))
    assert mode(path) == 0o600
    assert statefile.secret_attributes_wrong(str(path)) is (
        os.geteuid() == 0 and (path.stat().st_uid, path.stat().st_gid) != (0, 0))


# ------------------------------------------------------------------------ load_mapping


def load(path):
    return statefile.load_mapping(str(path), "test state", "items", Refused)


@pytest.mark.parametrize("text", [None, "", "# only a comment\n", "items:\n", "items: {}\n"])
def test_missing_or_empty_is_an_empty_mapping(tmp_path, text):
    path = tmp_path / "state.yml"
    if text is not None:
        path.write_text(text)
    assert load(path) == {}


def test_the_mapping_under_the_key(tmp_path):
    path = tmp_path / "state.yml"
    path.write_text("items: {a: {x: 1}}\nother: 2\n")
    assert load(path) == {"a": {"x": 1}}


@pytest.mark.parametrize("content, message", [
    ("items: [unclosed\n", "test state {path} is not valid YAML: "),
    ("- a\n", "test state {path} must be a mapping with a 'items' mapping"),
    ("items: [a]\n", "test state {path} must be a mapping with a 'items' mapping"),
    (b"items: \xff\xfe\n", "test state {path} cannot be read: "),
])
def test_bad_files_raise_the_callers_error_naming_them(tmp_path, content, message):
    path = tmp_path / "state.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(Refused) as info:
        load(path)
    assert str(info.value).startswith(message.format(path=path))


def test_unreadable_path(tmp_path):
    with pytest.raises(Refused) as info:
        load(tmp_path)
    assert str(info.value) == "test state %s cannot be read: Is a directory" % tmp_path
