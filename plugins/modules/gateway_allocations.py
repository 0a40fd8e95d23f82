#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gateway_allocations
short_description: Check a gateway's client pools and keep its clients' addresses stable
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin); nothing executes on the node.
  - Checks the gateway's pools before anything changes. A pool that is not a CIDR of the
    right family, that overlaps another gateway's pool, a network on one of the gateway's
    interfaces (the uplink included) or one of the mesh's own ranges is an error naming the
    variable, the gateway and the other side.
  - Gives every client one address in each pool with
    P(meshfleet.mesh.allocate_addresses#filter), passing the gateway's last allocation as
    C(previous), so adding or removing a client never moves another one.
  - Keeps every gateway's allocation in one YAML file on the controller (O(path)), beside the
    inventory. The file is rewritten with exactly the current clients (a removed client loses
    its entry) and gateways no longer in O(gateways) are dropped. Writes are serialised with
    a file lock and atomic; check mode writes nothing. The file carries a C(schema_version);
    one written by a newer meshfleet.mesh is refused. Read it with the
    P(meshfleet.mesh.gateway_allocations#lookup) lookup.
  - Returns the cjdns C(allowedConnections) entries for the clients that have a key in the
    key registry. A client without one is an error saying to converge it first, unless
    O(skip_unregistered=true) (or check mode), which leaves it out with a warning.
  - Given O(tun) and O(uplink), also returns the gateway's firewall part (RV(nft_part)).
options:
  path:
    description: The allocation file on the controller.
    type: path
    required: true
  host:
    description: The gateway's inventory name.
    type: str
    default: the current inventory_hostname
  clients:
    description:
      - Inventory names of the clients that pin this gateway. The gateway itself is ignored.
      - When omitted, the hosts of group C(clients) whose C(client_gateways) (a list or a
        comma-separated string) name this gateway.
    type: list
    elements: str
  pools:
    description:
      - C(ipv4) (required) and C(ipv6) (optional, skipped when its C(pool) is empty), each a
        mapping with C(pool) (CIDR), C(address) (the gateway's own address in the pool; empty
        means the first host), C(pinned) (client to address) and C(reserved) (addresses or
        CIDRs never handed out).
    type: dict
    required: true
  gateways:
    description:
      - Every gateway of the inventory, each with its C(gateway_pool) and C(gateway_pool6),
        to refuse overlapping pools.
      - When omitted, every host of group C(gateways) with its C(gateway_pool) and
        C(gateway_pool6) from the inventory (empty when unset).
    type: dict
  local_networks:
    description:
      - Networks on the gateway's own interfaces, each C({interface, network, uplink}); a pool
        must not overlap any of them.
      - When omitted, taken from O(facts).
    type: list
    elements: dict
  facts:
    description:
      - The gateway's facts (C(ansible_facts)). Unless O(local_networks) is given, the
        primary and secondary IPv4 and the global IPv6 networks of its interfaces are read
        from them (loopback and O(tun) excluded; the one named O(uplink) is the uplink).
    type: dict
  tun:
    description: The cjdns TUN device, such as C(cjdns0).
    type: str
  uplink:
    description:
      - The interface that faces the Internet. With O(tun), the firewall part is returned
        as RV(nft_part).
    type: str
  mss_clamp:
    description: Clamp the TCP MSS of connections through the tunnel in RV(nft_part).
    type: bool
    default: true
  mesh_ranges:
    description: Ranges the mesh uses itself, each C({network, what}), such as C(fc00::/8).
    type: list
    elements: dict
  bridge_link_prefix:
    description:
      - The fleet's bridge link prefix (role C(bridge)); a pool must not overlap it.
    type: str
    default: ""
  bridge_fleet_id:
    description:
      - Used when O(bridge_link_prefix) is empty, to derive the link prefix the same way the
        C(bridge) role does.
    type: str
    default: ""
  registry:
    description: The key registry (see M(meshfleet.mesh.cjdns_registry)).
    type: path
    required: true
  skip_unregistered:
    description: Leave out clients without a registry entry, with a warning, instead of failing.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
author:
  - meshfleet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Allocate the clients of this gateway
  meshfleet.mesh.gateway_allocations:
    path: "{{ inventory_dir }}/gateway_allocations.yml"
    registry: "{{ inventory_dir }}/cjdns_registry.yml"
    clients: [pi-garden, pi-library]
    pools:
      ipv4: {pool: 10.99.0.0/24, address: "", pinned: {pi-library: 10.99.0.10}, reserved: []}
  register: gateway_plan
"""

RETURN = r"""
allocation:
  description: Per family, the pool, the gateway's own address and the clients' addresses.
  returned: success
  type: dict
  sample:
    ipv4: {pool: 10.99.0.0/24, address: 10.99.0.1,
           clients: {pi-garden: 10.99.0.57, pi-library: 10.99.0.10}}
allowed_connections:
  description: cjdns C(router.ipTunnel.allowedConnections) entries, sorted by client name.
  returned: success
  type: list
  elements: dict
  sample:
    - {publicKey: q10dlfwmztwps1ctsg6365bwcbv7r9xgf7v30p68lury0dvzvy90.k,
       ip4Address: 10.99.0.57, ip4Prefix: 0, ip4Alloc: 32}
unregistered:
  description: Clients left out because the key registry has no key for them yet.
  returned: success
  type: list
  elements: str
path:
  description: The allocation file.
  returned: success
  type: str
nft_part:
  description:
    - The gateway's part of the collection's nftables table (role C(firewall)), C(policy),
      C(forward), C(forward_mangle) and C(postrouting). Forwards only new traffic from
      O(tun) with a source in a pool out of O(uplink) and what belongs to it back;
      masquerades the IPv4 pool out of O(uplink) (the IPv6 pool is routed, not translated);
      with O(mss_clamp), clamps the MSS on that path.
  returned: success, when O(tun) and O(uplink) are given
  type: dict
  sample:
    policy: {forward: drop}
    forward:
      - iifname "cjdns0" oifname "eth0" ip saddr 10.99.0.0/24
        ct state new,established,related accept
      - iifname "eth0" oifname "cjdns0" ip daddr 10.99.0.0/24
        ct state established,related accept
    forward_mangle:
      - iifname "eth0" oifname "cjdns0" ip daddr 10.99.0.0/24
        tcp flags syn tcp option maxseg size set rt mtu
      - iifname "cjdns0" oifname "eth0" ip saddr 10.99.0.0/24
        tcp flags syn tcp option maxseg size > 1264 tcp option maxseg size set 1264
    postrouting:
      - oifname "eth0" ip saddr 10.99.0.0/24 masquerade
"""
