/** What the ownership record on a host says after a wave. */
import type { DesiredHostState, ObservedHostState, OwnershipRecord } from "../model/host-state";
import { addressKey, destinationKey, serviceKey } from "../model/keys";

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

/**
 * The record once the host holds `desired`. With `keepOwned`, items still owned (to be
 * released in a later wave) stay recorded, so a failure in between loses track of nothing.
 */
export function nextOwnership(desired: DesiredHostState, observed: ObservedHostState, keepOwned: boolean): OwnershipRecord | null {
  const owned = observed.ownership;
  const sysctls: Record<string, string> = {};
  for (const s of desired.sysctls) {
    const original = owned?.sysctls[s.key] ?? observed.sysctls[s.key];
    if (original !== undefined && original !== null) sysctls[s.key] = original;
  }
  if (keepOwned && owned) {
    for (const [key, original] of Object.entries(owned.sysctls)) sysctls[key] ??= original;
  }
  const record: OwnershipRecord = {
    version: 1,
    cluster: desired.cluster,
    host: desired.host,
    addresses: union(desired.addresses.map(addressKey), keepOwned ? owned?.addresses ?? [] : []),
    services: union(desired.services.map(serviceKey), keepOwned ? owned?.services ?? [] : []),
    destinations: union(desired.destinations.map(destinationKey), keepOwned ? owned?.destinations ?? [] : []),
    sysctls: Object.fromEntries(Object.entries(sysctls).sort(([a], [b]) => a.localeCompare(b))),
    files: union(desired.files.map((f) => f.path), keepOwned ? owned?.files ?? [] : []),
  };
  const empty = !record.addresses.length && !record.services.length && !record.destinations.length && !record.files.length && !Object.keys(record.sysctls).length;
  return empty ? null : record;
}

export function sameOwnership(a: OwnershipRecord | null, b: OwnershipRecord | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
