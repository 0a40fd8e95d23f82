"""Tests for plugins/module_utils/statefile.py: the one atomic write, secret files on the
nodes, and the controller's YAML state files (StateFile: lock, atomic write, schema
version)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
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


# --------------------------------------------------------------------------- StateFile

HEADER = "# test state, written by the tests\n"


def state(path, **kwargs):
    kwargs.setdefault("header", HEADER)
    return statefile.StateFile(str(path), "test state", "items", Refused, **kwargs)


def load(path):
    return state(path).read()


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
    ("schema_version: x\nitems: {}\n",
     "test state {path} has schema_version 'x': not a positive integer"),
    ("schema_version: 0\nitems: {}\n",
     "test state {path} has schema_version 0: not a positive integer"),
    ("schema_version: true\nitems: {}\n", "test state {path} has schema_version True: "),
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


def test_check_refuses_entries_of_the_wrong_shape(tmp_path):
    def check(items):
        if any(not isinstance(v, int) for v in items.values()):
            raise Refused("not a counter")

    path = tmp_path / "state.yml"
    path.write_text("items: {a: 1, b: two}\n")
    with pytest.raises(Refused, match="not a counter"):
        state(path, check=check).read()
    with pytest.raises(Refused, match="not a counter"):
        with state(path, check=check).update():
            pass
    assert path.read_text() == "items: {a: 1, b: two}\n"


def test_written_file_carries_the_schema_version_under_the_header(tmp_path):
    path = tmp_path / "state.yml"
    with state(path, schema_version=3).update() as update:
        update.data["b"] = {"z": "1", "y": "2"}
        update.data["a"] = {"x": 1}
    assert update.changed is True
    # Stable, reviewable text: the header, the version, then keys sorted in block style.
    assert path.read_text() == (HEADER + "schema_version: 3\n"
                                "items:\n  a:\n    x: 1\n  b:\n    y: '2'\n    z: '1'\n")
    assert yaml.safe_load(path.read_text())["schema_version"] == 3
    assert mode(path) == 0o644
    # Only the file and its lock: the temporary file was renamed into place.
    assert sorted(os.listdir(tmp_path)) == [".state.yml.lock", "state.yml"]


class Tagged(str):
    """Stands for the str subclasses Ansible hands over (safe_dump refuses them)."""


def test_dump_takes_str_subclasses(tmp_path):
    text = state(tmp_path / "s.yml").dump({Tagged("a"): {Tagged("k"): [Tagged("v")]}})
    assert yaml.safe_load(text) == {"schema_version": 1, "items": {"a": {"k": ["v"]}}}


def test_legacy_file_without_version_is_read_as_version_1_and_kept_until_a_change(tmp_path):
    path = tmp_path / "state.yml"
    legacy = "# written before schema_version\nitems:\n  a:\n    x: 1\n"
    path.write_text(legacy)
    before = os.stat(path)
    assert load(path) == {"a": {"x": 1}}
    with state(path).update() as update:
        update.data["a"] = {"x": 1}  # the same content: nothing to write
    assert update.changed is False
    assert path.read_text() == legacy and os.stat(path).st_ino == before.st_ino
    with state(path).update() as update:
        update.data["b"] = {"x": 2}
    assert update.changed is True
    assert path.read_text() == (HEADER + "schema_version: 1\n"
                                "items:\n  a:\n    x: 1\n  b:\n    x: 2\n")


def test_file_of_a_newer_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "state.yml"
    newer = "schema_version: 2\nitems: {a: {x: 1}}\nsomething_new: {}\n"
    path.write_text(newer)
    with pytest.raises(Refused) as info:
        load(path)
    assert str(info.value) == (
        "test state %s has schema_version 2: it was written by a newer meshfleet.mesh (this "
        "one reads up to version 1); run that version of the collection, or upgrade this "
        "one" % path)
    with pytest.raises(Refused, match="written by a newer meshfleet.mesh"):
        with state(path).update() as update:
            update.data["b"] = {}
    assert path.read_text() == newer
    assert state(path, schema_version=2).read() == {"a": {"x": 1}}


def test_unchanged_content_is_not_rewritten(tmp_path):
    path = tmp_path / "state.yml"
    with state(path).update() as update:
        update.data["a"] = {"x": 1}
    before = os.stat(path)
    with state(path).update() as update:
        update.data = {"a": {"x": 1}}
    assert update.changed is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path):
    path = tmp_path / "state.yml"
    with state(path).update(write=False) as update:
        update.data["a"] = {"x": 1}
    assert update.changed is True and not path.exists()


def test_an_exception_in_the_block_writes_nothing(tmp_path):
    path = tmp_path / "state.yml"
    path.write_text("items: {a: {x: 1}}\n")
    with pytest.raises(RuntimeError):
        with state(path).update() as update:
            update.data["b"] = {"x": 2}
            raise RuntimeError("refused by the caller")
    assert path.read_text() == "items: {a: {x: 1}}\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "state.yml"
    with state(path).update() as update:
        update.data["a"] = {"x": 1}
    old = path.read_bytes()

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(statefile.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        with state(path).update() as update:
            update.data["b"] = {"x": 2}
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == [".state.yml.lock", "state.yml"]


def _hold_lock(path, ready, release):
    with state(path).locked():
        ready.set()
        release.wait(30)


def test_lock_timeout_names_the_lock_file(tmp_path):
    path = tmp_path / "state.yml"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        start = time.monotonic()
        with pytest.raises(Refused) as info:
            with state(path, timeout=0.5).update():
                pass
        assert 0.5 <= time.monotonic() - start < 5
        lock = tmp_path / ".state.yml.lock"
        assert str(info.value) == (
            "test state %s: could not lock %s within 0.5 s: another process holds it "
            "(another ansible-playbook run on this inventory?); let it finish, or find it "
            "with: fuser -v %s" % (path, lock, lock))
    finally:
        release.set()
        holder.join(30)
    assert holder.exitcode == 0
    with state(path, timeout=5).update() as update:  # free again
        update.data["a"] = 1


def test_a_killed_holder_does_not_keep_the_lock(tmp_path):
    """The kernel drops an flock when its process dies, even by SIGKILL."""
    path = tmp_path / "state.yml"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    assert ready.wait(30)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert (tmp_path / ".state.yml.lock").exists()
    with state(path, timeout=5).update() as update:
        update.data["a"] = 1
    assert load(path) == {"a": 1}


def _increment(path, barrier, worker, times):
    barrier.wait()
    for _unused in range(times):
        with state(path).update() as update:
            update.data["total"] = update.data.get("total", 0) + 1
            update.data["w%d" % worker] = update.data.get("w%d" % worker, 0) + 1


def test_concurrent_updates_from_several_processes_lose_nothing(tmp_path):
    """8 processes x 20 read-modify-write increments of one counter at the same moment:
    any lost update shows as a total below 160."""
    path = tmp_path / "state.yml"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    jobs = [ctx.Process(target=_increment, args=(path, barrier, w, 20)) for w in range(8)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert [job.exitcode for job in jobs] == [0] * 8
    assert load(path) == dict({"total": 160}, **{"w%d" % w: 20 for w in range(8)})
    assert sorted(os.listdir(tmp_path)) == [".state.yml.lock", "state.yml"]
