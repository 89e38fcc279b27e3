/**
 * The doctor: the LVS-DR mistakes that cost operators days, judged from what the hosts were seen
 * to hold and what the directors' probes heard. Pure: each finding names the host, the setting,
 * why it breaks DR and the fix; an error when the cluster cannot work so, a warning when it may.
 * `preflight.ts` takes the checks that decide whether a change is safe from here.
 */
import type { DesiredClusterState } from "../model/desired";
import type { DesiredHostState, ObservedHostState, VirtualServiceState } from "../model/host-state";
import { serviceKey } from "../model/keys";
import type { DoctorProbeResult } from "../parse/doctor";
import { own } from "../parse/records";

export type DoctorCheck = "vip-on-nic" | "arp-flux" | "ndp-flux" | "rp-filter" | "default-route" | "mtu" | "offload" | "conntrack" | "data-path" | "listening" | "ipv6-disabled";

export interface DoctorFinding {
  host: string;
  check: DoctorCheck;
  severity: "error" | "warning";
  /** The setting as the host holds it (`net.ipv4.conf.eth0.rp_filter=1`). */
  setting: string;
  why: string;
  fix: string;
  /** One line: the finding in short. */
  message: string;
}

export interface DoctorInput {
  desired: DesiredClusterState;
  observed: ReadonlyMap<string, ObservedHostState>;
  /** Each director's probe, by director. */
  probes: ReadonlyMap<string, DoctorProbeResult>;
}

const isV6 = (address: string) => address.includes(":");
const zeroMac = "00:00:00:00:00:00";

/** Every VIP of the cluster: the directors' own and their failover groups'. */
export function clusterVips(desired: DesiredClusterState): Set<string> {
  const vips = new Set<string>();
  for (const h of desired.hosts.filter((d) => d.role === "director")) {
    for (const s of h.services) if (s.address) vips.add(s.address);
    for (const a of h.addresses) vips.add(a.address);
    for (const a of h.keepalived?.vrrp?.vips ?? []) vips.add(a.address);
  }
  return vips;
}

/** MAC -> the cluster's host with that MAC on one of its links. */
function macOwners(desired: DesiredClusterState, observed: ReadonlyMap<string, ObservedHostState>): Map<string, DesiredHostState> {
  const owners = new Map<string, DesiredHostState>();
  for (const h of desired.hosts) {
    for (const l of observed.get(h.host)?.links ?? []) if (l.mac && l.mac !== zeroMac && !owners.has(l.mac)) owners.set(l.mac, h);
  }
  return owners;
}

/**
 * A VIP on a real server's interface other than `lo`. Answered in ARP (arp_ignore=1 hides an
 * address only from requests arriving on another interface) and in neighbour discovery.
 */
export function vipOnNic(desired: DesiredHostState, observed: ObservedHostState, vips: ReadonlySet<string>): DoctorFinding[] {
  if (desired.role !== "real-server") return [];
  return observed.addresses
    .filter((a) => a.interface !== "lo" && vips.has(a.address))
    .map((a) => ({
      host: desired.host,
      check: "vip-on-nic" as const,
      severity: "error" as const,
      setting: `${a.address}/${a.prefix} on ${a.interface}`,
      why: `a VIP on a NIC is answered in ${isV6(a.address) ? "neighbour discovery by this server (the kernel answers a solicitation for any address on the interface it arrives on)" : "ARP by this server (arp_ignore hides only an address on another interface than the request's)"}: the router and clients learn this server's MAC for the VIP and bypass the director`,
      fix: `ip addr del ${a.address}/${a.prefix} dev ${a.interface}, and take it out of the host's network configuration; lvs-dr holds the VIP on lo`,
      message: `the VIP ${a.address} is on ${a.interface}, not only on lo`,
    }));
}

/** The kernel uses the larger of conf/all and conf/IFACE for rp_filter. */
function rpFilter(observed: ObservedHostState, iface: string): { value: number; all: string; own: string } | null {
  const all = own(observed.sysctls, "net/ipv4/conf/all/rp_filter");
  const dev = own(observed.sysctls, `net/ipv4/conf/${iface}/rp_filter`);
  if (all == null || dev == null) return null;
  return { value: Math.max(Number(all), Number(dev)), all, own: dev };
}

/**
 * Strict reverse-path filtering on a real server whose route back to clients (its default
 * route) leaves by another interface than the one facing the director: every client packet the
 * director forwards arrives on that interface and is dropped. Loose (2) or off (0) is fine.
 */
export function strictRpFilter(desired: DesiredHostState, observed: ObservedHostState): DoctorFinding[] {
  if (desired.role !== "real-server" || isV6(desired.primaryAddress) || !observed.defaultRoutes) return [];
  const rp = rpFilter(observed, desired.interface);
  const route = observed.defaultRoutes.find((r) => r.device !== null);
  if (!rp || rp.value !== 1 || !route || route.device === desired.interface) return [];
  return [
    {
      host: desired.host,
      check: "rp-filter",
      severity: "error",
      setting: `net.ipv4.conf.${desired.interface}.rp_filter=${rp.own} (all=${rp.all}: strict), default route via ${route.device}`,
      why: `strict rp_filter drops a packet whose source is routed out of another interface than the one it came in on: client packets the director sends to the VIP arrive on ${desired.interface}, but the route back to clients leaves by ${route.device}`,
      fix: `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${desired.interface}.rp_filter=2 (loose), and the same in /etc/sysctl.d`,
      message: `strict rp_filter on ${desired.interface} drops the director's frames for the VIP (the default route leaves by ${route.device})`,
    },
  ];
}

/** IPv6 disabled (or absent from the kernel) where an IPv6 VIP must go. */
export function ipv6Disabled(desired: DesiredHostState, observed: ObservedHostState): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  for (const iface of new Set(desired.addresses.filter((a) => isV6(a.address)).map((a) => a.interface))) {
    const key = `net/ipv6/conf/${iface}/disable_ipv6`;
    const value = own(observed.sysctls, key);
    if (value === undefined || value === "0") continue;
    const vips = desired.addresses.filter((a) => a.interface === iface && isV6(a.address)).map((a) => a.address);
    findings.push({
      host: desired.host,
      check: "ipv6-disabled",
      severity: "error",
      setting: value === null ? "IPv6 is not in the kernel (/proc/sys/net/ipv6 is absent: ipv6.disable=1?)" : `net.ipv6.conf.${iface}.disable_ipv6=1`,
      why: `the IPv6 VIP${vips.length > 1 ? "s" : ""} ${vips.join(", ")} must go on ${iface}, and an interface with IPv6 disabled takes no IPv6 address`,
      fix: value === null ? "boot without ipv6.disable=1" : `sysctl -w net.ipv6.conf.${iface}.disable_ipv6=0, and the same in /etc/sysctl.d`,
      message: `IPv6 is disabled on ${iface}, where the VIP${vips.length > 1 ? "s" : ""} ${vips.join(", ")} must go`,
    });
  }
  return findings;
}

/**
 * A flux probe's answers that are not the VIP's owner: any MAC but the asking director's own
 * and, unless the asking director holds the VIP itself, those of the cluster's directors that do.
 */
export function fluxAnswers(
  director: DesiredHostState,
  vip: string,
  answers: readonly string[],
  desired: DesiredClusterState,
  observed: ReadonlyMap<string, ObservedHostState>,
): { mac: string; owner: DesiredHostState | null }[] {
  const owners = macOwners(desired, observed);
  const holds = (h: DesiredHostState) => observed.get(h.host)?.addresses.some((a) => a.address === vip && a.interface !== "lo") ?? false;
  const self = new Set((observed.get(director.host)?.links ?? []).map((l) => l.mac));
  const selfHolds = holds(director);
  return answers
    .filter((mac) => !self.has(mac))
    .map((mac) => ({ mac, owner: owners.get(mac) ?? null }))
    .filter(({ owner }) => !(owner && owner.role === "director" && !selfHolds && holds(owner)));
}

export function fluxFinding(director: DesiredHostState, vip: string, mac: string, owner: DesiredHostState | null): DoctorFinding {
  const v6 = isV6(vip);
  const protocol = v6 ? "neighbour discovery" : "ARP";
  const who = owner ? `${owner.role === "director" ? "director" : "real server"} ${owner.host}` : "a host outside this cluster";
  return {
    host: director.host,
    check: v6 ? "ndp-flux" : "arp-flux",
    severity: "error",
    setting: `${vip} answered by ${mac} (${who})`,
    why: `${v6 ? "a neighbour advertisement" : "an ARP reply"} for the VIP from another host than its director lets the router and clients send the VIP's traffic there, around the load balancer (${protocol} flux)`,
    fix:
      owner?.role === "real-server"
        ? v6
          ? // Linux answers a solicitation only for an address on the receiving interface, or by proxy NDP.
            `on ${owner.host}: hold the VIP on lo only (see its vip-on-nic finding if any), and no proxy entry for it (ip -6 neigh show proxy; ip -6 neigh del proxy ${vip} dev IFACE)`
          : `on ${owner.host}: hold the VIP on lo only, with arp_ignore=1 and arp_announce=2 (lvsdr apply sets them; see its vip-on-nic finding if any)`
        : owner
          ? `keep the VIP on one director: check the failover group (two masters?) and the spec`
          : `find the host with MAC ${mac} (the switch's MAC table, \`ip neigh\` on the router) and take the VIP off it`,
    message: `${protocol} for ${vip} is answered by ${mac}, ${who}`,
  };
}

/** The real servers a director sends each service to: service key -> RIPs. */
export function servedBy(director: DesiredHostState): { service: VirtualServiceState; rips: string[] }[] {
  // Grouped in one pass: a scan of every destination per service is quadratic in the spec.
  const rips = new Map<string, string[]>();
  for (const d of director.destinations) {
    const list = rips.get(d.service);
    if (list) list.push(d.address);
    else rips.set(d.service, [d.address]);
  }
  return director.services.map((service) => ({ service, rips: rips.get(serviceKey(service)) ?? [] }));
}

export function doctorChecks(input: DoctorInput): DoctorFinding[] {
  const { desired, observed, probes } = input;
  const vips = clusterVips(desired);
  const findings: DoctorFinding[] = [];
  const directors = desired.hosts.filter((h) => h.role === "director");
  const realServers = desired.hosts.filter((h) => h.role === "real-server");

  for (const host of desired.hosts) {
    const seen = observed.get(host.host);
    if (!seen) continue;
    findings.push(...vipOnNic(host, seen, vips), ...strictRpFilter(host, seen), ...ipv6Disabled(host, seen));
    if (host.role === "real-server") findings.push(...defaultRoute(host, seen, directors));
  }

  for (const director of directors) {
    const seen = observed.get(director.host);
    if (!seen) continue;
    findings.push(...offloads(director, seen), ...conntrack(director, seen));
    const probe = probes.get(director.host);
    for (const flux of probe?.flux ?? []) {
      if (flux.error !== null) {
        findings.push(couldNotRun(director.host, flux.family === 6 ? "ndp-flux" : "arp-flux", flux.vip, flux.error, flux.family === 6 ? "ndisc6" : "arping"));
        continue;
      }
      for (const { mac, owner } of fluxAnswers(director, flux.vip, flux.answers, desired, observed)) findings.push(fluxFinding(director, flux.vip, mac, owner));
    }
  }

  const served = new Map(directors.map((d) => [d.host, servedBy(d)]));
  for (const rs of realServers) {
    const seen = observed.get(rs.host);
    if (!seen) continue;
    const mac = seen.links?.find((l) => l.name === rs.interface)?.mac ?? null;
    const services = new Map<string, VirtualServiceState>();
    const serving: DesiredHostState[] = [];
    for (const director of directors) {
      let serves = false;
      for (const { service, rips } of served.get(director.host) ?? []) {
        if (!rs.ownAddresses.some((a) => rips.includes(a.address))) continue;
        serves = true;
        services.set(serviceKey(service), service);
      }
      if (serves) serving.push(director);
    }
    findings.push(...mtu(rs, seen, serving, observed));
    // The DR path, per VIP: an ICMP echo to the VIP at this server's MAC, from any director.
    const rsVips = [...new Set([...services.values()].map((s) => s.address).filter(Boolean))];
    for (const vip of rsVips.filter((v) => !isV6(v))) {
      const results = serving.flatMap((d) => (probes.get(d.host)?.paths ?? []).filter((p) => p.vip === vip && p.mac === mac).map((p) => ({ director: d, p })));
      if (results.length === 0 || results.some((r) => r.p.answered)) continue;
      const ran = results.find((r) => r.p.error === null);
      if (!ran) {
        findings.push(couldNotRun(rs.host, "data-path", vip, results[0]!.p.error ?? "", "arping"));
        continue;
      }
      const onLo = seen.addresses.some((a) => a.interface === "lo" && a.address === vip);
      findings.push({
        host: rs.host,
        check: "data-path",
        severity: "error",
        setting: onLo ? `${vip} on lo, no echo reply at ${mac}` : `${vip} is not on lo`,
        why: onLo
          ? `a packet to ${vip} sent to this server's MAC from ${ran.director.host}, as IPVS-DR sends one, got no answer: its firewall drops it (or ICMP echo), or it never arrives`
          : `IPVS-DR delivers packets addressed to the VIP at this server's MAC; a server that does not hold the VIP drops them`,
        fix: onLo
          ? `allow traffic to ${vip} (and ICMP echo from the DIP, for this check) in its firewall`
          : `lvsdr apply (it puts ${vip}/32 on lo), or ip addr add ${vip}/32 dev lo`,
        message: `the DR path to ${vip} through ${rs.host}'s MAC ${mac} does not answer: ${onLo ? "no reply" : "the VIP is not on lo"}`,
      });
    }
    if (seen.doctor?.listeners) findings.push(...listening(rs, seen, [...services.values()]));
  }
  return dedupe(findings);
}

/** Two directors probing one real server find the same thing once. */
function dedupe(findings: DoctorFinding[]): DoctorFinding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const key = `${f.host}\0${f.check}\0${f.setting}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function couldNotRun(host: string, check: DoctorCheck, vip: string, error: string, tool: string): DoctorFinding {
  return {
    host,
    check,
    severity: "warning",
    setting: `${vip}: ${error}`,
    why: `the ${check} check for ${vip} could not run, so it proves nothing`,
    fix: /not installed/.test(error)
      ? `install ${tool} on the director (Debian: apt-get install ${tool})`
      : `run the doctor again; if it persists, run ${tool} by hand on the director`,
    message: `the ${check} check for ${vip} could not run: ${error}`,
  };
}

/** A real server's IPv4 default route: through a DIP, replies pass the director; with none, they have no way to clients. */
function defaultRoute(rs: DesiredHostState, seen: ObservedHostState, directors: DesiredHostState[]): DoctorFinding[] {
  if (!seen.defaultRoutes || isV6(rs.primaryAddress)) return [];
  const route = seen.defaultRoutes[0];
  if (!route) {
    return [
      {
        host: rs.host,
        check: "default-route",
        severity: "warning",
        setting: "no IPv4 default route",
        why: "in DR a real server answers clients directly through its own gateway: without a route, clients outside the segment get no reply",
        fix: "ip route add default via <the front router> (the spec's realServers[].gateway), and the same in the host's network configuration",
        message: "no IPv4 default route: replies to clients outside the segment have no way back",
      },
    ];
  }
  const director = directors.find((d) => d.primaryAddress === route.gateway);
  if (!director) return [];
  return [
    {
      host: rs.host,
      check: "default-route",
      severity: "error",
      setting: `default via ${route.gateway} (the DIP of ${director.host})`,
      why: "a DR director does not route replies (it needs no ip_forward and has none of the connection state NAT would): replies sent to it are dropped or leave with the wrong path",
      fix: "route the real server's default through the front router, not the director (realServers[].gateway)",
      message: `the default route goes through director ${director.host}'s DIP ${route.gateway}`,
    },
  ];
}

/** A real server's MTU below a director's on the segment: the director sends frames up to its own MTU, which the server's NIC drops. */
function mtu(rs: DesiredHostState, seen: ObservedHostState, serving: DesiredHostState[], observed: ReadonlyMap<string, ObservedHostState>): DoctorFinding[] {
  const mine = seen.links?.find((l) => l.name === rs.interface)?.mtu ?? null;
  if (mine === null) return [];
  return serving.flatMap((d) => {
    const theirs = observed.get(d.host)?.links?.find((l) => l.name === d.interface)?.mtu ?? null;
    if (theirs === null || mine >= theirs) return [];
    return [
      {
        host: rs.host,
        check: "mtu" as const,
        severity: "warning" as const,
        setting: `${rs.interface} mtu ${mine} < ${d.host} ${d.interface} mtu ${theirs}`,
        why: `IPVS-DR forwards a client's packet whole, up to the director's MTU ${theirs}, and checks only its own route's MTU (it sends "fragmentation needed" only above that): a larger frame than ${mine} is dropped by this server's NIC. TCP usually survives through the MSS this server announces; UDP and tunnelled traffic do not`,
        fix: `give every host on the segment one MTU (ip link set ${rs.interface} mtu ${theirs} here, or lower the director's)`,
        message: `MTU ${mine} on ${rs.interface} is below director ${d.host}'s ${theirs}`,
      },
    ];
  });
}

/** LRO on the director's NIC; the kernel turns it off itself only when the host forwards, which a DR director need not. */
function offloads(director: DesiredHostState, seen: ObservedHostState): DoctorFinding[] {
  const observed = seen.doctor?.offloads;
  if (!observed) return [];
  if (observed.features === null) {
    return [
      {
        host: director.host,
        check: "offload",
        severity: "warning",
        setting: "ethtool is not installed",
        why: "the director's NIC offloads (LRO) could not be read, so the offload check could not run",
        fix: "install ethtool on the director (Debian: apt-get install ethtool)",
        message: "the offload check could not run: ethtool is not installed",
      },
    ];
  }
  const lro = own(observed.features, "large-receive-offload");
  if (!lro?.startsWith("on")) return [];
  const forward = own(seen.sysctls, "net/ipv4/ip_forward");
  return [
    {
      host: director.host,
      check: "offload",
      severity: "warning",
      setting: `${observed.interface} large-receive-offload: ${lro}${forward != null ? `, net.ipv4.ip_forward=${forward}` : ""}`,
      why: `LRO merges a client's TCP segments into one large packet that cannot be split again exactly; IPVS drops such a packet above the route's MTU (it is not GSO) and answers "fragmentation needed", so uploads stall. The kernel turns LRO off by itself only when the host forwards (ip_forward=1), which a DR director does not need`,
      fix: `ethtool -K ${observed.interface} lro off (and make it persistent in the interface's configuration); GRO is safe and may stay on`,
      message: `LRO is on on ${observed.interface}: IPVS drops the merged packets above the MTU`,
    },
  ];
}

/** IPVS conntrack on, with netfilter's conntrack loaded: an entry per connection that only conntrack-based firewall rules use. */
function conntrack(director: DesiredHostState, seen: ObservedHostState): DoctorFinding[] {
  const on = own(seen.sysctls, "net/ipv4/vs/conntrack") === "1";
  const max = Number(own(seen.sysctls, "net/netfilter/nf_conntrack_max") ?? NaN);
  const count = Number(own(seen.sysctls, "net/netfilter/nf_conntrack_count") ?? NaN);
  if (!on || !Number.isFinite(max) || max <= 0) return [];
  const full = Number.isFinite(count) && count >= 0.9 * max;
  return [
    {
      host: director.host,
      check: "conntrack",
      severity: "warning",
      setting: `net.ipv4.vs.conntrack=1, nf_conntrack ${Number.isFinite(count) ? count : "?"}/${max}`,
      why: `every IPVS connection also takes a netfilter conntrack entry, which costs CPU and memory per packet and connection and is only of use to conntrack-based firewall rules on the director${full ? "; the table is 90% full, and a full table drops new connections" : ""}`,
      fix: "directors[].ipvs.conntrack: false in the spec unless the director's firewall matches conntrack state on IPVS traffic (then raise net.netfilter.nf_conntrack_max)",
      message: `IPVS conntrack is on (${Number.isFinite(count) ? count : "?"} of ${max} entries used)${full ? ": the table is nearly full" : ""}`,
    },
  ];
}

/**
 * A service the real server must answer on the VIP: a socket bound to the VIP or to the wildcard
 * passes (`::` takes IPv4 too unless net.ipv6.bindv6only is set); one bound only to other
 * addresses (the RIP) never sees the director's packets, addressed to the VIP.
 */
function listening(rs: DesiredHostState, seen: ObservedHostState, services: VirtualServiceState[]): DoctorFinding[] {
  const listeners = seen.doctor?.listeners ?? [];
  const findings: DoctorFinding[] = [];
  for (const svc of services) {
    if (svc.protocol === "fwmark" || svc.port === 0) continue;
    const v6 = isV6(svc.address);
    const onPort = listeners.filter((l) => l.protocol === svc.protocol && l.port === svc.port);
    const ok = onPort.some((l) => l.address === svc.address || l.address === "::" || (!v6 && l.address === "0.0.0.0"));
    if (ok) continue;
    const where = onPort.map((l) => (isV6(l.address) ? `[${l.address}]` : l.address)).join(", ");
    const note = v6 ? " (the DR-path probe is IPv4 only: for an IPv6 VIP this check is the doctor's proof)" : "";
    findings.push({
      host: rs.host,
      check: "listening",
      severity: "error",
      setting: where ? `${svc.protocol}/${svc.port} bound to ${where} only` : `nothing bound to ${svc.protocol}/${svc.port}`,
      why: `the director forwards packets addressed to the VIP ${svc.address}; a service bound ${where ? `only to ${where}` : "nowhere"} on port ${svc.port} never receives them${note}`,
      fix: `bind the service to ${svc.address} or to ${v6 ? "::" : "0.0.0.0 (or ::)"} on port ${svc.port}`,
      message: where
        ? `${svc.protocol}/${svc.port} listens only on ${where}, not on the VIP ${svc.address}`
        : `nothing listens on ${svc.protocol}/${svc.port} for the VIP ${svc.address}`,
    });
  }
  return findings;
}
