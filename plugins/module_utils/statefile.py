# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side state files beside the inventory: one lock, one atomic write.

The key registry (``registry.py``) and the gateways' client allocations
(``gateway.py``) are YAML files that several forks may read-modify-write at once.
Both use the same two primitives: :func:`locked` serialises the read-modify-write with
an ``flock`` on a hidden lock file next to the state file, and :func:`atomic_write`
replaces the file in one ``rename`` so a reader never sees half a file.  Used on the
controller only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile


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


def atomic_write(path, text, mode=0o644, prefix=None):
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix=prefix or "." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
