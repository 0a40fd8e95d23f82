# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the collection writes: one atomic write, secret files, controller state files.

:func:`atomic_write` is the one way the collection replaces a file: a temporary file
beside it, given its mode (and owner) before anything is written, flushed to disk and
then renamed over it, so a reader never sees half a file or a file with a wider mode.
Modules on the nodes write their secrets (the private key, ``cjdroute.conf``) with
:func:`write_secret`, which moves the file with ``AnsibleModule.atomic_move``.

On the controller, the key registry (``registry.py``) and the gateways' client
allocations (``gateway.py``) are YAML files beside the inventory that several forks may
read-modify-write at once: :func:`locked` serialises that with an ``flock`` on a hidden
lock file next to the state file, and :func:`load_mapping` reads one.

Standard library only at import time: the nodes import this file too (PyYAML is needed
by :func:`load_mapping` alone, which runs on the controller).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile

SECRET_MODE = 0o600
SECRET_DIR_MODE = 0o700


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock for ``path`` (on ``.<name>.lock`` in its directory)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "." + os.path.basename(path) + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def atomic_write(path, data, mode=0o644, prefix=None, root_owned=False, move=os.replace):
    """Replace ``path`` with ``data`` (str, written as UTF-8, or bytes) in one rename.

    The temporary file (``prefix`` + random, default ``.<name>.``) is created in the
    directory of ``path``, which must exist, and gets ``mode`` (and, with ``root_owned``
    when running as root, root:root) before ``data`` is written; it is fsynced, then
    ``move(temporary, path)`` puts it in place.  Nothing is left behind on failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix=prefix or "." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if root_owned and os.geteuid() == 0:
                os.fchown(handle.fileno(), 0, 0)
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        move(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_secret(module, path, data, prefix=None):
    """Write a file that only root may read (0600, root:root when running as root) on a
    node, through :func:`atomic_write` and ``module.atomic_move`` (which gives the file the
    SELinux context its path should have).  A missing parent directory is made 0700.
    """
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        os.makedirs(parent, SECRET_DIR_MODE)
        os.chmod(parent, SECRET_DIR_MODE)

    def move(src, dest):
        # atomic_move gives a new file 0666 & ~umask, and by default copies the mode of
        # the file it replaces: either way the secret would be readable by others until a
        # later chmod.  Keep the temporary file's 0600 instead.
        old_umask = os.umask(0o077)
        try:
            module.atomic_move(src, dest, keep_dest_attrs=False)
        finally:
            os.umask(old_umask)

    atomic_write(path, data, mode=SECRET_MODE, prefix=prefix, root_owned=True, move=move)
    fix_secret_attributes(path)


def secret_attributes_wrong(path):
    """``path`` exists but is not mode 0600 or (when running as root) not root:root."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if stat.S_IMODE(st.st_mode) != SECRET_MODE:
        return True
    return os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0)


def fix_secret_attributes(path):
    """Mode 0600 and, when running as root, owner root:root."""
    os.chmod(path, SECRET_MODE)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)


def load_mapping(path, what, key, error):
    """The mapping under ``key`` in the YAML file ``path``.

    ``{}`` when the file does not exist, is empty or has nothing under ``key``.  A file
    that cannot be read or parsed, or is not a mapping with a ``key`` mapping, raises
    ``error`` (an exception class) with a message naming ``what`` and ``path``.
    """
    import yaml  # controller only: the nodes need not have PyYAML for the rest

    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise error("%s %s is not valid YAML: %s" % (what, path, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, binary
        raise error("%s %s cannot be read: %s"
                    % (what, path, getattr(exc, "strerror", None) or exc)) from None
    if data is None:
        return {}
    # "key:" with nothing under it (every entry removed by hand) is an empty mapping.
    if not isinstance(data, dict) or not isinstance(data.get(key) or {}, dict):
        raise error("%s %s must be a mapping with a %r mapping" % (what, path, key))
    return data.get(key) or {}
