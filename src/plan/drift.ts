/**
 * Drift: the diff between what a host must hold and what it was seen to hold, per item, in
 * the words users read (missing / unexpected / changed, expected vs actual). The planner
 * turns the same diff into steps, so `drift` and `plan` never disagree.
 *
 * Ownership decides what may be touched: an item in the desired state or in the host's
 * ownership record is managed; anything else is reported as unmanaged and never changed.
 */
import {
  textSha256,
  type DesiredHostState,
  type DestinationState,
  type HostRole,
  type InterfaceAddress,
  type ObservedHostState,
  type RenderedFile,
  type VirtualServiceState,
} from "../model/host-state";
import {
  addressKey,
  destinationDifferences,
  destinationKey,
  serviceDifferences,
  serviceKey,
  type FieldDifference,
} from "../model/keys";
import { describeDestination, describeService } from "../render/describe";
import { renderFile } from "../render/files";

export type DriftStatus = "missing" | "unexpected" | "changed" | "unmanaged";
export type DriftKind = "address" | "service" | "destination" | "sysctl" | "file";

export interface DriftItem {
  host: string;
  kind: DriftKind;
  key: string;
  status: DriftStatus;
  expected: string | null;
  actual: string | null;
  fields: FieldDifference[];
}

export interface HostDrift {
  host: string;
  role: HostRole;
  /** No missing, unexpected or changed item; unmanaged items do not count as drift. */
  clean: boolean;
  items: DriftItem[];
}

/** The diff, with the data the planner needs alongside the report. */
export interface HostDiff {
  drift: HostDrift;
  addresses: { missing: InterfaceAddress[]; unexpected: InterfaceAddress[] };
  services: { missing: VirtualServiceState[]; changed: VirtualServiceState[]; unexpected: VirtualServiceState[] };
  destinations: {
    missing: DestinationState[];
    changed: DestinationState[];
    /** Owned, no longer desired, still present: observed values (weight, counters). */
    unexpected: (DestinationState & { activeConnections?: number })[];
  };
  sysctls: { changed: { key: string; value: string; from: string | null }[]; unexpected: { key: string; original: string; actual: string | null }[] };
  files: { changed: RenderedFile[]; unexpected: string[] };
}

function addressText(a: InterfaceAddress): string {
  return `${a.address}/${a.prefix} on ${a.interface}`;
}

function fileText(f: RenderedFile): string {
  return "linkTarget" in f ? `link to ${f.linkTarget}` : `${f.content.split("\n").length - 1} lines (sha256 ${textSha256(f.content).slice(0, 12)})`;
}

export function diffHost(desired: DesiredHostState, observed: ObservedHostState): HostDiff {
  const host = desired.host;
  const owned = observed.ownership;
  const items: DriftItem[] = [];
  const push = (kind: DriftKind, key: string, status: DriftStatus, expected: string | null, actual: string | null, fields: FieldDifference[] = []) =>
    items.push({ host, kind, key, status, expected, actual, fields });
  const diff: HostDiff = {
    drift: { host, role: desired.role, clean: true, items },
    addresses: { missing: [], unexpected: [] },
    services: { missing: [], changed: [], unexpected: [] },
    destinations: { missing: [], changed: [], unexpected: [] },
    sysctls: { changed: [], unexpected: [] },
    files: { changed: [], unexpected: [] },
  };

  // Addresses: compared by interface and address; a different prefix is a change.
  const observedAddr = new Map(observed.addresses.map((a) => [`${a.interface}/${a.address}`, a]));
  const desiredAddrKeys = new Set(desired.addresses.map(addressKey));
  for (const a of desired.addresses) {
    const seen = observedAddr.get(`${a.interface}/${a.address}`);
    if (!seen) {
      push("address", addressKey(a), "missing", addressText(a), null);
      diff.addresses.missing.push(a);
    } else if (seen.prefix !== a.prefix) {
      push("address", addressKey(a), "changed", addressText(a), addressText(seen), [{ field: "prefix", expected: String(a.prefix), actual: String(seen.prefix) }]);
      diff.addresses.missing.push(a);
      diff.addresses.unexpected.push(seen);
    }
  }
  for (const key of owned?.addresses ?? []) {
    if (desiredAddrKeys.has(key)) continue;
    const seen = observed.addresses.find((a) => addressKey(a) === key);
    if (seen) {
      push("address", key, "unexpected", null, addressText(seen));
      diff.addresses.unexpected.push(seen);
    }
  }

  // IPVS virtual services.
  const ownedServices = new Set(owned?.services ?? []);
  const desiredServices = new Map(desired.services.map((s) => [serviceKey(s), s]));
  const observedServices = new Map(observed.ipvs.services.map((s) => [serviceKey(s), s]));
  for (const [key, want] of desiredServices) {
    const seen = observedServices.get(key);
    if (!seen) {
      push("service", key, "missing", describeService(want), null);
      diff.services.missing.push(want);
    } else {
      const fields = serviceDifferences(want, seen);
      if (fields.length) {
        push("service", key, "changed", describeService(want), describeService(seen), fields);
        diff.services.changed.push(want);
      }
    }
  }
  const unmanagedServices = new Set<string>();
  for (const [key, seen] of observedServices) {
    if (desiredServices.has(key)) continue;
    if (ownedServices.has(key)) {
      push("service", key, "unexpected", null, describeService(seen));
      diff.services.unexpected.push(seen);
    } else {
      unmanagedServices.add(key);
      push("service", key, "unmanaged", null, describeService(seen));
    }
  }

  // Destinations (real servers registered at the director).
  const ownedDestinations = new Set(owned?.destinations ?? []);
  const desiredDest = new Map(desired.destinations.map((d) => [destinationKey(d), d]));
  const observedDest = new Map(observed.ipvs.destinations.map((d) => [destinationKey(d), d]));
  for (const [key, want] of desiredDest) {
    const seen = observedDest.get(key);
    if (!seen) {
      push("destination", key, "missing", describeDestination(want), null);
      diff.destinations.missing.push(want);
    } else {
      const fields = destinationDifferences(want, seen);
      if (fields.length) {
        push("destination", key, "changed", describeDestination(want), describeDestination(seen), fields);
        diff.destinations.changed.push(want);
      }
    }
  }
  for (const [key, seen] of observedDest) {
    if (desiredDest.has(key) || unmanagedServices.has(seen.service)) continue;
    const serviceGoing = !desiredServices.has(seen.service);
    if (ownedDestinations.has(key) || serviceGoing) {
      // Destinations under a service the tool is removing go with it.
      if (ownedDestinations.has(key)) push("destination", key, "unexpected", null, describeDestination(seen));
      diff.destinations.unexpected.push(seen);
    } else {
      push("destination", key, "unmanaged", null, describeDestination(seen));
    }
  }

  // Sysctls.
  const desiredSysctls = new Set(desired.sysctls.map((s) => s.key));
  for (const s of desired.sysctls) {
    const actual = observed.sysctls[s.key] ?? null;
    if (actual !== s.value) {
      push("sysctl", s.key, actual === null ? "missing" : "changed", s.value, actual, [{ field: "value", expected: s.value, actual: actual ?? "absent" }]);
      diff.sysctls.changed.push({ key: s.key, value: s.value, from: actual });
    }
  }
  for (const [key, original] of Object.entries(owned?.sysctls ?? {})) {
    if (desiredSysctls.has(key)) continue;
    const actual = observed.sysctls[key] ?? null;
    if (actual === null) continue;
    if (actual !== original) push("sysctl", key, "unexpected", original, actual, [{ field: "value", expected: original, actual }]);
    diff.sysctls.unexpected.push({ key, original, actual });
  }

  // Persisted files.
  const desiredFiles = desired.files.map(renderFile);
  const desiredPaths = new Set(desiredFiles.map((f) => f.path));
  for (const want of desiredFiles) {
    const seen = observed.files[want.path] ?? null;
    const same =
      seen !== null &&
      ("linkTarget" in want ? seen.isLink && seen.target === want.linkTarget : !seen.isLink && seen.sha256 === textSha256(want.content));
    if (!same) {
      push("file", want.path, seen === null ? "missing" : "changed", fileText(want), seen === null ? null : seen.isLink ? `link to ${seen.target}` : `different content (sha256 ${seen.sha256.slice(0, 12)})`);
      diff.files.changed.push(want);
    }
  }
  for (const path of owned?.files ?? []) {
    if (desiredPaths.has(path)) continue;
    if (observed.files[path]) {
      push("file", path, "unexpected", null, "present");
      diff.files.unexpected.push(path);
    }
  }

  diff.drift.clean = items.every((i) => i.status === "unmanaged");
  return diff;
}
