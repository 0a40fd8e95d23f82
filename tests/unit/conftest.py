"""Make the checkout importable as ``ansible_collections.meshfleet.mesh``.

Ansible loads collection code by its fully qualified package name.  The repository
root *is* the collection, so a symlink under ``.build/collections`` (git-ignored) gives
the tests the same import paths that an installed collection has.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "meshfleet" / "mesh"

if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, LINK)

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
