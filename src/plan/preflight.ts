/**
 * Preflight: what must already be true of a host before the tool changes anything, checked
 * against the observed state. Pure; the host operations refuse the whole cluster when any
 * host has a problem, so a failed preflight changes nothing anywhere.
 */
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import type { Step } from "../model/steps";
import { own } from "../parse/records";
import { keepalivedConfCluster } from "../render/keepalived";
import { ipv6Disabled, strictRpFilter, vipOnNic, type DoctorFinding } from "./doctor";

export interface PreflightProblem {
  host: string;
  check:
    | "interface"
    | "address"
    | "tools"
    | "ipvs"
    | "same-broadcast-domain"
    | "arp"
    | "ownership"
    | "keepalived"
    // The doctor's checks that decide whether a change is safe (plan/doctor.ts).
    | "vip-on-nic"
    | "rp-filter"
    | "ipv6-disabled"
    | "arp-flux"
    | "ndp-flux";
  message: string;
}

// grep reads every sysctl and file; a director's apply checks a large IPVS table by its digest.
// sha256sum: every plan's first script checks its host's state digest; awk: a director's IPVS table check.
const toolsEverywhere = ["ip", "flock", "grep", "sha256sum"];
const toolsOnDirectors = ["ipvsadm", "modprobe", "awk"];

/**
 * A host, or its keepalived configuration, that another cluster's spec manages: neither apply nor
 * destroy may touch it (`doing` says which).
 */
export function foreignOwnership(desired: DesiredHostState, observed: ObservedHostState, doing: "take it over" | "destroy it"): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const conf = observed.files[hostPaths.keepalivedConf];
  const writer = conf && !conf.isLink ? keepalivedConfCluster(conf.content) : null;
  if (writer !== null && writer !== desired.cluster) {
    problems.push({
      host: desired.host,
      check: "keepalived",
      message: `${hostPaths.keepalivedConf} was written for cluster "${writer}", not "${desired.cluster}": refusing to ${doing}`,
    });
  }
  if (observed.ownership && observed.ownership.cluster !== desired.cluster) {
    problems.push({
      host: desired.host,
      check: "ownership",
      message: `this host is managed by cluster "${observed.ownership.cluster}", not "${desired.cluster}": refusing to ${doing}`,
    });
  }
  return problems;
}

export function preflightHost(desired: DesiredHostState, observed: ObservedHostState): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const add = (check: PreflightProblem["check"], message: string) => problems.push({ host: desired.host, check, message });
  const what = desired.role === "director" ? "DIP" : "RIP";

  if (!observed.interfaces.includes(desired.interface)) {
    add("interface", `interface ${desired.interface} does not exist (the host has ${observed.interfaces.join(", ") || "none"})`);
  } else {
    // The DIP or RIP, and on a dual-stack host the other family's too.
    for (const own of desired.ownAddresses) {
      const held = observed.addresses.find((a) => a.interface === desired.interface && a.address === own.address);
      if (!held) {
        const list = observed.addresses.filter((a) => a.interface === desired.interface).map((a) => `${a.address}/${a.prefix}`);
        add("address", `interface ${desired.interface} does not hold the ${what} ${own.address} (it has ${list.join(", ") || "no address"})`);
      } else if (own.prefix !== null && held.prefix !== own.prefix) {
        add("address", `the ${what} ${own.address} is /${held.prefix} on ${desired.interface}, the spec says /${own.prefix}`);
      }
    }
  }

  const needed = [...toolsEverywhere, ...(desired.role === "director" ? toolsOnDirectors : [])];
  const found = new Set(observed.tools);
  const missing = needed.filter((t) => !found.has(t));
  if (missing.length)
    add(
      "tools",
      `missing command${missing.length > 1 ? "s" : ""}: ${missing.join(", ")} (install ${missing.includes("ipvsadm") ? "ipvsadm, " : ""}iproute2, util-linux, grep, coreutils and an awk)`,
    );

  if (desired.role === "director" && observed.ipvs.status === "no-ipvsadm") add("ipvs", "the ip_vs module is loaded but ipvsadm is not installed");

  if (desired.keepalived) {
    if (observed.keepalived && !observed.keepalived.installed) {
      add("keepalived", "keepalived is not installed: health checks and failover groups run in keepalived (install the keepalived package)");
    }
    const conf = observed.files[hostPaths.keepalivedConf];
    if (conf && (conf.isLink || keepalivedConfCluster(conf.content) === null)) {
      add("keepalived", `${hostPaths.keepalivedConf} exists and was not written by lvs-dr: refusing to overwrite it (move it away, or put its services in the spec)`);
    }
  }
  problems.push(...foreignOwnership(desired, observed, "take it over"));

  // What would make this change unsafe and the tool does not repair: a real server's VIP on its
  // NIC (it answers ARP for it), strict rp_filter that drops the director's frames, IPv6 disabled
  // where an IPv6 VIP must go. Read in the same observation (a default route line, a few keys).
  const vips = new Set(desired.addresses.map((a) => a.address));
  for (const f of [...vipOnNic(desired, observed, vips), ...strictRpFilter(desired, observed), ...ipv6Disabled(desired, observed)]) problems.push(asProblem(f));

  // Same broadcast domain, live: every RIP on-link through the director's NIC, and answering ARP.
  // Routes by destination once (the first for each, as a scan would find), not a scan per RIP.
  const routes = new Map<string, (typeof observed.routes)[number]>();
  for (const r of observed.routes) if (!routes.has(r.destination)) routes.set(r.destination, r);
  for (const rip of desired.onLinkPeers) {
    const route = routes.get(rip);
    if (!route || route.device === null) {
      add("same-broadcast-domain", `real server ${rip} is unreachable from the director (no route)`);
    } else if (route.gateway !== null) {
      add(
        "same-broadcast-domain",
        `real server ${rip} is reached through gateway ${route.gateway}, not on-link: LVS-DR needs the director and real servers in one broadcast domain`,
      );
    } else if (route.device !== desired.interface) {
      add("same-broadcast-domain", `real server ${rip} is on-link through ${route.device}, not through the director's interface ${desired.interface}`);
    } else if (own(observed.arpReplies, rip) === false) {
      // IPv6 has no ARP: the kernel asked by neighbour discovery.
      add("arp", `real server ${rip} does not answer ${rip.includes(":") ? "neighbour solicitations" : "ARP"} on ${desired.interface}: is it up, and on this segment?`);
    }
  }
  return problems;
}

/**
 * Which RIPs the live ARP check judges on a director about to apply `steps`: the ones it is about
 * to register and does not serve yet (a served one proves itself with every packet, and one that
 * is down must not block a change, removing it say). Of those, a RIP with a resolved entry in the
 * neighbour table observed has `answered`; the rest must be asked.
 */
export function ripsToJudge(desired: DesiredHostState, observed: ObservedHostState, steps: readonly Step[]): { answered: string[]; ask: string[] } {
  const serving = new Set(observed.ipvs.destinations.map((d) => d.address));
  const resolved = new Set(observed.neighbours.filter((n) => n.resolved && n.device === desired.interface).map((n) => n.address));
  const judged = [...new Set(steps.flatMap((s) => (s.op === "add-destination" ? [s.destination.address] : [])))].filter((rip) => !serving.has(rip));
  return { answered: judged.filter((rip) => resolved.has(rip)), ask: judged.filter((rip) => !resolved.has(rip)) };
}

/** A doctor's error as a preflight problem: what, and the fix. */
export function asProblem(f: DoctorFinding): PreflightProblem {
  return { host: f.host, check: f.check as PreflightProblem["check"], message: `${f.message} (fix: ${f.fix})` };
}
