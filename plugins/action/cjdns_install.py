# Copyright: meshfleet.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of meshfleet.mesh.cjdns_install.

1. Validate the arguments (exactly one of src/url, a well-formed sha256).
2. Run the module on the node in probe mode.  If the node already has the binary from
   this artifact, stop: one module execution, nothing transferred.
3. Otherwise get the artifact on the controller (download a URL once into the cache,
   shared by all forks through a lock) and check its sha256, its format and the binary's
   architecture.  Check mode stops here.
4. Transfer it to the node's remote tmp dir and run the module in install mode.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.urls import mask_url, open_url
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.meshfleet.mesh.plugins.module_utils.artifact import (
    ArtifactError,
    ArtifactUnsupportedHere,
    check_sha256,
    inspect_artifact,
    public_argument_spec,
    sha256_file,
)

display = Display()

MODULE = "meshfleet.mesh.cjdns_install"
NODE_OPTIONS = ("dest", "state_file", "architecture", "allow_script")
REMOTE_NAME = "cjdroute-artifact"
CHUNK = 1024 * 1024
HTTP_AGENT = "meshfleet.mesh.cjdns_install"


def _module_failed(result):
    return bool(result.get("failed")) or bool(result.get("unreachable"))


def download_artifact(url, sha256, cache_dir, validate_certs=True, timeout=60):
    """Return (path of ``<cache_dir>/<sha256>``, whether it was already cached).

    Forks for many hosts call this at once; an exclusive lock on ``<sha256>.lock`` makes
    the first one download and the others find the verified file.  A download whose sha256
    differs is deleted and raises AnsibleActionFail.
    """
    label = mask_url(url)
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
    try:
        os.makedirs(cache_dir, 0o700, exist_ok=True)
    except OSError as exc:
        raise AnsibleActionFail(
            "cannot create the artifact cache %s: %s" % (cache_dir, exc)
        ) from exc
    target = os.path.join(cache_dir, sha256)
    with open(target + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if os.path.isfile(target):
            if sha256_file(target) == sha256:
                return target, True
            display.warning("cached artifact %s is damaged; downloading %s again" % (target, label))
            os.unlink(target)
        fd, part = tempfile.mkstemp(dir=cache_dir, prefix="." + sha256 + ".", suffix=".part")
        try:
            digest = hashlib.sha256()
            try:
                with os.fdopen(fd, "wb") as out:
                    response = open_url(
                        url,
                        validate_certs=validate_certs,
                        timeout=timeout,
                        http_agent=HTTP_AGENT,
                        decompress=False,  # the sha256 is of the bytes as served
                    )
                    try:
                        for chunk in iter(lambda: response.read(CHUNK), b""):
                            digest.update(chunk)
                            out.write(chunk)
                    finally:
                        response.close()
            except Exception as exc:  # HTTPError, URLError, SSL, timeouts, disk errors
                raise AnsibleActionFail("cannot download artifact %s: %s" % (label, exc)) from exc
            actual = digest.hexdigest()
            if actual != sha256:
                raise AnsibleActionFail(
                    "artifact %s has sha256 %s, expected %s" % (label, actual, sha256)
                )
            os.replace(part, target)
        finally:
            if os.path.exists(part):
                os.unlink(part)
    return target, False


class ActionModule(ActionBase):
    # The remote tmp dir is created only when an install is needed, not up front.
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _validate(self):
        spec = public_argument_spec()
        # Node paths are expanded by the module on the node, not here.
        spec["dest"]["type"] = "str"
        spec["state_file"]["type"] = "str"
        _validation, args = self.validate_argument_spec(
            argument_spec=spec,
            mutually_exclusive=[("src", "url")],
            required_one_of=[("src", "url")],
        )
        try:
            args["sha256"] = check_sha256(args["sha256"])
        except ArtifactError as exc:
            raise AnsibleActionFail(str(exc)) from None
        return args

    def _local_src(self, src, sha256):
        try:
            path = self._find_needle("files", src)
        except AnsibleError as exc:
            raise AnsibleActionFail(
                "artifact %s not found on the controller: %s" % (src, exc)
            ) from exc
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise AnsibleActionFail("cannot read artifact %s: %s" % (path, exc)) from exc
        if actual != sha256:
            raise AnsibleActionFail(
                "artifact %s has sha256 %s, expected %s" % (path, actual, sha256)
            )
        return path

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}

        args = self._validate()
        sha256 = args["sha256"]
        label = mask_url(args["url"]) if args["url"] else args["src"]
        node_args = dict((key, args[key]) for key in NODE_OPTIONS if args[key] is not None)
        node_args.update(sha256=sha256, _source=label)

        probe = self._execute_module(
            module_name=MODULE, module_args=dict(node_args, _probe=True), task_vars=task_vars
        )
        if _module_failed(probe):
            return probe
        result = dict(
            changed=False,
            probe=True,
            dest=probe.get("dest"),
            sha256=sha256,
            source=label,
            architecture=probe.get("architecture"),
            version=probe.get("version"),
            binary_sha256=probe.get("binary_sha256"),
        )
        if probe.get("installed"):
            return result

        architecture = probe["architecture"]
        result.update(
            changed=True, probe=False, reason=probe.get("reason"), architecture=architecture
        )
        result.pop("version")
        if args["url"]:
            local, cached = download_artifact(
                args["url"], sha256, args["cache_dir"], args["validate_certs"], args["url_timeout"]
            )
            result["cached"] = cached
        else:
            local = self._local_src(args["src"], sha256)

        # Check format and architecture here too, so that a wrong artifact fails before
        # it is transferred (and in check mode).  The node checks again.
        try:
            info = inspect_artifact(local, label, architecture, args["allow_script"])
        except ArtifactUnsupportedHere as exc:
            display.vvv("cjdns_install: left the artifact check to the node: %s" % exc)
            info = None
        except ArtifactError as exc:
            raise AnsibleActionFail(str(exc), result=result) from None
        if info is not None:
            result.update(
                format=info["format"], member=info["member"], binary_sha256=info["binary_sha256"]
            )
        if self._task.check_mode:
            return result

        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        tmpdir = self._connection._shell.tmpdir
        remote = self._connection._shell.join_path(tmpdir, REMOTE_NAME)
        try:
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote), execute=False)
            installed = self._execute_module(
                module_name=MODULE,
                module_args=dict(node_args, architecture=architecture, _artifact=remote),
                task_vars=task_vars,
            )
        finally:
            self._remove_tmp_path(tmpdir)
        if _module_failed(installed):
            return installed
        for key in ("dest", "version", "binary_sha256", "format", "member", "architecture"):
            if key in installed:
                result[key] = installed[key]
        return result
