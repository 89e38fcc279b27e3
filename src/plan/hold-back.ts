/**
 * The safe order when a run does not include every host (`--host director`, or Pulumi's director
 * resource on its own): a director registers a real server only once that server is ready, that
 * is, it suppresses ARP and holds the VIPs on `lo`. A real server outside the run that is not
 * ready is held back from the director's new destinations, with the reason; one the director
 * already sends traffic to stays as it is (taking it away would be a change nobody asked for).
 */
import { destinationKey } from "../model/keys";
import type { DesiredHostState, DestinationState, ObservedHostState, PersistedFile } from "../model/host-state";
import { own } from "../parse/records";

export interface HeldBack {
  director: string;
  realServer: string;
  /** The destination's key: `<service>/<rip>:<port>`. */
  destination: string;
  reason: string;
}

/** Null when the real server is ready to be registered, else why it is not. */
export function realServerNotReady(desired: DesiredHostState, observed: ObservedHostState): string | null {
  for (const s of desired.sysctls) {
    const seen = own(observed.sysctls, s.key) ?? null;
    if (seen !== s.value) return `${s.key} is ${seen ?? "absent"}, not ${s.value}`;
  }
  const held = new Set(observed.addresses.map((o) => `${o.interface}/${o.address}`));
  for (const a of desired.addresses) {
    if (!held.has(`${a.interface}/${a.address}`)) return `the VIP ${a.address} is not on ${a.interface}`;
  }
  return null;
}

/**
 * The director's desired state without the destinations of real servers that are not ready
 * (`notReady`: RIP -> real server name and reason) and not already in its IPVS table, and what
 * was held back. The persisted rules and keepalived's configuration leave them out too.
 */
export function holdBackUnready(
  director: DesiredHostState,
  observed: ObservedHostState,
  notReady: ReadonlyMap<string, { realServer: string; reason: string }>,
): { desired: DesiredHostState; heldBack: HeldBack[] } {
  const registered = new Set(observed.ipvs.destinations.map(destinationKey));
  const heldBack: HeldBack[] = [];
  const hold = (d: DestinationState): boolean => {
    const why = notReady.get(d.address);
    return why !== undefined && !registered.has(destinationKey(d));
  };
  for (const d of director.destinations) {
    if (hold(d))
      heldBack.push({ director: director.host, realServer: notReady.get(d.address)!.realServer, destination: destinationKey(d), reason: notReady.get(d.address)!.reason });
  }
  if (!heldBack.length) return { desired: director, heldBack };
  const keep = (ds: DestinationState[]): DestinationState[] => ds.filter((d) => !hold(d));
  const keepalived = director.keepalived && {
    ...director.keepalived,
    virtualServers: director.keepalived.virtualServers.map((v) => ({ ...v, destinations: keep(v.destinations) })),
  };
  const files = director.files.map((f): PersistedFile => {
    if (f.content.kind === "ipvs-rules") return { ...f, content: { ...f.content, destinations: keep(f.content.destinations) } };
    if (f.content.kind === "keepalived-conf" && keepalived) return { ...f, content: { kind: "keepalived-conf", keepalived } };
    return f;
  });
  return { desired: { ...director, destinations: keep(director.destinations), keepalived, files }, heldBack };
}
