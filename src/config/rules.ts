/**
 * Rules that relate one part of the cluster spec to another. Each adds an issue at the
 * exact path of the offending field and says which rule it breaks; all are checked, so one
 * run shows every problem.
 */
import type { z } from "zod";
import type { ConnectionInput } from "./connection";
import { mergeConnections } from "./connection";
import { cidrContains, networkAddress, broadcastAddress, parseAddress, parseCidr, netmaskToPrefix, unusableAddress, type ParsedAddress, type ParsedCidr } from "./ip";
import type { ClusterSpec } from "./schema";

type Path = (string | number)[];

/**
 * Runs every rule. When some fields already failed, the spec is only partly valid: a rule may
 * then meet a value of the wrong shape, and is skipped rather than crash; nor is a rule's issue
 * added at a path that already has a field error.
 */
export function checkClusterRules(cluster: ClusterSpec, ctx: z.RefinementCtx<ClusterSpec>): void {
  const failed = new Set(ctx.issues.map((i) => i.path?.join("\0") ?? ""));
  const report = (path: Path, message: string) => {
    if (!failed.has(path.join("\0"))) ctx.addIssue({ code: "custom", path, message });
  };
  for (const rule of [checkNames, checkHosts, checkGateways, checkConnections, checkVirtualServices, checkFailoverGroups]) {
    try {
      rule(cluster, report);
    } catch (err) {
      if (failed.size === 0) throw err;
    }
  }
}

/** The directors that serve a virtual service: its director, or every director of its failover group. */
export function serviceDirectors(cluster: ClusterSpec, svc: ClusterSpec["virtualServices"][number]): string[] {
  if (svc.failoverGroup !== undefined) return cluster.failoverGroups.find((g) => g.name === svc.failoverGroup)?.directors.map((d) => d.name) ?? [];
  const name = svc.director ?? (cluster.directors.length === 1 ? cluster.directors[0]?.name : undefined);
  return name === undefined ? [] : [name];
}

type Report = (path: Path, message: string) => void;

function checkNames(cluster: ClusterSpec, report: Report): void {
  const seen = new Map<string, string>();
  const hostLists = [
    ["directors", cluster.directors],
    ["realServers", cluster.realServers],
  ] as const;
  for (const [list, hosts] of hostLists) {
    hosts.forEach((host, i) => {
      const where = `${list}[${i}]`;
      const earlier = seen.get(host.name);
      if (earlier) report([list, i, "name"], `duplicate host name "${host.name}" (also ${earlier}): host names must be unique`);
      else seen.set(host.name, where);
    });
  }
  const services = new Map<string, number>();
  cluster.virtualServices.forEach((svc, i) => {
    const earlier = services.get(svc.name);
    if (earlier !== undefined) {
      report(["virtualServices", i, "name"], `duplicate virtual service name "${svc.name}" (also virtualServices[${earlier}]): names must be unique`);
    } else services.set(svc.name, i);
  });
}

function checkHosts(cluster: ClusterSpec, report: Report): void {
  const dipOwners = new Map<string, number>();
  cluster.directors.forEach((director, i) => {
    if (director.interface === "lo") report(["directors", i, "interface"], "must be the NIC facing the real servers, not the loopback interface");
    const checkDip = (field: "dip" | "dip6", dip: ParsedCidr) => {
      const unusable = unusableAddress(dip.address);
      if (unusable) report(["directors", i, field], `${dip.address.text} is ${unusable}: the DIP must be an address a host can have`);
      const widest = widestSegment[dip.address.family];
      if (dip.prefix < widest) {
        report(
          ["directors", i, field],
          `prefix /${dip.prefix} is wider than one broadcast domain can be: LVS-DR needs the director and real servers on one segment, and a subnet wider than /${widest} (IPv${dip.address.family}) would let the one-subnet check pass for hosts that cannot share one`,
        );
      }
      if (dip.address.family === 4 && dip.prefix < 31) {
        if (dip.address.value === networkAddress(dip).value || dip.address.value === broadcastAddress(dip).value) {
          report(["directors", i, field], `${dip.address.text}/${dip.prefix} is the network or broadcast address of its subnet: the DIP must be a host address`);
        }
      }
      const earlier = dipOwners.get(dip.address.text);
      if (earlier !== undefined) report(["directors", i, field], `DIP ${dip.address.text} is also the DIP of directors[${earlier}]: addresses must be unique`);
      else dipOwners.set(dip.address.text, i);
    };
    const dip = parseCidr(director.dip);
    if (dip) checkDip("dip", dip);
    const dip6 = director.dip6 === undefined ? undefined : parseCidr(director.dip6);
    if (!dip6) return;
    if (dip6.address.family !== 6) report(["directors", i, "dip6"], "must be an IPv6 address with its prefix: dip6 is the director's IPv6 DIP beside an IPv4 dip");
    else if (dip && dip.address.family !== 4)
      report(["directors", i, "dip6"], `is given but dip ${dip.address.text} is IPv6 already: a director has one DIP per family (dip IPv4, dip6 IPv6)`);
    else checkDip("dip6", dip6);
  });

  const ripOwners = new Map<string, number>();
  const subnets = subnetsOf(cluster.directors);
  cluster.realServers.forEach((rs, i) => {
    if (rs.interface === "lo") report(["realServers", i, "interface"], "must be the NIC facing the director; the VIP goes on lo by itself");
    const checkRip = (field: "rip" | "rip6", rip: ParsedAddress) => {
      const unusable = unusableAddress(rip) ?? subnetEdge(rip, subnets);
      if (unusable) report(["realServers", i, field], `${rip.text} is ${unusable}: the RIP must be an address a host can have`);
      const earlier = ripOwners.get(rip.text);
      if (earlier !== undefined) report(["realServers", i, field], `RIP ${rip.text} is also the RIP of realServers[${earlier}]: RIPs must be unique`);
      else ripOwners.set(rip.text, i);
      const director = dipOwners.get(rip.text);
      if (director !== undefined) {
        report(["realServers", i, field], `RIP ${rip.text} is the DIP of directors[${director}]: a director cannot be its own real server in LVS-DR`);
      }
    };
    const rip = parseAddress(rs.rip);
    if (rip) checkRip("rip", rip);
    const rip6 = rs.rip6 === undefined ? undefined : parseAddress(rs.rip6);
    if (!rip6) return;
    if (rip6.family !== 6) report(["realServers", i, "rip6"], "must be an IPv6 address: rip6 is the real server's IPv6 RIP beside an IPv4 rip");
    else if (rip && rip.family !== 4)
      report(["realServers", i, "rip6"], `is given but rip ${rip.text} is IPv6 already: a real server has one RIP per family (rip IPv4, rip6 IPv6)`);
    else checkRip("rip6", rip6);
  });
}

/** A director's DIPs as given (`dip`, then `dip6`), those that parse. */
function dipsOfSpec(director: ClusterSpec["directors"][number]): ParsedCidr[] {
  return [director.dip, director.dip6].flatMap((text) => {
    const dip = text === undefined ? undefined : parseCidr(text);
    return dip ? [dip] : [];
  });
}

/** A real server's RIP in a family: `rip`, or `rip6` beside it. */
function ripInSpec(rs: ClusterSpec["realServers"][number], family: number): ParsedAddress | undefined {
  for (const text of [rs.rip, rs.rip6]) {
    const rip = text === undefined ? undefined : parseAddress(text);
    if (rip?.family === family) return rip;
  }
  return undefined;
}

/**
 * The widest DIP prefix taken as one broadcast domain. IPv4: a /16 is 65,534 hosts, already far
 * past what one segment's ARP traffic and Linux's neighbour table (1,024 entries before it starts
 * dropping, gc_thresh3) carry. IPv6: /64 is the on-link subnet of RFC 4291; a shorter on-link
 * prefix is a routing aggregate, not a segment.
 */
export const widestSegment = { 4: 16, 6: 64 } as const;

/** Each VIP, canonical, with the first virtual service that uses it. */
function vipServices(cluster: ClusterSpec): Map<string, string> {
  const vips = new Map<string, string>();
  for (const svc of cluster.virtualServices) {
    const vip = parseAddress(svc.vip);
    if (vip && !vips.has(vip.text)) vips.set(vip.text, svc.name);
  }
  return vips;
}

/**
 * Why an address is no host's address in a director's subnet: the network address (in IPv6 the
 * subnet-router anycast address), or in IPv4 the subnet's broadcast address.
 */
function subnetEdge(address: ParsedAddress, subnets: readonly { name: string; dip: ParsedCidr }[]): string | undefined {
  for (const { name, dip } of subnets) {
    if (!cidrContains(dip, address)) continue;
    const prefix = `${networkAddress(dip).text}/${dip.prefix}`;
    if (dip.address.family === 4 && dip.prefix < 31) {
      if (address.value === networkAddress(dip).value) return `the network address of director "${name}"'s subnet ${prefix}`;
      if (address.value === broadcastAddress(dip).value) return `the broadcast address of director "${name}"'s subnet ${prefix}`;
    }
    if (dip.address.family === 6 && dip.prefix < 127 && address.value === networkAddress(dip).value) {
      return `the subnet-router anycast address of director "${name}"'s subnet ${prefix}`;
    }
  }
  return undefined;
}

/**
 * A real server's gateway: the front router its replies go to. It must be a host on the real
 * server's own segment, and neither the real server itself, a VIP (the real server holds every
 * VIP on lo and would route to itself) nor a DIP (replies would go back through the director).
 */
function checkGateways(cluster: ClusterSpec, report: Report): void {
  const subnets = subnetsOf(cluster.directors);
  const dips = new Map(subnets.map((s) => [s.dip.address.text, s.name]));
  const vips = vipServices(cluster);
  cluster.realServers.forEach((rs, i) => {
    const pairs = [
      { field: "gateway", text: rs.gateway, ripField: "rip", ripText: rs.rip },
      { field: "gateway6", text: rs.gateway6, ripField: "rip6", ripText: rs.rip6 },
    ] as const;
    for (const { field, text, ripField, ripText } of pairs) {
      if (text === undefined) continue;
      const at: Path = ["realServers", i, field];
      const gateway = parseAddress(text);
      if (!gateway) continue;
      if (ripText === undefined) {
        report(at, `needs ${ripField}: ${field} is the IPv6 gateway of the real server's IPv6 RIP`);
        continue;
      }
      const rip = parseAddress(ripText);
      if (!rip) continue;
      const unusable = unusableAddress(gateway) ?? subnetEdge(gateway, subnets);
      if (unusable) {
        report(at, `${gateway.text} is ${unusable}: a gateway must be a router's address on the segment`);
        continue;
      }
      if (gateway.family !== rip.family) {
        report(at, `is IPv${gateway.family} but the RIP ${rip.text} is IPv${rip.family}: the gateway must be in the RIP's family`);
        continue;
      }
      if (gateway.text === rip.text) {
        report(at, `is the real server's own RIP: the gateway is the router its replies go to`);
        continue;
      }
      const director = dips.get(gateway.text);
      if (director !== undefined) {
        report(at, `is the DIP of director "${director}": a real server's replies must go to the front gateway, never through the director`);
        continue;
      }
      const service = vips.get(gateway.text);
      if (service !== undefined) {
        report(at, `is the VIP of virtual service "${service}": every real server holds the VIPs on lo, so it would route its replies to itself`);
        continue;
      }
      const segments = subnets.filter((s) => cidrContains(s.dip, rip));
      if (segments.length > 0 && !segments.some((s) => cidrContains(s.dip, gateway))) {
        const seg = segments[0]!;
        report(
          at,
          `${gateway.text} is outside the real server's segment ${networkAddress(seg.dip).text}/${seg.dip.prefix} (director "${seg.name}"): a gateway must be reachable on-link`,
        );
      }
    }
  });
}

function connectionPaths(cluster: ClusterSpec): { path: Path; conn: ConnectionInput | undefined; fallback: string }[] {
  return [
    ...cluster.directors.map((d, i) => ({
      path: ["directors", i, "connection"] as Path,
      conn: d.connection,
      fallback: parseCidr(d.dip)?.address.text ?? d.dip,
    })),
    ...cluster.realServers.map((r, i) => ({
      path: ["realServers", i, "connection"] as Path,
      conn: r.connection,
      fallback: parseAddress(r.rip)?.text ?? r.rip,
    })),
  ];
}

function checkConnections(cluster: ClusterSpec, report: Report): void {
  const shared = cluster.connectionDefaults;
  const sharedPath: Path = ["connectionDefaults"];
  if (shared?.host) report([...sharedPath, "host"], "cannot be shared: each host connects to its own address (leave it out to use the DIP or RIP)");
  if (shared?.hostKey) report([...sharedPath, "hostKey"], "cannot be shared: every host has its own host key (use knownHostsFile to share one file)");
  // What the shared block gets wrong is reported once, at its own path, not once per host.
  if (shared) checkOwnFields(shared, sharedPath, report);
  if (shared?.proxy && keyChoices(shared.proxy) === 0) {
    report([...sharedPath, "proxy", "hostKey"], "is required: pin the bastion's host key, or set knownHostsFile, or opt in to trustOnFirstUse");
  }
  const vips = vipServices(cluster);

  const targets = new Map<string, string>();
  for (const { path, conn, fallback } of connectionPaths(cluster)) {
    if (conn) checkOwnFields(conn, path, report);
    const merged = mergeConnections(conn, shared);
    const choices = keyChoices(merged);
    if (choices === 0) report([...path, "hostKey"], "is required: pin the host key (SHA256 fingerprint or known_hosts line), or set knownHostsFile, or opt in to trustOnFirstUse");
    if (merged.proxy && merged.proxy === conn?.proxy && keyChoices(merged.proxy) === 0) {
      report([...path, "proxy", "hostKey"], "is required: pin the bastion's host key, or set knownHostsFile, or opt in to trustOnFirstUse");
    }
    const host = conn?.host ?? fallback;
    const hostProblem = sshHostProblem(host);
    if (conn?.host !== undefined && hostProblem) report([...path, "host"], hostProblem);
    const canonical = canonicalHost(host);
    const service = vips.get(canonical);
    if (service !== undefined) {
      report([...path, "host"], `${canonical} is the VIP of virtual service "${service}": connect to the host's own address (the VIP moves, and on a real server it is on lo)`);
    }
    if (merged.proxy?.host === undefined && merged.proxy !== undefined) continue;
    const port = merged.port ?? 22;
    const proxy = merged.proxy?.host !== undefined ? ` via ${canonicalHost(merged.proxy.host)}:${merged.proxy.port ?? 22}` : "";
    const target = `${canonical}:${port}${proxy}`;
    const where = `${path[0]}[${path[1]}]`;
    const earlier = targets.get(target);
    if (earlier) {
      const mixed = earlier.startsWith("directors") !== where.startsWith("directors");
      report(
        [...path, "host"],
        mixed
          ? `${where} and ${earlier} are the same host (${target}): a director and a real server must be separate hosts in LVS-DR`
          : `${where} and ${earlier} connect to the same host (${target}): each host must be listed once`,
      );
    } else targets.set(target, where);
  }
}

function keyChoices(conn: ConnectionInput): number {
  return [conn.hostKey, conn.knownHostsFile, conn.trustOnFirstUse ? true : undefined].filter((v) => v !== undefined).length;
}

/** A pinned hostKey leaves the others nothing to do; knownHostsFile with trustOnFirstUse adds new hosts to that file. */
function keyChoicesConflict(conn: ConnectionInput): boolean {
  return conn.hostKey !== undefined && (conn.knownHostsFile !== undefined || conn.trustOnFirstUse === true);
}
const keyChoicesRule = "give only one of hostKey, knownHostsFile and trustOnFirstUse, or knownHostsFile with trustOnFirstUse (which adds new hosts to that file)";

/** Rules about one connection block's own fields, reported at that block's path. */
function checkOwnFields(conn: ConnectionInput, path: Path, report: Report): void {
  if (keyChoicesConflict(conn)) report([...path, "hostKey"], keyChoicesRule);
  if (conn.privateKey !== undefined && conn.privateKeyPath !== undefined) report([...path, "privateKeyPath"], "give only one of privateKey and privateKeyPath");
  if (conn.proxy) {
    const proxyPath = [...path, "proxy"];
    if (!conn.proxy.host) report([...proxyPath, "host"], "is required: the bastion's address");
    else {
      const problem = sshHostProblem(conn.proxy.host);
      if (problem) report([...proxyPath, "host"], problem);
    }
    if (keyChoicesConflict(conn.proxy)) report([...proxyPath, "hostKey"], keyChoicesRule);
    if (conn.proxy.privateKey !== undefined && conn.proxy.privateKeyPath !== undefined) report([...proxyPath, "privateKeyPath"], "give only one of privateKey and privateKeyPath");
  }
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 253 characters. */
const hostNamePattern = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Why a connection host is neither an IP address nor a host name, or undefined. A name whose last
 * label is all digits (`10.0.0.256`, `1.2.3`) is a mistyped address: no top-level domain is numeric.
 */
export function sshHostProblem(host: string): string | undefined {
  if (parseAddress(host)) return undefined;
  if (host.includes(":")) return `"${host}" is not an IPv6 address (and a host name cannot hold ':')`;
  if (!hostNamePattern.test(host)) return `"${host}" is neither an IP address nor a host name (RFC 1123: letters, digits and '-' in dot-separated labels)`;
  const last = host.replace(/\.$/, "").split(".").pop() ?? "";
  if (/^[0-9]+$/.test(last)) return `"${host}" is not an IPv4 address, and a host name's last label cannot be all digits`;
  return undefined;
}

/** One spelling per machine: addresses in canonical form, names in lower case without the root dot. */
function canonicalHost(host: string): string {
  return parseAddress(host)?.text ?? host.toLowerCase().replace(/\.$/, "");
}

function checkVirtualServices(cluster: ClusterSpec, report: Report): void {
  const directorsByName = new Map(cluster.directors.map((d) => [d.name, d]));
  const realServersByName = new Map(cluster.realServers.map((r) => [r.name, r]));
  const hostAddresses = new Map<string, string>();
  cluster.directors.forEach((d, i) => {
    for (const dip of dipsOfSpec(d)) hostAddresses.set(dip.address.text, `the DIP of directors[${i}]`);
  });
  cluster.realServers.forEach((r, i) => {
    for (const text of [r.rip, r.rip6]) {
      const rip = text === undefined ? undefined : parseAddress(text);
      if (rip) hostAddresses.set(rip.text, `the RIP of realServers[${i}]`);
    }
  });
  const serviceKeys = new Map<string, number>();
  const vipDirectors = new Map<string, { director: string; index: number }>();

  cluster.virtualServices.forEach((svc, i) => {
    const at = (...rest: Path): Path => ["virtualServices", i, ...rest];
    const vip = parseAddress(svc.vip);

    // Which director serves it: one director, or a failover group's directors.
    let directorName = svc.director;
    const group = svc.failoverGroup !== undefined ? cluster.failoverGroups.find((g) => g.name === svc.failoverGroup) : undefined;
    if (svc.failoverGroup !== undefined) {
      if (svc.director !== undefined) report(at("director"), "must not be set with failoverGroup: the group's directors serve the service");
      if (!group)
        report(
          at("failoverGroup"),
          `"${svc.failoverGroup}" is not a failover group in this cluster (failoverGroups: ${cluster.failoverGroups.map((g) => g.name).join(", ") || "none"})`,
        );
      directorName = undefined;
    } else if (directorName === undefined) {
      if (cluster.directors.length === 1) directorName = cluster.directors[0]?.name;
      else report(at("director"), "is required when the cluster has more than one director (or give failoverGroup)");
    } else if (!directorsByName.has(directorName)) {
      report(at("director"), `"${directorName}" is not a director in this cluster (directors: ${[...directorsByName.keys()].join(", ")})`);
    }
    const servingDirectors = (group ? group.directors.map((d) => d.name) : directorName !== undefined ? [directorName] : [])
      .map((name) => directorsByName.get(name))
      .filter((d): d is NonNullable<typeof d> => d !== undefined);
    const director = servingDirectors[0];
    const dips = director ? dipsOfSpec(director) : [];
    // Who holds the VIP: one director, or a group through VRRP.
    const holderName = group ? `failover group "${group.name}"` : directorName !== undefined ? `director "${directorName}"` : undefined;

    // Kind of service: protocol and port, or fwmark.
    const isFwmark = svc.fwmark !== undefined;
    if (isFwmark) {
      if (svc.protocol !== undefined) report(at("protocol"), "must not be set on a fwmark service: give either protocol and port, or fwmark");
      if (svc.port !== undefined) report(at("port"), "must not be set on a fwmark service: give either protocol and port, or fwmark");
    } else {
      if (svc.protocol === undefined) report(at("protocol"), "is required (tcp or udp) unless the service is a fwmark service");
      if (svc.port === undefined) report(at("port"), "is required unless the service is a fwmark service");
    }

    if (vip) {
      const unusable = unusableAddress(vip) ?? subnetEdge(vip, subnetsOf(servingDirectors));
      if (unusable) report(at("vip"), `${vip.text} is ${unusable}: a VIP must be an address clients can reach`);
      const clash = hostAddresses.get(vip.text);
      if (clash) report(at("vip"), `VIP ${vip.text} is ${clash}: the VIP must be an address of its own`);
      if (dips.length > 0 && !dips.some((dip) => dip.address.family === vip.family)) {
        report(
          at("vip"),
          vip.family === 6
            ? `is IPv6 but director "${director?.name}" has only an IPv4 DIP: give the director dip6, its IPv6 address on the same NIC (one address family per virtual service)`
            : `is IPv4 but director "${director?.name}" has only an IPv6 DIP: give the director an IPv4 dip, with the IPv6 one as dip6 (one address family per virtual service)`,
        );
      }
      const key = isFwmark ? `fwmark:${svc.fwmark}` : `${svc.protocol}:${vip.text}:${svc.port}`;
      const earlier = serviceKeys.get(key);
      if (earlier !== undefined) {
        report(
          at(isFwmark ? "fwmark" : "port"),
          isFwmark
            ? `fwmark ${svc.fwmark} is also used by virtualServices[${earlier}]: fwmarks must be unique`
            : `(VIP, protocol, port) ${vip.text} ${svc.protocol} ${svc.port} is also used by virtualServices[${earlier}]: it must be unique`,
        );
      } else serviceKeys.set(key, i);
      if (holderName !== undefined) {
        const holder = vipDirectors.get(vip.text);
        if (holder && holder.director !== holderName) {
          report(
            at(group ? "failoverGroup" : "director"),
            `VIP ${vip.text} is already served by ${holder.director} (virtualServices[${holder.index}]): two directors holding one VIP would both answer ARP for it (only the directors of one failover group share a VIP, through VRRP)`,
          );
        } else if (!holder) vipDirectors.set(vip.text, { director: holderName, index: i });
      }
    }

    // Scheduler flags belong to their scheduler.
    const flagsSeen = new Set<string>();
    svc.schedulerFlags.forEach((flag, f) => {
      if (flagsSeen.has(flag)) report(at("schedulerFlags", f), `duplicate flag "${flag}"`);
      flagsSeen.add(flag);
      const owner = flag.startsWith("sh-") ? "sh" : flag.startsWith("mh-") ? "mh" : undefined;
      if (owner && svc.scheduler !== owner) report(at("schedulerFlags", f), `"${flag}" only applies to the ${owner} scheduler, not ${svc.scheduler}`);
    });

    if (svc.persistence?.netmask !== undefined && vip) {
      const netmask = svc.persistence.netmask;
      if (vip.family === 4 && (typeof netmask !== "string" || netmaskToPrefix(netmask) === undefined)) {
        report(at("persistence", "netmask"), "must be a contiguous dotted IPv4 netmask such as 255.255.255.0 for an IPv4 VIP");
      }
      if (vip.family === 6 && typeof netmask !== "number") {
        report(at("persistence", "netmask"), "must be a prefix length (1-128) for an IPv6 VIP");
      }
    }

    /** Same family as the VIP, and inside the subnet of every director that serves the service. */
    const checkOnSegment = (rs: ClusterSpec["realServers"][number], path: Path, what: string) => {
      if (!vip) return;
      const rip = ripInSpec(rs, vip.family);
      if (!rip) {
        const has = parseAddress(rs.rip);
        if (has)
          report(
            path,
            `${what} "${rs.name}" has no IPv${vip.family} RIP but the VIP is IPv${vip.family}: ${vip.family === 6 ? "give it rip6, its IPv6 address on the same NIC" : "give it an IPv4 rip, with the IPv6 one as rip6"} (one address family per virtual service)`,
          );
        return;
      }
      for (const d of servingDirectors) {
        const ddip = dipsOfSpec(d).find((c) => c.address.family === rip.family);
        if (ddip && !cidrContains(ddip, rip)) {
          report(
            path,
            `RIP ${rip.text} of ${what} "${rs.name}" is outside director "${d.name}"'s subnet ${networkAddress(ddip).text}/${ddip.prefix}: director and real servers must share one broadcast domain`,
          );
          return;
        }
      }
    };

    // Destinations.
    const destinationNames = new Set<string>();
    svc.realServers.forEach((dest, d) => {
      const dat = (...rest: Path): Path => at("realServers", d, ...rest);
      if (destinationNames.has(dest.name)) report(dat("name"), `real server "${dest.name}" is listed twice in this service`);
      destinationNames.add(dest.name);
      const rs = realServersByName.get(dest.name);
      if (!rs) {
        report(dat("name"), `"${dest.name}" is not a real server in realServers`);
      } else {
        checkOnSegment(rs, dat("name"), "real server");
      }
      if (dest.port !== undefined) {
        if (isFwmark) report(dat("port"), "must not be set on a fwmark service's real server");
        else if (svc.port !== undefined && dest.port !== svc.port) {
          report(dat("port"), `is ${dest.port} but the service port is ${svc.port}: LVS-DR cannot map ports, the real server port must equal the service port`);
        }
      }
      if (dest.lowerThreshold > 0 && dest.upperThreshold === 0) {
        report(dat("lowerThreshold"), "needs an upperThreshold: the lower threshold only resumes a server stopped by the upper one");
      } else if (dest.upperThreshold > 0 && dest.lowerThreshold >= dest.upperThreshold) {
        report(dat("lowerThreshold"), `must be below upperThreshold (${dest.upperThreshold})`);
      }
    });

    checkHealth(svc, at, report);
    if (svc.sorryServer !== undefined) {
      const rs = realServersByName.get(svc.sorryServer);
      if (!rs) report(at("sorryServer"), `"${svc.sorryServer}" is not a real server in realServers: a sorry server is declared like the others, so it is prepared for the VIP`);
      else {
        if (destinationNames.has(rs.name)) report(at("sorryServer"), `"${rs.name}" is one of this service's real servers: the sorry server stands in for all of them`);
        checkOnSegment(rs, at("sorryServer"), "sorry server");
      }
    }
  });
}

type At = (...rest: Path) => Path;

function subnetsOf(directors: readonly ClusterSpec["directors"][number][]): { name: string; dip: ParsedCidr }[] {
  return directors.flatMap((d) => dipsOfSpec(d).map((dip) => ({ name: d.name, dip })));
}

function checkHealth(svc: ClusterSpec["virtualServices"][number], at: At, report: Report): void {
  const check = svc.healthCheck;
  if (!check) {
    if (svc.sorryServer !== undefined) report(at("sorryServer"), "needs a healthCheck: the sorry server takes over when the check finds no real server healthy");
    if (svc.quorum !== undefined) report(at("quorum"), "needs a healthCheck: quorum counts the weight of healthy real servers");
    return;
  }
  if (svc.fwmark !== undefined && check.port === undefined) report(at("healthCheck", "port"), "is required on a fwmark service: it has no port of its own to check");
  if (svc.protocol === "udp" && check.type !== "command") {
    report(at("healthCheck", "type"), `a ${check.type} check cannot tell whether a UDP service works: use a command check (or a port of a TCP service, with type tcp and port)`);
  }
  if (check.type === "http" || check.type === "https") {
    const seen = new Set<number>();
    check.statusCodes.forEach((code, k) => {
      if (seen.has(code)) report(at("healthCheck", "statusCodes", k), `duplicate status code ${code}`);
      seen.add(code);
    });
  }
  if (svc.quorum) {
    const total = svc.realServers.reduce((sum, d) => sum + d.weight, 0);
    if (svc.quorum.hysteresis >= svc.quorum.weight) report(at("quorum", "hysteresis"), `must be below quorum.weight (${svc.quorum.weight})`);
    if (svc.quorum.weight > total) report(at("quorum", "weight"), `is ${svc.quorum.weight} but all real servers together weigh ${total}: the service could never be up`);
  }
}

function checkFailoverGroups(cluster: ClusterSpec, report: Report): void {
  const directorsByName = new Map(cluster.directors.map((d) => [d.name, d]));
  const groupNames = new Map<string, number>();
  const routerIds = new Map<number, number>();
  const memberOf = new Map<string, number>();
  cluster.failoverGroups.forEach((group, g) => {
    const at = (...rest: Path): Path => ["failoverGroups", g, ...rest];
    const earlierName = groupNames.get(group.name);
    if (earlierName !== undefined) report(at("name"), `duplicate failover group name "${group.name}" (also failoverGroups[${earlierName}])`);
    else groupNames.set(group.name, g);
    const earlierId = routerIds.get(group.virtualRouterId);
    if (earlierId !== undefined) {
      report(at("virtualRouterId"), `${group.virtualRouterId} is also the virtual router id of failoverGroups[${earlierId}]: each group needs its own VRRP router id`);
    } else routerIds.set(group.virtualRouterId, g);

    const priorities = new Map<number, string>();
    let subnet: { text: string; name: string } | undefined;
    group.directors.forEach((member, m) => {
      const director = directorsByName.get(member.name);
      if (!director) {
        report(at("directors", m, "name"), `"${member.name}" is not a director in this cluster (directors: ${[...directorsByName.keys()].join(", ")})`);
        return;
      }
      const other = memberOf.get(member.name);
      if (other === g) report(at("directors", m, "name"), `director "${member.name}" is listed twice in this group`);
      else if (other !== undefined) report(at("directors", m, "name"), `director "${member.name}" is also in failoverGroups[${other}]: a director belongs to one failover group`);
      else memberOf.set(member.name, g);
      const samePriority = priorities.get(member.priority);
      if (samePriority !== undefined) {
        report(
          at("directors", m, "priority"),
          `${member.priority} is also the priority of director "${samePriority}": give each director its own, so which one is master is known`,
        );
      } else priorities.set(member.priority, member.name);
      const dip = parseCidr(director.dip);
      if (dip) {
        const text = `${networkAddress(dip).text}/${dip.prefix}`;
        if (!subnet) subnet = { text, name: director.name };
        else if (subnet.text !== text) {
          report(
            at("directors", m, "name"),
            `director "${member.name}" is in ${text} but director "${subnet.name}" in ${subnet.text}: a failover group's directors share one broadcast domain (VRRP)`,
          );
        }
      }
    });

    const families = new Set<number>();
    for (const svc of cluster.virtualServices) {
      if (svc.failoverGroup !== group.name) continue;
      const vip = parseAddress(svc.vip);
      if (vip) families.add(vip.family);
    }
    if (families.size > 1) report(at("name"), "serves both IPv4 and IPv6 VIPs: VRRP runs one instance per family, so give each family its own group");
  });
}
