import os
import sys
import tempfile
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "molecule"))
sys.path.insert(0, str(ROOT / ".build" / "collections"))


@pytest.fixture(scope="session")
def host():
    """The qemu VM over ssh. Its port and key are generated per run (create.yml), so the
    inventory computes them; testinfra reads inventories without templating, hence this."""
    state = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "vm"
    port = (state / "ssh_port").read_text().strip()
    # One multiplexed ssh connection: a handshake with the emulated VM costs seconds.
    return testinfra.get_host(
        "ssh://root@127.0.0.1:%s" % port,
        ssh_identity_file=str(state / "id_ed25519"),
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                       "-o LogLevel=ERROR -o ServerAliveInterval=10",
        controlpath=os.path.join(tempfile.mkdtemp(prefix="meshfleet-mp-ssh-"), "%%C"),
        controlpersist=600,
        timeout=60,
    )
