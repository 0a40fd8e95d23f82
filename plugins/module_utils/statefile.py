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
read-modify-write at once.  :class:`StateFile` is the one reader and writer of such a
file; nothing else in the collection opens one (a unit test greps for it):

- :meth:`StateFile.read` is an unlocked snapshot (files are only ever replaced by a
  rename, so a reader sees the old or the new file, never half of one);
- :meth:`StateFile.update` holds an ``flock`` on ``.<name>.lock`` beside the file, reads
  it, lets the caller change the mapping and writes it back with :func:`atomic_write`
  only when its content changed (and not at all in check mode);
- the file carries ``schema_version: N`` at top level.  A file without it (written
  before the field existed) is version 1 and gets the field on its next write; a file
  of a newer version than this code knows is refused ("written by a newer
  meshfleet.mesh") rather than rewritten without what that version added.

Standard library only at import time: the nodes import this file too (PyYAML is
imported by :class:`StateFile` when it reads or writes, which happens on the
controller only).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time

SECRET_MODE = 0o600
SECRET_DIR_MODE = 0o700


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


# ------------------------------------------------------------ controller state files

LOCK_TIMEOUT = 60.0
_LOCK_POLL = 0.05


def _plain(value):
    """``value`` with every mapping, list and string as the plain built-in type.

    Ansible hands over tagged ``str``/``dict`` subclasses that ``yaml.safe_dump`` refuses.
    """
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class StateFile:
    """One controller state file: a YAML mapping ``{schema_version: N, <key>: {...}}``.

    :param path: the file (its directory is made when it is first locked).
    :param what: what it is, for messages (``"key registry"``).
    :param key: the top-level key holding the data (``"nodes"``).
    :param error: the exception class raised for a file that cannot be used.
    :param schema_version: the version this code writes and the newest it reads.
    :param header: comment lines written at the top of the file.
    :param check: ``check(mapping)`` raises ``error`` for an entry of the wrong shape.
    :param timeout: seconds to wait for the lock.
    """

    def __init__(self, path, what, key, error, schema_version=1, header="", check=None,
                 timeout=LOCK_TIMEOUT):
        self.path = str(path)
        self.what = what
        self.key = key
        self.error = error
        self.schema_version = schema_version
        self.header = header
        self.check = check
        self.timeout = timeout
        self.lock_path = os.path.join(os.path.dirname(os.path.abspath(self.path)),
                                      "." + os.path.basename(self.path) + ".lock")

    def _refuse(self, why):
        return self.error("%s %s %s" % (self.what, self.path, why))

    def read(self):
        """The mapping under ``key``, without the lock; ``{}`` when the file does not
        exist, is empty or has nothing under ``key``."""
        import yaml  # controller only: the nodes need not have PyYAML for the rest

        try:
            with open(self.path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except FileNotFoundError:
            return {}
        except yaml.YAMLError as exc:
            raise self._refuse("is not valid YAML: %s" % exc) from None
        except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, binary
            raise self._refuse("cannot be read: %s"
                               % (getattr(exc, "strerror", None) or exc)) from None
        if data is None:
            return {}
        # "key:" with nothing under it (every entry removed by hand) is an empty mapping.
        if not isinstance(data, dict) or not isinstance(data.get(self.key) or {}, dict):
            raise self._refuse("must be a mapping with a %r mapping" % self.key)
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self._refuse("has schema_version %r: not a positive integer" % (version,))
        if version > self.schema_version:
            raise self._refuse(
                "has schema_version %d: it was written by a newer meshfleet.mesh (this one "
                "reads up to version %d); run that version of the collection, or upgrade "
                "this one" % (version, self.schema_version))
        mapping = data.get(self.key) or {}
        if self.check:
            self.check(mapping)
        return mapping

    def dump(self, mapping):
        """The file's text for ``mapping``: the header, ``schema_version``, then the
        mapping under ``key`` in block style with sorted keys (stable, reviewable)."""
        import yaml  # controller only

        return (self.header + "schema_version: %d\n" % self.schema_version
                + yaml.safe_dump({self.key: _plain(mapping)}, default_flow_style=False,
                                 sort_keys=True))

    @contextlib.contextmanager
    def locked(self):
        """Hold the exclusive ``flock`` on the lock file for the ``with`` block.

        Waits up to ``timeout`` seconds (polling with ``LOCK_NB``), then raises ``error``
        naming the lock file.  The kernel releases an ``flock`` when its holder dies, even
        by SIGKILL, so a lock file left on disk never blocks by itself: a timeout means a
        live process holds it.
        """
        os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
        with open(self.lock_path, "a") as lock:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self.error(
                            "%s %s: could not lock %s within %g s: another process holds "
                            "it (another ansible-playbook run on this inventory?); let it "
                            "finish, or find it with: fuser -v %s"
                            % (self.what, self.path, self.lock_path, self.timeout,
                               self.lock_path)) from None
                    time.sleep(_LOCK_POLL)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def update(self, write=True):
        """Read-modify-write under the lock; yields an :class:`Update`.

        Change ``update.data`` in place or assign a new mapping to it.  When the block
        ends without an exception, the file is rewritten (atomically, mode 0644) if the
        new content differs from what was read and ``write`` is true; ``update.changed``
        tells whether it differs (also in check mode, ``write=False``).  An exception in
        the block leaves the file untouched.
        """
        with self.locked():
            data = self.read()
            before = self.dump(data)
            txn = Update(data)
            yield txn
            text = self.dump(txn.data)
            txn.changed = text != before
            if txn.changed and write:
                atomic_write(self.path, text)


class Update:
    """What :meth:`StateFile.update` yields: ``data`` (the mapping) and, after the
    ``with`` block, ``changed``."""

    def __init__(self, data):
        self.data = data
        self.changed = False
