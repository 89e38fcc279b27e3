/** Observing a host: one round trip with the observe script, parsed into structured state. */
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { parseArpProbes, parseObservation } from "../parse/observe";
import { renderArpProbeScript, renderObserveScript, type ObserveRequest } from "../render/scripts";
import { TransportError, type HostSession } from "../transport/types";

/** Every file the tool can ever write, so owned files no longer in the spec are seen too. */
export const observedFiles = [hostPaths.sysctlConf, hostPaths.ipvsRules, hostPaths.bootScript, hostPaths.systemdUnit, hostPaths.systemdUnitLink, hostPaths.ownership];

export function observeRequest(host: DesiredHostState): ObserveRequest {
  const director = host.role === "director";
  return {
    sysctlKeys: host.sysctls.map((s) => s.key),
    filePaths: observedFiles,
    routeTargets: director ? host.onLinkPeers : [],
    ipvs: director,
  };
}

export async function observeHost(session: HostSession, host: DesiredHostState, options: { timeoutMs?: number } = {}): Promise<ObservedHostState> {
  const result = await session.runScript(renderObserveScript(observeRequest(host)), { timeoutMs: options.timeoutMs ?? 60_000, killOnHost: false });
  if (result.code !== 0) {
    throw new TransportError(host.host, "run", `the observe script exited ${result.code}: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  }
  return parseObservation(host.host, result.stdout);
}

/** Asks a director whether each RIP answers ARP on its interface. */
export async function probeArp(session: HostSession, host: DesiredHostState, rips: string[]): Promise<Record<string, boolean>> {
  const result = await session.runScript(renderArpProbeScript(host.interface, rips), { timeoutMs: 60_000, killOnHost: false });
  if (result.code !== 0) throw new TransportError(host.host, "run", `the ARP probe script exited ${result.code}: ${result.stderr.trim()}`);
  return parseArpProbes(host.host, result.stdout);
}
