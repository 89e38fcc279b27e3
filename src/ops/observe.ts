/** Observing a host: one round trip with the observe script, parsed into structured state. */
import type { DesiredHostState, HostStateScope, ObservedHostState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { parseArpProbes, parseObservation, TableChangedError } from "../parse/observe";
import { parseDoctorProbe, type DoctorProbeResult } from "../parse/doctor";
import { renderDoctorProbeScript, type DoctorProbeRequest } from "../render/doctor-probe";
import { renderArpProbeScript, renderObserveScript, type ObserveRequest } from "../render/observe-script";
import { TransportError, type HostSession } from "../transport/types";

/** Every file the tool can ever write, so owned files no longer in the spec are seen too. */
export const observedFiles: string[] = [
  hostPaths.sysctlConf,
  hostPaths.ipvsRules,
  hostPaths.ipvsSysctlConf,
  hostPaths.bootScript,
  hostPaths.systemdUnit,
  hostPaths.systemdUnitLink,
  hostPaths.ownership,
  hostPaths.keepalivedConf,
  hostPaths.keepalivedDropIn,
];

/** What the doctor reads on a real server beyond an observation: the sockets bound for these services. */
export interface DoctorObserve {
  listeners: { protocol: "tcp" | "udp"; port: number }[];
}

/**
 * What to read on a host. With `preflight`, also what only preflight checks: which commands
 * the host has, on a director the route to each RIP and its neighbour table, on a real server its
 * default routes (strict rp_filter), and where an IPv6 VIP goes whether IPv6 is disabled there.
 * The live half of the same-broadcast-domain check rides on the observe round trip; only a new
 * RIP without a resolved neighbour entry costs one more (`probeArp`). A drift check reads none
 * of it. With `doctor`, also what only the doctor checks (listening sockets, offloads, the
 * director's forwarding and conntrack settings), in the same round trip.
 */
export function observeRequest(host: DesiredHostState, options: { preflight?: boolean; doctor?: DoctorObserve } = {}): ObserveRequest {
  const director = host.role === "director";
  const preflight = options.preflight ?? false;
  const doctor = options.doctor;
  const checks = preflight || doctor !== undefined;
  return {
    sysctlKeys: [...host.sysctls.map((s) => s.key), ...(checks ? checkedSysctls(host, doctor !== undefined) : [])],
    filePaths: observedFiles,
    tools: checks,
    routeTargets: director && preflight ? host.onLinkPeers : [],
    ipvs: director,
    linkTargets: { [hostPaths.systemdUnitLink]: hostPaths.systemdUnit },
    neighbours: director && preflight,
    keepalived: director,
    ...(!director && checks ? { defaultRoute: true } : {}),
    ...(doctor && !director && doctor.listeners.length ? { listeners: doctor.listeners } : {}),
    ...(doctor && director ? { offloads: host.interface } : {}),
  };
}

/**
 * The kernel settings the checks read beyond the spec's: `disable_ipv6` where an IPv6 VIP must
 * go (absent when the kernel runs without IPv6), and for the doctor on a director whether it
 * forwards and how full its conntrack table is.
 */
function checkedSysctls(host: DesiredHostState, doctor: boolean): string[] {
  const v6 = [...new Set(host.addresses.filter((a) => a.address.includes(":")).map((a) => a.interface))].map((i) => `net/ipv6/conf/${i}/disable_ipv6`);
  const director = doctor && host.role === "director" ? ["net/ipv4/ip_forward", "net/netfilter/nf_conntrack_count", "net/netfilter/nf_conntrack_max"] : [];
  return [...v6, ...director];
}

/**
 * What a plan for the host depends on, for its state digest: the addresses on `lo` and its NIC
 * (where the tool puts VIPs), the kernel settings the spec sets, and every file the tool writes
 * (its ownership record among them, which names what it owns elsewhere).
 */
export function stateScope(host: DesiredHostState): HostStateScope {
  return { interfaces: [...new Set(["lo", host.interface])], sysctlKeys: host.sysctls.map((s) => s.key), files: observedFiles };
}

/** `forPlan`: the observation a plan is made from, with the state check its apply script makes (computed here, not on the host). */
export async function observeHost(
  session: HostSession,
  host: DesiredHostState,
  options: { timeoutMs?: number; preflight?: boolean; forPlan?: boolean; doctor?: DoctorObserve } = {},
): Promise<ObservedHostState> {
  const request = observeRequest(host, { preflight: options.preflight ?? false, ...(options.doctor ? { doctor: options.doctor } : {}) });
  // keepalived changes a director's table whenever a check passes or fails: the two listings of
  // one observation can then disagree, and the observation is made again (three times at most).
  for (let attempt = 1; ; attempt++) {
    const result = await session.runScript(renderObserveScript(request), { timeoutMs: options.timeoutMs ?? 60_000, killOnHost: false, what: "observe" });
    if (result.code !== 0) {
      throw new TransportError(host.host, "run", `the observe script exited ${result.code}: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
    }
    try {
      return parseObservation(host.host, result.stdout, options.forPlan ? stateScope(host) : undefined);
    } catch (error) {
      if (attempt >= 3 || !(error instanceof TableChangedError)) throw error;
    }
  }
}

/** Asks a director whether each RIP answers ARP on its interface; only RIPs without a resolved entry are sent a request. */
export async function probeArp(session: HostSession, host: DesiredHostState, rips: string[]): Promise<Record<string, boolean>> {
  const result = await session.runScript(renderArpProbeScript(host.interface, rips), { timeoutMs: 60_000, killOnHost: false, what: "the ARP probe" });
  if (result.code !== 0) throw new TransportError(host.host, "run", `the ARP probe script exited ${result.code}: ${result.stderr.trim()}`);
  return parseArpProbes(host.host, result.stdout);
}

/** Runs the doctor's probe on a director (changing nothing): who answers for each VIP, and the DR path to each real server. */
export async function probeDoctor(session: HostSession, host: string, request: DoctorProbeRequest): Promise<DoctorProbeResult> {
  const result = await session.runScript(renderDoctorProbeScript(request), { timeoutMs: 120_000, killOnHost: false, what: "the doctor probe" });
  if (result.code !== 0) throw new TransportError(host, "run", `the doctor probe script exited ${result.code}: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return parseDoctorProbe(host, result.stdout);
}
