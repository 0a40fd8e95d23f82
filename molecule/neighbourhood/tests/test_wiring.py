"""The contract between the roles and the firewall role (roles/firewall/README.md): a
role's part (fact meshfleet_nft_part_<role>) is in the node's table exactly while the
role contributes it, and a node whose last part goes loses the table, its file and its
unit on the next run of site.yml. Runs last in the scenario and puts the fleet back."""

import subprocess

from meshtest import lab_playbook

# A client without LAN sharing: the monitoring role's part is its only one (the gateways
# and bridges keep their own parts, and lose only the monitoring rule meanwhile).
HOST = "rs-ana"


def site(tmp_path, *extra):
    # The whole fleet, not --limit: a node's cjdroute.conf needs its peers' facts, and
    # the scenario keeps no fact cache. Only the monitoring and firewall plays' tasks run.
    proc = lab_playbook(
        "site.yml",
        "--tags",
        "monitoring,firewall",
        *extra,
        budget=tmp_path / "budget-{playbook}.json",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def node(command):
    return subprocess.run(
        ["docker", "exec", HOST, "sh", "-c", command], capture_output=True, text=True, check=False
    )


def test_a_removed_part_leaves_no_stale_table(tmp_path):
    before = node("nft list table inet meshfleet")
    assert before.returncode == 0 and 'comment "monitoring"' in before.stdout, before.stdout
    try:
        site(tmp_path, "-e", "monitoring_firewall=false")
        assert node("nft list table inet meshfleet").returncode != 0, "the table is still loaded"
        assert node("test -e /etc/meshfleet/nftables.nft").returncode != 0, (
            "the ruleset file is left"
        )
        assert node("test -e /etc/systemd/system/meshfleet-firewall.service").returncode != 0, (
            "the unit is left"
        )
    finally:
        site(tmp_path)
    after = node("nft list table inet meshfleet")
    assert after.returncode == 0 and 'comment "monitoring"' in after.stdout
    assert node("systemctl is-enabled meshfleet-firewall.service").stdout.strip() == "enabled"
