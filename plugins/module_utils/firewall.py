# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's nftables table from the parts roles contribute (the firewall role's
planner). The contract is written in roles/firewall/README.md: a part is the fact
``meshfleet_nft_part_<role>``, a mapping of chain name to rule strings, with an optional
``policy`` mapping of chain name to ``accept`` or ``drop``."""

from __future__ import annotations

PREFIX = "meshfleet_nft_part_"
POLICIES = ("accept", "drop")


def assemble(parts, chains):
    """parts: {fact name: part}; chains: the table's chains ([{name, ...}]).

    Returns {"problems": [...]} or {"problems": [], "rules": {chain: [{role, rule}]},
    "policy": {chain: policy}} with rules in role-name order, each tagged with its role.
    """
    known = [c["name"] for c in chains]
    problems, rules, policy = [], {name: [] for name in known}, {}
    for fact in sorted(parts):
        role = fact[len(PREFIX) :] if fact.startswith(PREFIX) else fact
        part = parts[fact]
        if not isinstance(part, dict):
            problems.append(
                "%s must be a mapping of chain to rules (got %s)" % (fact, type(part).__name__)
            )
            continue
        for chain, value in part.items():
            if chain == "policy":
                if not isinstance(value, dict):
                    problems.append("%s.policy must map chains to accept or drop" % fact)
                    continue
                for name, verdict in value.items():
                    if name not in known or verdict not in POLICIES:
                        problems.append(
                            "%s.policy.%s: want one of the chains %s and accept or drop (got %r)"
                            % (fact, name, ", ".join(known), verdict)
                        )
                    elif verdict == "drop" or name not in policy:
                        policy[name] = verdict
                continue
            if chain not in known:
                problems.append(
                    "%s names chain %r; the table has %s" % (fact, chain, ", ".join(known))
                )
                continue
            if not isinstance(value, list) or not all(
                isinstance(r, str) and r.strip() for r in value
            ):
                problems.append("%s.%s must be a list of nft rule strings" % (fact, chain))
                continue
            rules[chain].extend({"role": role, "rule": rule} for rule in value)
    if problems:
        return {"problems": problems}
    return {"problems": [], "rules": rules, "policy": policy}
