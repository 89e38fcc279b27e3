/** Observing a host: one round trip with the observe script, parsed into structured state. */
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { parseObservation } from "../parse/observe";
import { renderObserveScript, type ObserveRequest } from "../render/scripts";
import { TransportError, type HostSession } from "../transport/types";

/** Every file the tool can ever write, so owned files no longer in the spec are seen too. */
export const observedFiles = [hostPaths.sysctlConf, hostPaths.ipvsRules, hostPaths.bootScript, hostPaths.systemdUnit, hostPaths.systemdUnitLink, hostPaths.ownership];

export function observeRequest(host: DesiredHostState, options: { arp: boolean }): ObserveRequest {
  const director = host.role === "director";
  return {
    sysctlKeys: host.sysctls.map((s) => s.key),
    filePaths: observedFiles,
    routeTargets: director ? host.onLinkPeers : [],
    ipvs: director,
    ...(director && options.arp ? { arpInterface: host.interface } : {}),
  };
}

export async function observeHost(session: HostSession, host: DesiredHostState, options: { arp: boolean; timeoutMs?: number }): Promise<ObservedHostState> {
  const result = await session.runScript(renderObserveScript(observeRequest(host, options)), { timeoutMs: options.timeoutMs ?? 60_000 });
  if (result.code !== 0) {
    throw new TransportError(host.host, "run", `the observe script exited ${result.code}: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  }
  return parseObservation(host.host, result.stdout);
}
