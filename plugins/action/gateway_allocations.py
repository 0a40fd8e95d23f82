# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side action: check a gateway's pools, allocate its clients' addresses
(stable across runs) and return its cjdns allowedConnections and its firewall part."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.meshfleet.mesh.plugins.module_utils.addressing import (
    AddressingError,
    fleet_link_prefix,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import CjdnsKeyError
from ansible_collections.meshfleet.mesh.plugins.module_utils.gateway import (
    GatewayError,
    allowed_connections,
    clients_of,
    gateway_pools,
    local_networks,
    nft_part,
    plan,
    unregistered,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.registry import (
    RegistryError,
)
from ansible_collections.meshfleet.mesh.plugins.module_utils.registry import (
    load as load_registry,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "host", "clients", "pools", "gateways", "local_networks",
                             "mesh_ranges", "registry", "skip_unregistered",
                             "bridge_link_prefix", "bridge_fleet_id", "facts", "tun",
                             "uplink", "mss_clamp"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        host = args.get("host") or task_vars["inventory_hostname"]
        for required in ("path", "registry", "pools"):
            if not args.get(required):
                return dict(result, failed=True, msg="%s is required" % required)
        # Unless given, the clients and every gateway's pools come from the inventory.
        if args.get("clients") is None:
            clients = clients_of(host, task_vars.get("groups") or {}, task_vars["hostvars"])
        else:
            clients = list(args["clients"])
        gateways = args.get("gateways")
        if gateways is None:
            gateways = gateway_pools(task_vars.get("groups") or {}, task_vars["hostvars"])
        networks = args.get("local_networks")
        if networks is None and args.get("facts") is not None:
            networks = local_networks(args["facts"], args.get("tun"), args.get("uplink"))
        check_mode = bool(self._task.check_mode)
        mesh_ranges = list(args.get("mesh_ranges") or [])
        if args.get("bridge_link_prefix") or args.get("bridge_fleet_id"):
            try:
                mesh_ranges.append({
                    "network": fleet_link_prefix(args.get("bridge_link_prefix") or None,
                                                 args.get("bridge_fleet_id") or None),
                    "what": "the bridge link prefix"})
            except AddressingError:
                pass  # the bridge role reports a bad link prefix itself
        try:
            registry = load_registry(args["registry"])
            # In check mode on a fresh fleet no client is registered yet (the registry is
            # not written in check mode): report, do not fail.
            missing = unregistered(host, clients, registry,
                                   skip=bool(args.get("skip_unregistered")) or check_mode)
            changed, allocation = plan(
                args["path"], host, clients, args["pools"],
                gateways=gateways,
                local_networks=networks,
                mesh_ranges=mesh_ranges,
                write=not check_mode)
            entries = allowed_connections(
                {family: entry["clients"] for family, entry in allocation.items()}, registry)
        except (GatewayError, RegistryError, CjdnsKeyError) as exc:
            return dict(result, failed=True, msg=str(exc))
        if missing:
            why = ("check mode writes no keys to the registry" if check_mode
                   and not args.get("skip_unregistered") else "converge them, then rerun "
                   "this gateway")
            result.setdefault("warnings", []).append(
                "gateway %s leaves out client(s) %s: no key in the key registry yet (%s)"
                % (host, ", ".join(missing), why))
        result.update(changed=changed, path=args["path"], allocation=allocation,
                      allowed_connections=entries, unregistered=missing)
        if args.get("tun") and args.get("uplink"):
            result["nft_part"] = nft_part(args["tun"], args["uplink"], allocation,
                                          mss_clamp=args.get("mss_clamp", True))
        return result
