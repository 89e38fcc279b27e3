/** What the ownership record on a host says after a wave. */
import { ipvsSysctlDefaults } from "../model/desired";
import type { IpvsTimeouts } from "../model/host-state";
import type { DesiredHostState, ObservedHostState, OwnershipRecord } from "../model/host-state";
import { addressKey, destinationKey, serviceKey } from "../model/keys";
import { hostRecord, own } from "../parse/records";

/** What a freshly loaded ip_vs module uses (ipvsadm -L --timeout). */
const kernelIpvsTimeouts: IpvsTimeouts = { tcp: 900, tcpFin: 120, udp: 300 };

/** Desired order first, then what is still owned; deterministic without sorting 10,000 keys. */
function union(a: string[], b: string[]): string[] {
  if (b.length === 0) return [...new Set(a)];
  return [...new Set([...a, ...b])];
}

/**
 * The record once the host holds `desired`. With `keepOwned`, items still owned (to be
 * released in a later wave) stay recorded, so a failure in between loses track of nothing.
 */
export function nextOwnership(desired: DesiredHostState, observed: ObservedHostState, keepOwned: boolean): OwnershipRecord | null {
  const owned = observed.ownership;
  // Keys from the host's record too: no prototype, so `sysctls[key] ??=` sees only its own keys.
  const sysctls = hostRecord<string>();
  for (const s of desired.sysctls) {
    // A parameter absent when first set (ip_vs not loaded yet) had the module's default: recorded
    // as such, or the next run would record the value the tool set as the original.
    const original = (owned ? own(owned.sysctls, s.key) : undefined) ?? own(observed.sysctls, s.key) ?? own(ipvsSysctlDefaults, s.key);
    if (original !== undefined && original !== null) sysctls[s.key] = original;
  }
  if (keepOwned && owned) {
    for (const [key, original] of Object.entries(owned.sysctls)) sysctls[key] ??= original;
  }
  // keepalived's services are recorded apart: the tool writes their configuration, keepalived their entries.
  const keepalivedServices = (desired.keepalived?.virtualServers ?? []).map((v) => serviceKey(v.service));
  const byKeepalived = new Set(keepalivedServices);
  const staticServices = byKeepalived.size ? desired.services.filter((s) => !byKeepalived.has(serviceKey(s))) : desired.services;
  const staticDestinations = byKeepalived.size ? desired.destinations.filter((d) => !byKeepalived.has(d.service)) : desired.destinations;
  const record: OwnershipRecord = {
    version: 1,
    cluster: desired.cluster,
    host: desired.host,
    addresses: union(desired.addresses.map(addressKey), keepOwned ? (owned?.addresses ?? []) : []),
    services: union(staticServices.map(serviceKey), keepOwned ? (owned?.services ?? []) : []),
    destinations: union(staticDestinations.map(destinationKey), keepOwned ? (owned?.destinations ?? []) : []),
    sysctls: Object.fromEntries(Object.entries(sysctls).sort(([a], [b]) => a.localeCompare(b))),
    files: union(
      desired.files.map((f) => f.path),
      keepOwned ? (owned?.files ?? []) : [],
    ),
  };
  const ownedKeepalived = union(keepalivedServices, keepOwned ? (owned?.keepalivedServices ?? []) : []);
  if (ownedKeepalived.length) record.keepalivedServices = ownedKeepalived;
  const vrrpAddresses = union((desired.keepalived?.vrrp?.vips ?? []).map(addressKey), keepOwned ? (owned?.vrrpAddresses ?? []) : []);
  if (vrrpAddresses.length) record.vrrpAddresses = vrrpAddresses;
  // The timeouts before the tool set them (the kernel's defaults if ip_vs was not even loaded).
  const originalTimeouts = owned?.ipvsTimeouts ?? (desired.ipvsTimeouts ? (observed.ipvs.timeouts ?? kernelIpvsTimeouts) : undefined);
  if (originalTimeouts && (desired.ipvsTimeouts || keepOwned)) record.ipvsTimeouts = originalTimeouts;
  const empty = !record.addresses.length && !record.services.length && !record.destinations.length && !record.files.length && !Object.keys(record.sysctls).length;
  return empty ? null : record;
}

function sameSet(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}

/** Equal records, ignoring order: a host's record written in another order is not drift. */
export function sameOwnership(a: OwnershipRecord | null, b: OwnershipRecord | null): boolean {
  if (a === null || b === null) return a === b;
  const sysA = Object.entries(a.sysctls);
  return (
    a.cluster === b.cluster &&
    a.host === b.host &&
    sameSet(a.addresses, b.addresses) &&
    sameSet(a.services, b.services) &&
    sameSet(a.destinations, b.destinations) &&
    sameSet(a.files, b.files) &&
    sameSet(a.keepalivedServices ?? [], b.keepalivedServices ?? []) &&
    sameSet(a.vrrpAddresses ?? [], b.vrrpAddresses ?? []) &&
    JSON.stringify(a.ipvsTimeouts ?? null) === JSON.stringify(b.ipvsTimeouts ?? null) &&
    sysA.length === Object.keys(b.sysctls).length &&
    sysA.every(([k, v]) => own(b.sysctls, k) === v)
  );
}
