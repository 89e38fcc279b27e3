/**
 * The doctor, the doing half: observe every host once with the doctor's extra reads, then run
 * one probe script per director (who answers for each VIP; the DR path to each real server),
 * and hand it all to the pure checks (plan/doctor.ts). Changes nothing on any host.
 */
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import type { NotReached } from "../plan/cluster-plan";
import { doctorChecks, servedBy, type DoctorFinding } from "../plan/doctor";
import type { DoctorProbeResult } from "../parse/doctor";
import type { DoctorProbeRequest } from "../render/doctor-probe";
import { runOnHosts } from "../transport/pool";
import type { ClusterRun } from "./engine";
import type { DoctorObserve } from "./observe";

export interface DoctorReport {
  findings: DoctorFinding[];
  /** Hosts not observed, and directors whose probe failed: their checks did not run. */
  notReached: NotReached[];
  /** Milliseconds: observing every host, then the directors' probes. */
  timings: { observe: number; probe: number };
}

/** The TCP and UDP services each real server must answer, by RIP, from the directors' destinations. */
export function listenersByRip(directors: readonly DesiredHostState[]): Map<string, DoctorObserve["listeners"]> {
  const byRip = new Map<string, DoctorObserve["listeners"]>();
  for (const d of directors) {
    for (const { service: svc, rips } of servedBy(d)) {
      if (svc.protocol === "fwmark" || svc.port === 0) continue;
      for (const rip of rips) {
        const list = byRip.get(rip) ?? [];
        if (!list.some((l) => l.protocol === svc.protocol && l.port === svc.port)) list.push({ protocol: svc.protocol, port: svc.port });
        byRip.set(rip, list);
      }
    }
  }
  return byRip;
}

/**
 * A director's probe: every VIP of the cluster it could hold (its own and its failover group's),
 * and for each IPv4 VIP it serves, each of its real servers' MACs as observed (arping's MAC ping
 * is IPv4 only; an IPv6 service gets the listening check).
 */
export function probeRequest(director: DesiredHostState, observed: ReadonlyMap<string, ObservedHostState>, realServers: readonly DesiredHostState[]): DoctorProbeRequest {
  const vips = [...new Set([...director.addresses.map((a) => a.address), ...(director.keepalived?.vrrp?.vips ?? []).map((a) => a.address)])];
  const dip = director.primaryAddress.includes(":") ? null : director.primaryAddress;
  const paths: DoctorProbeRequest["paths"] = [];
  if (dip !== null) {
    for (const { service: svc, rips } of servedBy(director)) {
      if (!svc.address || svc.address.includes(":")) continue;
      for (const rip of rips) {
        const rs = realServers.find((r) => r.ownAddresses.some((a) => a.address === rip));
        const mac = rs ? observed.get(rs.host)?.links?.find((l) => l.name === rs.interface)?.mac : undefined;
        if (mac && !paths.some((p) => p.vip === svc.address && p.mac === mac)) paths.push({ vip: svc.address, mac });
      }
    }
  }
  return { interface: director.interface, dip, vips, paths };
}

export async function runDoctor(run: ClusterRun): Promise<DoctorReport> {
  const started = Date.now();
  const directors = run.desired.hosts.filter((h) => h.role === "director");
  const realServers = run.desired.hosts.filter((h) => h.role === "real-server");
  const listeners = listenersByRip(directors);
  const { observed, notReached } = await run.observeEach({
    doctor: (host) => ({ listeners: host.role === "real-server" ? host.ownAddresses.flatMap((a) => listeners.get(a.address) ?? []) : [] }),
    // Only directors have a later round trip.
    release: (host) => host.role !== "director",
  });
  const observedAt = Date.now();
  const reached = directors.filter((d) => observed.has(d.host));
  // Directors are few; each probe mostly waits (2 s).
  const results = await runOnHosts(reached, reached.length || 1, (d) => run.doctorProbe(d.host, probeRequest(d, observed, realServers)));
  const probes = new Map<string, DoctorProbeResult>();
  const failed: NotReached[] = [];
  results.forEach((r, i) => {
    const host = reached[i]!.host;
    if (r.ok) probes.set(host, r.value);
    else failed.push({ host, message: `its doctor probe failed: ${r.error instanceof Error ? r.error.message : String(r.error)}` });
  });
  return {
    findings: doctorChecks({ desired: run.desired, observed, probes }),
    notReached: [...notReached, ...failed],
    timings: { observe: observedAt - started, probe: Date.now() - observedAt },
  };
}
