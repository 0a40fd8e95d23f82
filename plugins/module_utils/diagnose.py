# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The diagnosis of one client's way out to the Internet (playbooks/diagnose.yml).

``diagnose(data)`` walks the links of the way out in order and stops at the first broken
one, with what was read (evidence) and the fix as a concrete command.  Pure function over
plain data, unit tested in tests/unit/plugins/module_utils/test_diagnose.py.

``data``, built by the playbook (filter ``meshfleet.mesh.diagnose_client``)::

    {"client": host, "gateways": [host, ...],        # client_gateways, in order
     "inventory": "inventories/lab",                 # for the commands in the fixes
     "registry": {host: {"public_key", "ipv6"}},     # the key registry
     "statuses": {host: status or {"unreachable": why}},   # module fleet_status
     "hosts": {host: {                               # settings from the inventory
         "connection": "ssh",                        # how Ansible reaches it (wording)
         "tun": "cjdns0", "service": "cjdns.service",
         # the client:
         "peer_interface": "riverside", "peers": [host, ...],
         "failover_unit": "meshfleet-gw-failover.service",
         "route_target": "9.9.9.9",                  # an Internet address its routes must
                                                     # send into the tunnel
         # a gateway:
         "pool": "10.98.0.0/24", "uplink": "wan", "nft_table": "meshfleet",
         "sysctl_file": "/etc/sysctl.d/90-meshfleet-gateway.conf",
         "firewall_unit": "meshfleet-firewall.service"}}}

A status is what ``fleet_status`` returns with the diagnosis' read options: ``cjdns``,
``node``, ``peers``, ``tunnels``, and, when asked for, ``interfaces``, ``routes``,
``route_to``, ``units``, ``sysctls``, ``nft``, ``tunnel_config``, ``failover``, ``uplink``.

The result is the ordered list of the seven links, each ``{"link": n, "id", "title",
"state": "ok" | "broken" | "not checked", "host", "evidence", "fix"}``; at most one is
broken, and every link after it is "not checked".
"""

from __future__ import annotations

import ipaddress
import json

LINKS = (
    ("cjdns", "the client's cjdroute is up"),
    ("peers", "the client has peers"),
    ("tunnel", "its tunnel to each gateway has an address"),
    ("routes", "its routes send Internet traffic into the tunnel"),
    ("pinned", "each gateway pins the client's key"),
    ("forwarding", "each gateway forwards and masquerades the pool"),
    ("uplink", "each gateway's uplink answers"),
)
OK, BROKEN, NOT_CHECKED = "ok", "broken", "not checked"
# Routes cjdns puts on the TUN for a tunnel with ip4Prefix 0 (the whole IPv4 Internet).
HALF_ROUTES = ("0.0.0.0/1", "128.0.0.0/1")
# The allowedConnections fields IpTunnel_allowConnection takes (the fix for a lost pin).
ALLOW_FIELDS = ("ip4Address", "ip4Prefix", "ip4Alloc", "ip6Address", "ip6Prefix", "ip6Alloc")


class Broken(Exception):
    """A link is broken: what was read, and the fix."""

    def __init__(self, host, evidence, fix):
        super().__init__(evidence)
        self.host, self.evidence, self.fix = host, evidence, fix


class _Walk:
    def __init__(self, data):
        self.client = data["client"]
        self.gateways = list(data.get("gateways") or [])
        self.inventory = data.get("inventory") or "<your inventory>"
        self.registry = data.get("registry") or {}
        self.statuses = data.get("statuses") or {}
        self.hosts = data.get("hosts") or {}
        self.key_to_host = {
            entry.get("public_key"): host
            for host, entry in self.registry.items()
            if isinstance(entry, dict) and entry.get("public_key")
        }

    # ------------------------------------------------------------------ helpers
    def setting(self, host, name, default=None):
        value = (self.hosts.get(host) or {}).get(name)
        return default if value in (None, "") else value

    def status(self, host):
        return self.statuses.get(host) or {"unreachable": "no status was read (not in this run)"}

    def site(self, *hosts):
        return "ansible-playbook meshfleet.mesh.site -i %s --limit %s" % (
            self.inventory, ",".join(hosts))

    def ping_cmd(self, host):
        return "ansible %s -i %s -m ansible.builtin.ping" % (host, self.inventory)

    def reachable(self, host, what):
        """The host's status, or Broken when it could not be read."""
        status = self.status(host)
        if "unreachable" in status:
            how = {"community.docker.docker": "docker", "docker": "docker", "ssh": "SSH",
                   "paramiko_ssh": "SSH", "local": "local connection"}.get(
                       self.setting(host, "connection", "ssh"), self.setting(host, "connection"))
            raise Broken(host, "%s is unreachable over %s, so %s cannot be read: %s"
                         % (host, how, what, status["unreachable"]),
                         "bring %s back (power, network, container), then check: %s"
                         % (host, self.ping_cmd(host)))
        return status

    def service_up(self, host):
        status = self.reachable(host, "its cjdroute")
        cjdns = status.get("cjdns") or {}
        service = self.setting(host, "service", "cjdns.service")
        if not cjdns.get("version") and not cjdns.get("active"):
            raise Broken(host, "cjdroute is not installed or does not run on %s (%s)"
                         % (host, cjdns.get("error") or "no version"),
                         "install and configure it: %s" % self.site(host))
        if not cjdns.get("active"):
            raise Broken(host, "%s is not active on %s (%s)%s"
                         % (service, host, cjdns.get("version") or "?",
                            ": " + cjdns["error"] if cjdns.get("error") else ""),
                         "on %s: systemctl start %s (why it stopped: journalctl -u %s -n 50)"
                         % (host, service, service))
        if cjdns.get("error"):
            raise Broken(host, "%s runs on %s but its admin API cannot be read: %s"
                         % (service, host, cjdns["error"]),
                         "on %s: systemctl restart %s; if that does not help: %s"
                         % (host, service, self.site(host)))
        uptime = cjdns.get("uptime_s")
        return "%s %s on %s%s, admin API answers" % (
            service, "active", host,
            " for %s" % _duration(uptime) if isinstance(uptime, int) else "")

    def name(self, key):
        return self.key_to_host.get(key) or (key[:12] + "..." if key else "?")

    def key_of(self, host):
        key = (self.registry.get(host) or {}).get("public_key")
        if not key:
            key = ((self.statuses.get(host) or {}).get("node") or {}).get("public_key")
        return key

    def outgoing(self, gateway):
        key = self.key_of(gateway)
        return [t for t in self.status(self.client).get("tunnels") or []
                if t.get("outgoing") and t.get("public_key") == key]

    def issued(self):
        """gateway -> the IPv4 address it issued the client (None: none)."""
        out = {}
        for gateway in self.gateways:
            addresses = [t.get("ip4") for t in self.outgoing(gateway) if t.get("ip4")]
            out[gateway] = addresses[0] if addresses else None
        return out

    def tun_addresses(self, host):
        tun = self.setting(host, "tun", "cjdns0")
        for entry in self.status(host).get("interfaces") or []:
            if entry.get("interface") == tun:
                return [a.split("/")[0] for a in entry.get("addresses") or []]
        return None  # not read

    # ------------------------------------------------------------------ links
    def link_cjdns(self):
        return self.service_up(self.client)

    def link_peers(self):
        status = self.status(self.client)
        peers = status.get("peers") or []
        up = [p for p in peers if p.get("state") == "ESTABLISHED"]
        if up:
            return "%d of %d peers ESTABLISHED (%s)" % (
                len(up), len(peers), ", ".join(sorted(self.name(p.get("public_key")) for p in up)))
        interface = self.setting(self.client, "peer_interface")
        declared = self.setting(self.client, "peers", [])
        port = None
        for entry in status.get("interfaces") or []:
            if entry.get("interface") == interface:
                port = entry
        said = ", ".join("%s %s" % (self.name(p.get("public_key")), p.get("state")) for p in peers)
        evidence = "%s has %s" % (
            self.client,
            "%d peers, none ESTABLISHED (%s)" % (len(peers), said) if peers else "no peers at all")
        if port is not None:
            evidence += "; its peer interface %s is %s" % (
                interface, port.get("state") or "missing")
        if port is not None and port.get("state") != "UP":
            fix = "on %s: ip link set %s up (then check the link itself: cable, radio, switch)" % (
                self.client, interface)
        elif not peers:
            fix = "give it peers (cjdns_peers, or beacons on its mesh interface) and apply: %s" % (
                self.site(self.client, *declared) if declared else self.site(self.client))
        else:
            fix = ("check that cjdns UDP passes on %s%s and that its peers (%s) run cjdns "
                   "(on %s: nft list ruleset; on each peer: systemctl status cjdns.service); "
                   "then %s" % (
                       self.client, " interface %s" % interface if interface else "",
                       ", ".join(declared) or said, self.client,
                       self.site(self.client, *declared)))
        raise Broken(self.client, evidence, fix)

    def link_tunnel(self):
        parts, tun = [], self.setting(self.client, "tun", "cjdns0")
        on_tun = self.tun_addresses(self.client)
        for gateway in self.gateways:
            conns = self.outgoing(gateway)
            addresses = [a for t in conns for a in (t.get("ip4"), t.get("ip6")) if a]
            if not conns:
                raise Broken(self.client,
                             "%s has no IpTunnel connection to %s (its outgoingConnections lack "
                             "%s's key %s)" % (self.client, gateway, gateway,
                                               self.key_of(gateway) or "(not in the registry)"),
                             "pin the gateway on the client: %s" % self.site(self.client))
            if not addresses:
                raise Broken(self.client, "%s's tunnel to %s has no address: %s issued none%s"
                             % (self.client, gateway, gateway, self.gateway_hint(gateway)),
                             self.gateway_fix(gateway))
            ip4 = [t.get("ip4") for t in conns if t.get("ip4")]
            if on_tun is not None and ip4 and not set(ip4) & set(on_tun):
                held = [a for a in on_tun if ":" not in a]
                raise Broken(self.client, "%s issued %s %s, but %s holds %s"
                             % (gateway, self.client, ", ".join(ip4), tun,
                                ", ".join(held) or "no IPv4 address"),
                             "on %s: systemctl restart %s (it keeps every issued address on %s)"
                             % (self.client, self.setting(self.client, "failover_unit",
                                                          "meshfleet-gw-failover.service"), tun))
            parts.append("%s issued %s" % (gateway, ", ".join(addresses)))
        return "; ".join(parts) + (" (on %s)" % tun if on_tun is not None else "")

    def gateway_hint(self, gateway):
        """Why a gateway issued nothing, as far as its status tells."""
        try:
            self.service_up(gateway)
        except Broken as exc:
            return "; %s" % exc.evidence
        if not self.pinned_live(gateway):
            return "; %s does not pin %s's key" % (gateway, self.client)
        return ""

    def gateway_fix(self, gateway):
        try:
            self.service_up(gateway)
        except Broken as exc:
            return exc.fix
        if not self.pinned_live(gateway):
            return self.pin_fix(gateway)
        service = self.setting(self.client, "service", "cjdns.service")
        return ("cjdns asks again every few seconds; if it stays without an address: on %s: "
                "systemctl restart %s" % (self.client, service))

    def link_routes(self):
        client, tun = self.client, self.setting(self.client, "tun", "cjdns0")
        status = self.status(client)
        issued = {g: a for g, a in self.issued().items() if a}
        unit = self.setting(client, "failover_unit", "meshfleet-gw-failover.service")
        routes = status.get("routes")
        evidence = []
        if routes is not None:
            via_tun = sorted(r.get("dst") for r in routes if r.get("dev") == tun)
            covered = "default" in via_tun or all(d in via_tun for d in HALF_ROUTES)
            if not covered:
                missing = [d for d in HALF_ROUTES if d not in via_tun]
                src = next(iter(issued.values()), None)
                commands = "; ".join(
                    "ip route replace %s dev %s proto 52%s"
                    % (d, tun, " src %s" % src if src else "") for d in missing)
                raise Broken(client, "%s routes no Internet traffic into %s: %s missing (routes "
                                     "on %s: %s)" % (client, tun, ", ".join(missing), tun,
                                                     ", ".join(via_tun) or "none"),
                             "on %s: %s (cjdns installs them when a gateway issues the address; "
                             "or: systemctl restart %s)" % (
                                 client, commands,
                                 self.setting(client, "service", "cjdns.service")))
            evidence.append("%s via %s" % (" + ".join(d for d in via_tun if d in HALF_ROUTES + (
                "default",)), tun))
        target = self.setting(client, "route_target")
        for entry in status.get("route_to") or []:
            if entry.get("target") != target and target is not None:
                continue
            if entry.get("error") or entry.get("dev") != tun:
                raise Broken(client, "traffic from %s to %s leaves by %s, not %s"
                             % (client, entry.get("target"),
                                entry.get("error") or "%s%s" % (
                                    entry.get("dev"), " via %s" % entry["gateway"]
                                    if entry.get("gateway") else ""), tun),
                             "a more specific route on %s takes it: look at `ip route` on %s "
                             "and remove what the client role did not install; or: "
                             "systemctl restart %s"
                             % (client, client, self.setting(client, "service", "cjdns.service")))
            if issued and entry.get("src") not in issued.values():
                raise Broken(client, "traffic from %s to %s leaves %s with source %s, which no "
                                     "gateway issued (%s)"
                             % (client, entry.get("target"), tun, entry.get("src"),
                                ", ".join("%s: %s" % kv for kv in sorted(issued.items()))),
                             "on %s: systemctl restart %s (it makes the chosen gateway's address "
                             "the routes' source)" % (client, unit))
            using = [g for g, a in issued.items() if a == entry.get("src")]
            evidence.append("%s goes out with source %s%s" % (
                entry.get("target"), entry.get("src"), " (%s)" % using[0] if using else ""))
        units = status.get("units") or {}
        if unit in units and units[unit] != "active":
            raise Broken(client, "%s is %s on %s: nothing keeps the gateways' addresses on %s "
                                 "or fails over between them" % (unit, units[unit], client, tun),
                         "on %s: systemctl start %s (why it stopped: journalctl -u %s -n 50)"
                         % (client, unit, unit))
        if unit in units:
            failover = status.get("failover") or {}
            evidence.append("%s active%s" % (unit, ", using %s" % failover["active"]
                                             if failover.get("active") else ""))
        return "; ".join(evidence) or "not read"

    def pinned_live(self, gateway):
        key = self.key_of(self.client)
        return [t for t in self.status(gateway).get("tunnels") or []
                if not t.get("outgoing") and t.get("public_key") == key]

    def pinned_in_config(self, gateway):
        key = self.key_of(self.client)
        config = self.status(gateway).get("tunnel_config")
        if config is None:
            return None
        return [e for e in config.get("allowed") or [] if e.get("publicKey") == key]

    def pin_fix(self, gateway):
        entries = self.pinned_in_config(gateway)
        if entries:
            args = {"publicKeyOfAuthorizedNode": entries[0]["publicKey"]}
            args.update((f, entries[0][f]) for f in ALLOW_FIELDS if f in entries[0])
            return ("%s's cjdroute.conf pins %s but the running daemon does not (removed through "
                    "the admin API?), and site.yml changes nothing while the file is right: "
                    "allow it again live: ansible %s -i %s -m meshfleet.mesh.cjdns_admin "
                    "-a '%s' (or on %s: systemctl restart %s, which cuts its clients off for "
                    "about a minute)" % (
                        gateway, self.client, gateway, self.inventory,
                        _json({"function": "IpTunnel_allowConnection", "args": args}),
                        gateway, self.setting(gateway, "service", "cjdns.service")))
        return "%s does not pin %s: run %s" % (gateway, self.client, self.site(gateway))

    def link_pinned(self):
        key = self.key_of(self.client)
        own = ((self.status(self.client).get("node")) or {}).get("public_key")
        if own and key and own != key:
            raise Broken(self.client, "%s runs with key %s but the key registry has %s: its "
                                      "gateways pin the registry's" % (self.client, own, key),
                         "accept the new key (cjdns_accept_key_change: true for %s), then %s"
                         % (self.client, self.site(self.client, *self.gateways)))
        parts = []
        for gateway in self.gateways:
            self.service_up(gateway)
            live = self.pinned_live(gateway)
            if not live:
                config = self.pinned_in_config(gateway)
                raise Broken(gateway, "%s does not pin %s: none of its IpTunnel connections "
                                      "allows key %s%s" % (
                                          gateway, self.client, key,
                                          "" if config is None else
                                          "; its cjdroute.conf %s" % (
                                              "does" if config else "does not either")),
                             self.pin_fix(gateway))
            parts.append("%s pins %s (%s)" % (gateway, self.client, ", ".join(
                a for t in live for a in (t.get("ip4"), t.get("ip6")) if a) or "no address"))
        return "; ".join(parts)

    def link_forwarding(self):
        parts = []
        for gateway in self.gateways:
            status = self.status(gateway)
            sysctl_file = self.setting(gateway, "sysctl_file",
                                       "/etc/sysctl.d/90-meshfleet-gateway.conf")
            forward = (status.get("sysctls") or {}).get("net.ipv4.ip_forward", "not read")
            if forward not in ("1", "not read"):
                raise Broken(gateway, "%s does not forward: net.ipv4.ip_forward = %s"
                             % (gateway, forward),
                             "on %s: sysctl -p %s (if that file is missing: %s)"
                             % (gateway, sysctl_file, self.site(gateway)))
            pool, uplink = self.setting(gateway, "pool"), self.setting(gateway, "uplink")
            nft = status.get("nft")
            unit = self.setting(gateway, "firewall_unit", "meshfleet-firewall.service")
            table = "inet %s" % self.setting(gateway, "nft_table", "meshfleet")
            reload_fix = ("on %s: systemctl reload-or-restart %s (loads the table from its "
                          "file; if the rule is missing there too: %s)"
                          % (gateway, unit, self.site(gateway)))
            if nft is not None and not nft.get("present"):
                raise Broken(gateway, "table %s is not loaded on %s%s"
                             % (table, gateway, ": " + nft["error"] if nft.get("error") else ""),
                             reload_fix)
            if nft is not None:
                chains = nft.get("chains") or {}
                forward_rules = [r for r in chains.get("forward", [])
                                 if _has(r, pool) and "accept" in r and "saddr" in r]
                if not forward_rules:
                    raise Broken(gateway, "%s does not forward the pool %s: no accept rule for it "
                                          "in chain forward of table %s" % (gateway, pool, table),
                                 reload_fix)
                masquerade = [r for r in chains.get("postrouting", [])
                              if _has(r, pool) and "masquerade" in r]
                if not masquerade:
                    raise Broken(gateway, "%s does not masquerade the pool %s: no masquerade rule "
                                          "in chain postrouting of table %s (rules: %s)"
                                 % (gateway, pool, table,
                                    "; ".join(chains.get("postrouting", [])) or "none"),
                                 reload_fix)
                if uplink and not any('"%s"' % uplink in r for r in masquerade):
                    raise Broken(gateway, "%s masquerades the pool %s, but not out of its uplink "
                                          "%s: %s" % (gateway, pool, uplink, "; ".join(masquerade)),
                                 "the uplink changed? %s" % self.site(gateway))
            parts.append("%s: ip_forward = %s, %s forwards and masquerades %s%s" % (
                gateway, forward, table, pool or "the pool", " out of %s" % uplink if uplink
                else ""))
        return "; ".join(parts)

    def link_uplink(self):
        parts = []
        for gateway in self.gateways:
            uplink = self.status(gateway).get("uplink")
            if uplink is None:
                parts.append("%s: not read" % gateway)
                continue
            interface = uplink.get("interface") or self.setting(gateway, "uplink") or "?"
            if uplink.get("state") not in (None, "UP", "UNKNOWN"):
                raise Broken(gateway,
                             "%s's uplink %s is %s" % (gateway, interface, uplink["state"]),
                             "on %s: ip link set %s up, then check its cable or radio and the "
                             "upstream router" % (gateway, interface))
            if not uplink.get("default_gateway") and not uplink.get("default_route"):
                raise Broken(gateway, "%s has no default route on its uplink %s (%s)"
                             % (gateway, interface, uplink.get("error") or "ip route shows none"),
                             "on %s: give %s its default route back (DHCP: networkctl renew %s or "
                             "dhclient %s; static: ip route replace default via ROUTER dev %s)"
                             % (gateway, interface, interface, interface, interface))
            probes = uplink.get("probes") or []
            answered = [p for p in probes if p.get("ok")]
            if probes and not answered:
                raise Broken(gateway, "%s's uplink %s does not answer: %s" % (
                    gateway, interface, "; ".join("ping %s: %s" % (p.get("target"), p.get("error")
                                                                   or "no reply")
                                                  for p in probes)),
                             "check the upstream of %s: its router %s (on %s: ip neigh show dev "
                             "%s; ping %s), then the ISP" % (
                                 interface, uplink.get("default_gateway") or "?", gateway,
                                 interface, uplink.get("default_gateway") or "ROUTER"))
            parts.append("%s reaches %s through %s%s" % (
                gateway, ", ".join(p.get("target") for p in answered) or "(no probe)", interface,
                " (%s ms)" % answered[0]["rtt_ms"] if answered and answered[0].get("rtt_ms")
                is not None else ""))
        return "; ".join(parts)


def _has(rule, pool):
    if not pool:
        return True
    if pool in rule:
        return True
    try:  # nft prints a network in canonical form
        return str(ipaddress.ip_network(pool, strict=False)) in rule
    except ValueError:
        return False


def _json(value):
    return json.dumps(value, sort_keys=True)


def _duration(seconds):
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def diagnose(data):
    """Walk the client's way out; return the seven links in order (see the module doc)."""
    walk = _Walk(data)
    out, broken = [], False
    for number, (ident, title) in enumerate(LINKS, start=1):
        entry = {"link": number, "id": ident, "title": title, "state": NOT_CHECKED,
                 "host": None, "evidence": "", "fix": ""}
        if not broken:
            try:
                entry.update(state=OK, evidence=getattr(walk, "link_" + ident)())
            except Broken as exc:
                broken = True
                entry.update(state=BROKEN, host=exc.host, evidence=exc.evidence, fix=exc.fix)
        out.append(entry)
    return out


def render(client, gateways, links):
    """The lines the playbook prints: one per link, the broken one with its fix."""
    lines = ["way out of %s (gateways: %s):" % (client, ", ".join(gateways) or "none")]
    for link in links:
        word = {OK: "OK", BROKEN: "BROKEN", NOT_CHECKED: "--"}[link["state"]]
        text = link["evidence"] if link["state"] != NOT_CHECKED else "not checked"
        lines.append("%d %-6s %s: %s" % (link["link"], word, link["title"], text))
        if link["state"] == BROKEN:
            lines.append("  fix: %s" % link["fix"])
    return lines
