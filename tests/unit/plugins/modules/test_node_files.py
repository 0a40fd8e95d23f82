"""Tests for the node_files module, run in-process on a tmp_path (systemctl faked)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.meshfleet.mesh.plugins.modules import node_files

ME = __import__("pwd").getpwuid(os.geteuid()).pw_name
MY_GROUP = __import__("grp").getgrgid(os.getegid()).gr_name


class FakeSystemd:
    """systemctl as a dict of units: {name: {"enabled": bool, "active": bool}}."""

    def __init__(self, units=None):
        self.units = units or {}
        self.calls = []

    def __call__(self, module, *args):
        self.calls.append(args)
        verb, name = args[0], args[-1]
        unit = self.units.get(name)
        if verb == "daemon-reload":
            return 0, "", ""
        if verb == "show":
            return 0, ("loaded" if unit is not None else "not-found") + "\n", ""
        if unit is None:
            return 1, "", "Unit %s not found." % name
        if verb == "is-enabled":
            return (
                (0 if unit["enabled"] else 1),
                ("enabled" if unit["enabled"] else "disabled") + "\n",
                "",
            )
        if verb == "is-active":
            return (0 if unit["active"] else 3), "", ""
        if verb in ("enable", "disable"):
            unit["enabled"] = verb == "enable"
        if verb in ("start", "stop"):
            unit["active"] = verb == "start"
        return 0, "", ""


@pytest.fixture
def systemd(monkeypatch):
    fake = FakeSystemd()
    monkeypatch.setattr(node_files, "systemctl", fake)
    return fake


def run(capsys, check_mode=False, diff=False, **args):
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        node_files.main()
    result = json.loads(capsys.readouterr().out)
    assert bool(info.value.code) == bool(result.get("failed"))
    return result


def spec(path, content, **extra):
    return dict({"dest": str(path), "content": content, "owner": ME, "group": MY_GROUP}, **extra)


def test_writes_then_noop_then_repairs_drift(tmp_path, capsys, systemd):
    conf = tmp_path / "etc" / "a.conf"
    first = run(capsys, files=[spec(conf, "x = 1\n", mode="0640")])
    assert first["changed"] and first["changed_files"] == [str(conf)]
    assert conf.read_text() == "x = 1\n"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    again = run(capsys, files=[spec(conf, "x = 1\n", mode="0640")])
    assert not again["changed"] and again["changed_files"] == []
    conf.write_text("x = 2  # by hand\n")
    repaired = run(capsys, files=[spec(conf, "x = 1\n", mode="0640")])
    assert repaired["changed_files"] == [str(conf)] and conf.read_text() == "x = 1\n"
    os.chmod(conf, 0o600)
    assert run(capsys, files=[spec(conf, "x = 1\n", mode="0640")])["changed"]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    assert not [p for p in conf.parent.iterdir() if p.name.startswith(".")]


def test_check_mode_changes_nothing_and_shows_the_diff(tmp_path, capsys, systemd):
    conf = tmp_path / "a.conf"
    conf.write_text("old\n")
    gone = tmp_path / "gone.conf"
    gone.write_text("stale\n")
    result = run(
        capsys,
        check_mode=True,
        diff=True,
        files=[spec(conf, "new\n"), {"dest": str(gone), "state": "absent"}],
    )
    assert result["changed"] and result["changed_files"] == [str(conf), str(gone)]
    assert conf.read_text() == "old\n" and gone.exists()
    assert result["diff"][0]["before"] == "old\n" and result["diff"][0]["after"] == "new\n"
    assert result["diff"][1]["after"] == ""


def test_validate_refuses_bad_content_and_keeps_the_old_file(tmp_path, capsys, systemd):
    conf = tmp_path / "a.conf"
    conf.write_text("good\n")
    bad = run(capsys, files=[spec(conf, "bad\n", validate="grep -q ^good %s")])
    assert bad["failed"] and "failed to validate" in bad["msg"]
    assert conf.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.conf"]
    ok = run(capsys, files=[spec(conf, "good too\n", validate="grep -q ^good %s")])
    assert ok["changed"] and conf.read_text() == "good too\n"


def test_absent_removes_and_is_then_a_noop(tmp_path, capsys, systemd):
    old = tmp_path / "old.fact"
    old.write_text("{}\n")
    assert run(capsys, files=[{"dest": str(old), "state": "absent"}])["changed_files"] == [str(old)]
    assert not old.exists()
    assert not run(capsys, files=[{"dest": str(old), "state": "absent"}])["changed"]


def test_units_enabled_and_started_once(tmp_path, capsys, systemd):
    systemd.units["x.service"] = {"enabled": False, "active": False}
    units = [{"name": "x.service", "enabled": True, "state": "started"}]
    first = run(capsys, units=units)
    assert first["changed_units"] == ["x.service enable", "x.service start"]
    assert systemd.units["x.service"] == {"enabled": True, "active": True}
    assert not run(capsys, units=units)["changed"]


def test_stop_and_remove_only_when_present(tmp_path, capsys, systemd):
    units = [{"name": "gone.service", "enabled": False, "state": "stopped", "if_present": True}]
    assert not run(capsys, units=units)["changed"]
    assert ("stop", "gone.service") not in systemd.calls
    systemd.units["gone.service"] = {"enabled": True, "active": True}
    result = run(capsys, units=units)
    assert result["changed_units"] == ["gone.service disable", "gone.service stop"]


def test_new_unit_file_in_check_mode_is_not_queried(tmp_path, capsys, systemd, monkeypatch):
    monkeypatch.setattr(node_files, "UNIT_DIRS", (str(tmp_path),))
    unit = tmp_path / "new.service"
    result = run(
        capsys,
        check_mode=True,
        files=[spec(unit, "[Unit]\n")],
        units=[{"name": "new.service", "enabled": True, "state": "started"}],
    )
    assert result["changed_units"] == ["new.service enable", "new.service start"]
    assert systemd.calls == [] and not unit.exists()


def test_daemon_reload_only_when_a_unit_file_changed(tmp_path, capsys, systemd, monkeypatch):
    monkeypatch.setattr(node_files, "UNIT_DIRS", (str(tmp_path),))
    unit = tmp_path / "y.service"
    systemd.units["y.service"] = {"enabled": True, "active": True}
    units = [{"name": "y.service", "enabled": True, "state": "started"}]
    assert run(capsys, files=[spec(unit, "[Unit]\n")], units=units)["daemon_reload"]
    assert ("daemon-reload",) in systemd.calls
    systemd.calls.clear()
    assert not run(capsys, files=[spec(unit, "[Unit]\n")], units=units)["daemon_reload"]
    assert ("daemon-reload",) not in systemd.calls


def test_content_is_required_for_a_present_file(tmp_path, capsys, systemd):
    result = run(capsys, files=[{"dest": str(tmp_path / "a")}])
    assert result["failed"] and "content is required" in result["msg"]


class FakeApt:
    """dpkg-query and apt-get over a set of installed packages."""

    def __init__(self, installed, needs_update=False):
        self.installed = set(installed)
        self.needs_update = needs_update
        self.calls = []

    def __call__(self, argv, environ_update=None, **kwargs):
        self.calls.append(argv[0] + " " + argv[1])
        if argv[0] == "dpkg-query":
            names = argv[3:]
            out = "".join("%s ii \n" % n for n in names if n in self.installed)
            return (0 if all(n in self.installed for n in names) else 1), out, ""
        if argv[:2] == ["apt-get", "update"]:
            self.needs_update = False
            return 0, "", ""
        if argv[:2] == ["apt-get", "install"]:
            assert environ_update == {"DEBIAN_FRONTEND": "noninteractive"}
            if self.needs_update:
                return 100, "", "E: Unable to locate package"
            assert argv[argv.index("-o") + 1] == "DPkg::Lock::Timeout=60"
            self.installed.update(a for a in argv[2:] if not a.startswith("-") and "::" not in a)
            return 0, "", ""
        raise AssertionError(argv)


def run_with_apt(capsys, monkeypatch, apt, **args):
    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command",
                        lambda self, argv, **kw: apt(argv, **kw))
    return run(capsys, **args)


def test_packages_installed_only_when_missing(capsys, systemd, monkeypatch):
    apt = FakeApt({"prometheus-node-exporter"})
    result = run_with_apt(capsys, monkeypatch, apt, packages=["prometheus-node-exporter"])
    assert not result["changed"] and result["installed_packages"] == []
    assert apt.calls == ["dpkg-query -W"]
    result = run_with_apt(capsys, monkeypatch, apt,
                          packages=["prometheus-node-exporter", "prometheus"])
    assert result["changed"] and result["installed_packages"] == ["prometheus"]
    assert "prometheus" in apt.installed


def test_packages_update_the_lists_once_when_install_needs_it(capsys, systemd, monkeypatch):
    apt = FakeApt(set(), needs_update=True)
    result = run_with_apt(capsys, monkeypatch, apt, packages=["prometheus"])
    assert result["installed_packages"] == ["prometheus"]
    assert apt.calls == ["dpkg-query -W", "apt-get install", "apt-get update", "apt-get install"]


def test_packages_in_check_mode_are_reported_not_installed(capsys, systemd, monkeypatch):
    apt = FakeApt(set())
    result = run_with_apt(capsys, monkeypatch, apt, check_mode=True, packages=["prometheus"])
    assert result["changed"] and result["installed_packages"] == ["prometheus"]
    assert apt.calls == ["dpkg-query -W"] and apt.installed == set()


def test_a_package_that_cannot_be_installed_fails_with_the_reason(capsys, systemd, monkeypatch):
    apt = FakeApt(set(), needs_update=True)
    apt.needs_update = True

    def never(argv, **kw):
        if argv[:2] == ["apt-get", "update"]:
            return 0, "", ""
        return apt(argv, **kw)

    result = run_with_apt(capsys, monkeypatch, never, packages=["nosuchpackage"])
    assert result["failed"] and "installing nosuchpackage failed" in result["msg"]


def test_a_refused_file_still_reloads_the_unit_files_before_it(
        tmp_path, capsys, systemd, monkeypatch):
    monkeypatch.setattr(node_files, "UNIT_DIRS", (str(tmp_path),))
    unit = tmp_path / "z.service"
    conf = tmp_path / "z.conf.yml"
    result = run(capsys, files=[spec(unit, "[Unit]\n"),
                                spec(conf, "bad\n", validate="grep -q ^good %s")])
    assert result["failed"] and "failed to validate" in result["msg"]
    assert unit.read_text() == "[Unit]\n" and not conf.exists()
    assert result["changed_files"] == [str(unit)]
    assert ("daemon-reload",) in systemd.calls


def test_stop_before_change_stops_with_the_old_definition(tmp_path, capsys, systemd, monkeypatch):
    monkeypatch.setattr(node_files, "UNIT_DIRS", (str(tmp_path),))
    unit = tmp_path / "gw.service"
    unit.write_text("[Service]\nExecStop=old\n")
    systemd.units["gw.service"] = {"enabled": True, "active": True}
    order = []
    monkeypatch.setattr(node_files, "write",
                        lambda *a: (order.append("write"), unit.write_text(a[2].decode())))
    real = systemd.__call__

    def recording(module, *args):
        if args[0] == "stop":
            order.append("stop")
        return real(module, *args)

    monkeypatch.setattr(node_files, "systemctl", recording)
    units = [{"name": "gw.service", "enabled": True, "stop_before_change": True}]
    result = run(capsys, files=[spec(unit, "[Service]\nExecStop=new\n")], units=units)
    assert order == ["stop", "write"] and result["changed_units"] == ["gw.service stop"]
    order.clear()
    assert not run(capsys, files=[spec(unit, "[Service]\nExecStop=new\n")], units=units)["changed"]
    assert order == []
