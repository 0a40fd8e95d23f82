"""Tests for the cjdns_keypair module, run in-process on a tmp_path."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    check_private_key,
    public_key_from_private,
)
from ansible_collections.meshfleet.mesh.plugins.modules import cjdns_keypair
from keyvectors import VECTORS

KEY_A, KEY_B = VECTORS[0], VECTORS[1]
NON_FC_PRIVATE = "fefe3f428cc83bea845c3dc07c94e2b24f44ebc2c380b566f199402e81795f78"
IS_ROOT = os.geteuid() == 0


def run(capsys, check_mode=False, **args):
    """Run the module's main(); return (failed, result dict, raw stdout)."""
    if check_mode:
        args["_ansible_check_mode"] = True
    args = {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()}
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        cjdns_keypair.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert bool(info.value.code) == bool(result.get("failed"))
    return bool(result.get("failed")), result, out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_secret_free(out, *secrets):
    for secret in secrets:
        assert secret.lower() not in out.lower()
        assert secret[:16].lower() not in out.lower()


def test_generate_then_reuse(tmp_path, capsys):
    key_file = tmp_path / "cjdns" / "private.key"
    failed, result, out = run(capsys, path=key_file)
    assert not failed
    assert result["changed"] is True and result["generated"] is True
    assert result["path"] == str(key_file)
    private = key_file.read_text()
    assert private.endswith("\n") and len(private) == 65
    assert public_key_from_private(private.strip()) == result["public_key"]
    assert result["ipv6"].startswith("fc")
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    assert_secret_free(out, private.strip())
    assert "check_mode_pending" not in result

    failed, again, out = run(capsys, path=key_file)
    assert not failed
    assert again["changed"] is False and again["generated"] is False
    assert (again["public_key"], again["ipv6"]) == (result["public_key"], result["ipv6"])
    assert key_file.read_text() == private
    assert_secret_free(out, private.strip())
    if IS_ROOT:
        st = os.stat(key_file)
        assert (st.st_uid, st.st_gid) == (0, 0)


def test_supplied_key_written(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    failed, result, out = run(capsys, path=key_file, private_key=KEY_A["private_key"].upper())
    assert not failed
    assert result["changed"] is True and result["generated"] is False
    assert result["public_key"] == KEY_A["public_key"]
    assert result["ipv6"] == KEY_A["ipv6"]
    assert key_file.read_text() == KEY_A["private_key"] + "\n"
    assert mode(key_file) == 0o600
    assert_secret_free(out, KEY_A["private_key"])

    failed, result, _unused = run(capsys, path=key_file, private_key=KEY_A["private_key"])
    assert not failed and result["changed"] is False


def test_mismatch_fails_without_force(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    key_file.write_text(KEY_A["private_key"] + "\n")
    key_file.chmod(0o600)
    failed, result, out = run(capsys, path=key_file, private_key=KEY_B["private_key"])
    assert failed
    assert "force=true" in result["msg"]
    assert KEY_A["ipv6"] in result["msg"] and KEY_B["ipv6"] in result["msg"]
    assert key_file.read_text() == KEY_A["private_key"] + "\n"
    assert_secret_free(out, KEY_A["private_key"], KEY_B["private_key"])

    failed, result, out = run(capsys, path=key_file, private_key=KEY_B["private_key"], force=True)
    assert not failed and result["changed"] is True
    assert result["public_key"] == KEY_B["public_key"]
    assert key_file.read_text() == KEY_B["private_key"] + "\n"
    assert mode(key_file) == 0o600
    assert_secret_free(out, KEY_A["private_key"], KEY_B["private_key"])


@pytest.mark.parametrize(
    "bad, message",
    [
        (KEY_A["private_key"][:-1], "private key must be 64 hexadecimal characters, got 63"),
        ("z" + KEY_A["private_key"][1:], "character 0 (counting from 0) is not hexadecimal"),
        (NON_FC_PRIVATE, "does not start with fc, so cjdns would reject it"),
        ("", "got 0"),
    ],
)
def test_bad_supplied_key_fails_and_writes_nothing(tmp_path, capsys, bad, message):
    key_file = tmp_path / "sub" / "private.key"
    failed, result, out = run(capsys, path=key_file, private_key=bad)
    assert failed
    assert message in result["msg"]
    assert result["msg"].startswith("private_key: ")
    assert not key_file.parent.exists()
    if len(bad) > 16:
        assert_secret_free(out, bad)


def test_invalid_file_fails_unless_forced(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    key_file.write_text(NON_FC_PRIVATE + "\n")
    failed, result, out = run(capsys, path=key_file)
    assert failed
    assert "does not hold a valid cjdns private key" in result["msg"]
    assert key_file.read_text() == NON_FC_PRIVATE + "\n"
    assert_secret_free(out, NON_FC_PRIVATE)

    failed, result, _unused = run(capsys, path=key_file, private_key=KEY_A["private_key"])
    assert failed and "force=true" in result["msg"]

    failed, result, out = run(capsys, path=key_file, private_key=KEY_A["private_key"], force=True)
    assert not failed and result["changed"] is True
    assert key_file.read_text() == KEY_A["private_key"] + "\n"
    assert_secret_free(out, NON_FC_PRIVATE, KEY_A["private_key"])


def test_directory_at_path_fails(tmp_path, capsys):
    failed, result, _unused = run(capsys, path=tmp_path)
    assert failed and "not a regular file" in result["msg"]


def test_mode_fixed(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    key_file.write_text(KEY_A["private_key"] + "\n")
    key_file.chmod(0o644)
    if IS_ROOT:
        os.chown(key_file, 65534, 65534)

    failed, result, _unused = run(capsys, check_mode=True, path=key_file)
    assert not failed and result["changed"] is True
    assert mode(key_file) == 0o644

    failed, result, out = run(capsys, path=key_file)
    assert not failed
    assert result["changed"] is True and result["generated"] is False
    assert result["public_key"] == KEY_A["public_key"]
    assert mode(key_file) == 0o600
    if IS_ROOT:
        st = os.stat(key_file)
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert_secret_free(out, KEY_A["private_key"])


def test_check_mode_missing_key_writes_nothing(tmp_path, capsys):
    key_file = tmp_path / "cjdns" / "private.key"
    failed, result, _unused = run(capsys, check_mode=True, path=key_file)
    assert not failed
    assert result["changed"] is True and result["generated"] is True
    assert result["check_mode_pending"] is True
    assert result["public_key"] == "" and result["ipv6"] == ""
    assert not key_file.parent.exists()


def test_check_mode_supplied_key_computes(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    failed, result, out = run(
        capsys, check_mode=True, path=key_file, private_key=KEY_A["private_key"]
    )
    assert not failed
    assert result["changed"] is True and result["generated"] is False
    assert result["public_key"] == KEY_A["public_key"]
    assert result["ipv6"] == KEY_A["ipv6"]
    assert "check_mode_pending" not in result
    assert not key_file.exists()
    assert list(tmp_path.iterdir()) == []
    assert_secret_free(out, KEY_A["private_key"])


def test_check_mode_mismatch_still_fails(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    key_file.write_text(KEY_A["private_key"])
    key_file.chmod(0o600)
    failed, result, _unused = run(
        capsys, check_mode=True, path=key_file, private_key=KEY_B["private_key"]
    )
    assert failed
    failed, result, _unused = run(
        capsys, check_mode=True, path=key_file, private_key=KEY_B["private_key"], force=True
    )
    assert not failed and result["changed"] is True
    assert result["public_key"] == KEY_B["public_key"]
    assert key_file.read_text() == KEY_A["private_key"]


def test_no_temp_files_left(tmp_path, capsys):
    key_file = tmp_path / "private.key"
    run(capsys, path=key_file)
    run(capsys, path=key_file, private_key=KEY_B["private_key"], force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["private.key"]
    assert check_private_key(key_file.read_text()) == KEY_B["private_key"]


def test_existing_parent_dir_left_alone(tmp_path, capsys):
    tmp_path.chmod(0o755)
    run(capsys, path=tmp_path / "private.key")
    assert mode(tmp_path) == 0o755
