# Copyright (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addressing filters: gateway client pools and bridge link plans.

Documentation lives in the sidecar files ``allocate_addresses.yml``,
``link_addresses.yml`` and ``link_plan.yml`` next to this file.  The logic is in
``plugins/module_utils/addressing.py``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.meshfleet.mesh.plugins.module_utils import addressing

_OMIT_PREFIX = "__omit_place_holder__"


def _unset(value):
    """Map Ansible's ``omit`` (2.19 sentinel or legacy placeholder string) to None."""
    if type(value).__name__ == "_OmitType":
        return None
    if isinstance(value, str) and value.startswith(_OMIT_PREFIX):
        return None
    return value


def _call(function, *args, **kwargs):
    try:
        return function(*args, **{key: _unset(value) for key, value in kwargs.items()})
    except addressing.AddressingError as exc:
        raise AnsibleFilterError(str(exc), orig_exc=exc) from exc


def allocate_addresses(
    clients, pool, pinned=None, reserved=None, gateway_address=None, previous=None
):
    """Stable, deterministic ``{client: address}`` for a gateway's client pool."""
    return _call(
        addressing.allocate_addresses,
        clients,
        pool,
        pinned=pinned,
        reserved=reserved,
        gateway_address=gateway_address,
        previous=previous,
    )


def link_addresses(link_name, prefix=None, fleet_id=None, subnet=None):
    """The /64 and ``[::1, ::2]`` addresses of one bridge link."""
    return _call(
        addressing.link_addresses, link_name, prefix=prefix, fleet_id=fleet_id, subnet=subnet
    )


def link_plan(links, prefix=None, fleet_id=None):
    """Addresses for every bridge link of the fleet, failing on /64 collisions."""
    return _call(addressing.link_plan, links, prefix=prefix, fleet_id=fleet_id)


class FilterModule:
    """meshfleet.mesh addressing filters."""

    def filters(self):
        return {
            "allocate_addresses": allocate_addresses,
            "link_addresses": link_addresses,
            "link_plan": link_plan,
        }
