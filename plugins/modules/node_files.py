#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_files
short_description: A role's files on a node and its systemd units, in one module execution
version_added: 0.2.0
description:
  - Puts every file a role owns on a node (content, mode, owner) and keeps the role's
    systemd units enabled and started (or stopped, disabled), in one module execution
    instead of one C(ansible.builtin.template), C(copy), C(file) and C(systemd_service)
    execution per file and unit. On a Pi each module execution starts Python, and a no-op
    run of C(playbooks/site.yml) is mostly such checks.
  - Compares what is on the node, not a record of an earlier run, so a file changed by hand
    is put back on the next run (drift is repaired).
  - A file with O(files[].validate) is written to a temporary file beside it first and the
    command run on that (C(%s) is its path); the file is only replaced when it succeeds.
    Every write is atomic (a temporary file renamed over the old one).
  - After the files, C(systemctl daemon-reload) runs when a unit file changed, then the units
    are brought to their state. Restarts on change stay with the role's handlers, which read
    RV(changed_files).
  - With the action plugin of the same name, O(files[].template) and O(files[].src) are
    read (and templated) on the controller from the role's C(templates/) and C(files/), as
    C(ansible.builtin.template) and C(copy) do.
  - Check mode reports what would change (with C(--diff), the text of each changed file)
    and changes nothing. A unit whose file would be written is not queried in check mode.
options:
  packages:
    description:
      - Debian packages the files and units need, installed first when one is missing
        (C(apt-get install --no-install-recommends), after C(apt-get update) only when the
        install fails without it). A no-op is one C(dpkg-query) in the same execution
        instead of an C(ansible.builtin.apt) execution; use C(ansible.builtin.apt) for
        anything more (versions, removal, repositories).
    type: list
    elements: str
    default: []
  files:
    description: The files, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path on the node.
        type: path
        required: true
      state:
        description: C(present) writes the file, C(absent) removes it.
        type: str
        choices: [present, absent]
        default: present
      content:
        description:
          - The file's text (set by the action plugin from O(files[].template) or
            O(files[].src)).
        type: str
      template:
        description: A template of the role's C(templates/), rendered on the controller.
        type: str
      src:
        description: A file of the role's C(files/), copied as is.
        type: str
      vars:
        description: Variables for this file's O(files[].template) only (as a loop's C(item)).
        type: dict
      mode:
        description: Octal mode, as a string.
        type: str
        default: "0644"
      owner:
        description: Owner (user name).
        type: str
        default: root
      group:
        description: Group name.
        type: str
        default: root
      validate:
        description: A command run on the new content before it replaces the file; C(%s) is
          replaced with the temporary file's path.
        type: str
      unsafe_writes:
        description:
          - Rewrite the file in place instead of renaming a temporary file over it (for a
            bind-mounted file such as a container's C(/etc/resolv.conf)).
        type: bool
        default: false
  units:
    description: Systemd units and the state each should be in, after the files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unit name, with its suffix.
        type: str
        required: true
      enabled:
        description: Enabled at boot (V(true)), disabled (V(false)), or left alone (unset).
        type: bool
      state:
        description: Running (V(started)), not running (V(stopped)), or left alone (unset).
        type: str
        choices: [started, stopped]
      if_present:
        description: Leave the unit alone when systemd does not know it (for a removal).
        type: bool
        default: false
      stop_before_change:
        description:
          - Stop the unit, when it runs, before its unit file is replaced or removed, so that
            its C(ExecStop) is the one systemd has loaded (it undoes what the old
            C(ExecStart) did). Starting it again is left to the units' O(units[].state) or
            the role's handler.
        type: bool
        default: false
author:
  - meshfleet contributors (!UNKNOWN)
notes:
  - Files are written before units are stopped or started; units to stop whose file is
    removed in the same call are stopped and disabled first.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without
      modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in
      check mode), when in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: Write the firewall's table and unit, keep it loaded
  meshfleet.mesh.node_files:
    files:
      - template: nftables.nft.j2
        dest: /etc/meshfleet/nftables.nft
        validate: nft -c -f %s
      - template: meshfleet-firewall.service.j2
        dest: /etc/systemd/system/meshfleet-firewall.service
    units:
      - {name: meshfleet-firewall.service, enabled: true, state: started}
  register: firewall_files
  notify: Reload meshfleet firewall
"""

RETURN = r"""
installed_packages:
  description: The packages installed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
changed_files:
  description: The paths written or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
changed_units:
  description: The units enabled, disabled, started or stopped, as C(name action).
  returned: always
  type: list
  elements: str
daemon_reload:
  description: Whether C(systemctl daemon-reload) ran (or would run).
  returned: always
  type: bool
"""

import grp
import os
import pwd
import shlex
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

UNIT_DIRS = (
    "/etc/systemd/system/",
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
    "/run/systemd/system/",
)
DIFF_LIMIT = 64 * 1024


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def ids(owner, group):
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def attributes_differ(path, mode, uid, gid):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode) != mode or (st.st_uid, st.st_gid) != (uid, gid)


def text_for_diff(data):
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT or b"\0" in data:
        return "(%d bytes, not shown)\n" % len(data)
    return data.decode("utf-8", errors="replace")


def validate(module, spec, data):
    """None when the validate command accepts ``data``, else the reason."""
    directory = os.path.dirname(spec["dest"])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(spec["dest"]) + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if "%s" not in spec["validate"]:
            return "validate of %s must contain %%s" % spec["dest"]
        rc, out, err = module.run_command(
            [arg.replace("%s", tmp) for arg in shlex.split(spec["validate"])]
        )
        if rc != 0:
            return "%s failed to validate with %s: %s" % (
                spec["dest"],
                spec["validate"],
                (err or out).strip(),
            )
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write(module, spec, data, mode, uid, gid):
    dest = spec["dest"]
    if spec["unsafe_writes"] and os.path.exists(dest):
        with open(dest, "wb") as handle:
            handle.write(data)
        os.chmod(dest, mode)
        os.chown(dest, uid, gid)
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix="." + os.path.basename(dest) + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            os.fchown(handle.fileno(), uid, gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        module.atomic_move(tmp, dest, keep_dest_attrs=False)
        os.chmod(dest, mode)
        os.chown(dest, uid, gid)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def systemctl(module, *args):
    return module.run_command(["systemctl"] + list(args))


def unit_known(module, name):
    rc, out, dummy = systemctl(module, "show", "--property=LoadState", "--value", name)
    return rc == 0 and out.strip() not in ("", "not-found")


def act(module, name, action, changed_units):
    """systemctl ACTION NAME (not in check mode), recorded in ``changed_units``."""
    changed_units.append(name + " " + action)
    if module.check_mode:
        return
    rc, dummy, err = systemctl(module, action, name)
    if rc != 0:
        module.fail_json(msg="systemctl %s %s failed: %s" % (action, name, err.strip()),
                         changed_units=changed_units)


def bring_unit(module, spec, changed_units, new_unit_files):
    name = spec["name"]
    if module.check_mode and name in new_unit_files:
        if spec.get("enabled"):
            changed_units.append(name + " enable")
        if spec.get("state") == "started":
            changed_units.append(name + " start")
        return
    if spec["if_present"] and not unit_known(module, name):
        return
    if spec.get("enabled") is not None:
        dummy, out, dummy = systemctl(module, "is-enabled", name)
        enabled = out.strip() in ("enabled", "enabled-runtime", "static", "alias", "indirect")
        if enabled != spec["enabled"]:
            act(module, name, "enable" if spec["enabled"] else "disable", changed_units)
    if spec.get("state") is not None:
        rc, dummy, dummy = systemctl(module, "is-active", "--quiet", name)
        active = rc == 0
        if active != (spec["state"] == "started"):
            act(module, name, "start" if spec["state"] == "started" else "stop", changed_units)


def missing_packages(module, names):
    if not names:
        return []
    rc, out, err = module.run_command(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n"] + list(names))
    installed = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].startswith("ii"):
            installed.add(fields[0])
    return [name for name in names if name not in installed]


def install_packages(module, names):
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    # Wait for the dpkg lock as ansible.builtin.apt does (apt-daily on a fresh boot).
    wait = ["-o", "DPkg::Lock::Timeout=60"]
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + wait + names
    rc, out, err = module.run_command(command, environ_update=env)
    if rc != 0:
        module.run_command(["apt-get", "update", "-q"] + wait, environ_update=env)
        rc, out, err = module.run_command(command, environ_update=env)
    if rc != 0:
        module.fail_json(msg="installing %s failed: %s" % (", ".join(names), (err or out).strip()))


def unit_file_changes(files, name):
    """Whether ``files`` change an existing file of unit ``name``."""
    for spec in files:
        dest = spec["dest"]
        if os.path.basename(dest) != name or not dest.startswith(UNIT_DIRS):
            continue
        current = read_bytes(dest)
        if current is None:
            continue
        if spec["state"] == "absent" or (spec["content"] or "").encode("utf-8") != current:
            return True
    return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    dest=dict(type="path", required=True),
                    state=dict(type="str", choices=["present", "absent"], default="present"),
                    content=dict(type="str"),
                    template=dict(type="str"),
                    src=dict(type="str"),
                    vars=dict(type="dict"),
                    mode=dict(type="str", default="0644"),
                    owner=dict(type="str", default="root"),
                    group=dict(type="str", default="root"),
                    validate=dict(type="str"),
                    unsafe_writes=dict(type="bool", default=False),
                ),
            ),
            units=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    enabled=dict(type="bool"),
                    state=dict(type="str", choices=["started", "stopped"]),
                    if_present=dict(type="bool", default=False),
                    stop_before_change=dict(type="bool", default=False),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    changed_files, changed_units, diffs = [], [], []
    new_unit_files = set()
    unit_files_changed = False

    missing = missing_packages(module, module.params["packages"])
    if missing and not module.check_mode:
        install_packages(module, missing)

    # Units to stop go first: their files may be removed below.
    for spec in module.params["units"]:
        if spec.get("state") == "stopped" or spec.get("enabled") is False:
            bring_unit(module, spec, changed_units, new_unit_files)
    # A unit whose stop undoes what its start did is stopped with the definition systemd
    # has loaded, before its file changes.
    for spec in module.params["units"]:
        if spec["stop_before_change"] and unit_file_changes(module.params["files"], spec["name"]):
            rc, dummy, dummy = systemctl(module, "is-active", "--quiet", spec["name"])
            if rc == 0:
                act(module, spec["name"], "stop", changed_units)

    def fail(msg):
        """Fail, after making systemd read the unit files already written."""
        if unit_files_changed and not module.check_mode:
            systemctl(module, "daemon-reload")
        module.fail_json(msg=msg, changed_files=changed_files, changed_units=changed_units)

    for spec in module.params["files"]:
        dest = spec["dest"]
        current = read_bytes(dest)
        if spec["state"] == "absent":
            if current is not None or os.path.lexists(dest):
                changed_files.append(dest)
                diffs.append(
                    dict(
                        before_header=dest,
                        after_header=dest,
                        before=text_for_diff(current),
                        after="",
                    )
                )
                if not module.check_mode:
                    os.unlink(dest)
            continue
        if spec["content"] is None:
            fail("%s: content is required (or template/src through the action plugin)" % dest)
        data = spec["content"].encode("utf-8")
        mode = int(spec["mode"], 8)
        uid, gid = ids(spec["owner"], spec["group"])
        content_differs = current != data
        if not content_differs and not attributes_differ(dest, mode, uid, gid):
            continue
        changed_files.append(dest)
        if content_differs:
            diffs.append(
                dict(
                    before_header=dest,
                    after_header=dest,
                    before=text_for_diff(current),
                    after=text_for_diff(data),
                )
            )
        if dest.endswith((".service", ".timer", ".socket", ".conf")) and dest.startswith(UNIT_DIRS):
            unit_files_changed = True
            if current is None:
                new_unit_files.add(os.path.basename(dest))
        if module.check_mode:
            continue
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        problem = validate(module, spec, data) if content_differs and spec["validate"] else None
        if problem:
            changed_files.remove(dest)
            fail(problem)
        if content_differs:
            write(module, spec, data, mode, uid, gid)
        else:
            os.chmod(dest, mode)
            os.chown(dest, uid, gid)

    for spec in module.params["files"]:
        if (
            spec["state"] == "absent"
            and spec["dest"] in changed_files
            and spec["dest"].startswith(UNIT_DIRS)
        ):
            unit_files_changed = True
    if unit_files_changed and not module.check_mode:
        rc, dummy, err = systemctl(module, "daemon-reload")
        if rc != 0:
            module.fail_json(
                msg="systemctl daemon-reload failed: %s" % err.strip(), changed_files=changed_files
            )

    for spec in module.params["units"]:
        if not (spec.get("state") == "stopped" or spec.get("enabled") is False):
            bring_unit(module, spec, changed_units, new_unit_files)

    result = dict(
        changed=bool(missing or changed_files or changed_units),
        installed_packages=missing,
        changed_files=changed_files,
        changed_units=changed_units,
        daemon_reload=unit_files_changed,
    )
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
