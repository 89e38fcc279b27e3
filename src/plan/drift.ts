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
  type IpvsTimeouts,
  type ObservedHostState,
  type RenderedFile,
  type VirtualServiceState,
} from "../model/host-state";
import { addressFromKey, addressKey, destinationDifferences, destinationKey, serviceDifferences, serviceKey, type FieldDifference } from "../model/keys";
import { hostPaths } from "../model/paths";
import { own } from "../parse/records";
import { describeDestination, describeService } from "../render/describe";
import { renderFile } from "../render/files";

export type DriftStatus = "missing" | "unexpected" | "changed" | "unmanaged";
export type DriftKind = "address" | "service" | "destination" | "sysctl" | "file" | "keepalived" | "vrrp" | "ipvs";

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
  keepalived: KeepalivedDiff;
  /** IPVS timeouts to set: the spec's, or the ones a director had before (release). */
  ipvsTimeouts: IpvsTimeouts | null;
}

/** What keepalived mode adds to a director's diff (all empty on a director without it). */
export interface KeepalivedDiff {
  /** Services keepalived must hold but the IPVS table lacks while it runs: only a restart rebuilds them. */
  missingServices: VirtualServiceState[];
  /** Destinations in keepalived's services that its configuration does not have (nor as sorry server). */
  unexpectedDestinations: (DestinationState & { activeConnections?: number })[];
  /** Services keepalived held that the tool now manages itself: re-added once keepalived let go. */
  handBack: VirtualServiceState[];
  /** keepalived must be started (not running), and enabled at boot. */
  start: boolean;
  enable: boolean;
  /** keepalived runs with a configuration of ours but the spec needs none: stop and disable it. */
  stop: boolean;
  /** Its failover group's VIPs that the spec does not keep on this host: removed if the stop leaves them. */
  leftoverVips: InterfaceAddress[];
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
    keepalived: { missingServices: [], unexpectedDestinations: [], handBack: [], start: false, enable: false, stop: false, leftoverVips: [] },
    ipvsTimeouts: null,
  };
  // Services keepalived owns now (desired) and owned before (recorded): their entries are its own.
  const keepalivedNow = new Set((desired.keepalived?.virtualServers ?? []).map((v) => serviceKey(v.service)));
  const keepalivedBefore = new Set(owned?.keepalivedServices ?? []);
  // keepalived stays (reloaded: it deletes the services it no longer has), or goes (stopped: it
  // keeps its IPVS entries, run with --dont-release-ipvs, and the tool takes them over or removes them).
  const keepalivedStays = desired.keepalived !== null;
  const sorryServers = new Map((desired.keepalived?.virtualServers ?? []).flatMap((v) => (v.sorryServer ? [[serviceKey(v.service), v.sorryServer.address] as const] : [])));

  // Addresses: compared by interface and address; a different prefix is a change. Every lookup
  // into what a host listed is by key: a host can list 20,000 addresses, and its record as many.
  const observedAddr = new Map(observed.addresses.map((a) => [`${a.interface}/${a.address}`, a]));
  const observedAddrByKey = new Map<string, InterfaceAddress>();
  for (const a of observed.addresses) if (!observedAddrByKey.has(addressKey(a))) observedAddrByKey.set(addressKey(a), a);
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
    const seen = observedAddrByKey.get(key);
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
    if (!keepalivedNow.has(key) && keepalivedBefore.has(key) && keepalivedStays) {
      // keepalived removes it on reload; the tool adds it back at once, as its own.
      push("service", key, "changed", `${describeService(want)} by lvs-dr`, seen ? `${describeService(seen)} by keepalived` : null, [
        { field: "managedBy", expected: "lvs-dr", actual: "keepalived" },
      ]);
      diff.keepalived.handBack.push(want);
    } else if (!seen) {
      push("service", key, "missing", describeService(want), null);
      if (keepalivedNow.has(key)) {
        if (observed.keepalived?.running) diff.keepalived.missingServices.push(want);
      } else diff.services.missing.push(want);
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
    if (keepalivedBefore.has(key)) {
      push("service", key, "unexpected", null, describeService(seen));
      // A reload deletes it; a stop leaves it to the tool, which drains and removes it.
      if (!keepalivedStays) diff.services.unexpected.push(seen);
    } else if (ownedServices.has(key)) {
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
  const handedBack = new Set(diff.keepalived.handBack.map(serviceKey));
  for (const [key, want] of desiredDest) {
    const seen = observedDest.get(key);
    if (handedBack.has(want.service)) {
      diff.destinations.missing.push(want);
    } else if (keepalivedNow.has(want.service) && (!seen || (seen.weight === 0 && want.weight !== 0))) {
      // Health, not drift: keepalived took it out (or never put it in) because its check fails.
      continue;
    } else if (!seen) {
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
    if (keepalivedNow.has(seen.service)) {
      if (sorryServers.get(seen.service) === seen.address) continue; // health: no real server is up
      push("destination", key, "unexpected", null, describeDestination(seen));
      diff.keepalived.unexpectedDestinations.push(seen);
      continue;
    }
    if (keepalivedBefore.has(seen.service)) {
      // keepalived's: gone with its service on reload; drained by the tool when keepalived stops.
      if (!keepalivedStays && !desiredServices.has(seen.service)) diff.destinations.unexpected.push(seen);
      continue;
    }
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
    const actual = own(observed.sysctls, s.key) ?? null;
    if (actual !== s.value) {
      push("sysctl", s.key, actual === null ? "missing" : "changed", s.value, actual, [{ field: "value", expected: s.value, actual: actual ?? "absent" }]);
      diff.sysctls.changed.push({ key: s.key, value: s.value, from: actual });
    }
  }
  for (const [key, original] of Object.entries(owned?.sysctls ?? {})) {
    if (desiredSysctls.has(key)) continue;
    const actual = own(observed.sysctls, key) ?? null;
    if (actual === null) continue;
    if (actual !== original) push("sysctl", key, "unexpected", original, actual, [{ field: "value", expected: original, actual }]);
    diff.sysctls.unexpected.push({ key, original, actual });
  }

  // Persisted files.
  const desiredFiles = desired.files.map(renderFile);
  const desiredPaths = new Set(desiredFiles.map((f) => f.path));
  for (const want of desiredFiles) {
    const seen = own(observed.files, want.path) ?? null;
    const same = seen !== null && ("linkTarget" in want ? seen.isLink && seen.target === want.linkTarget : !seen.isLink && seen.sha256 === textSha256(want.content));
    if (!same) {
      push(
        "file",
        want.path,
        seen === null ? "missing" : "changed",
        fileText(want),
        seen === null ? null : seen.isLink ? `link to ${seen.target}` : `different content (sha256 ${seen.sha256.slice(0, 12)})`,
      );
      diff.files.changed.push(want);
    }
  }
  for (const path of owned?.files ?? []) {
    if (desiredPaths.has(path)) continue;
    if (own(observed.files, path)) {
      push("file", path, "unexpected", null, "present");
      diff.files.unexpected.push(path);
    }
  }

  // IPVS timeouts (a director's `ipvs` block): set, or put back as they were once no longer wanted.
  const timeoutsText = (t: IpvsTimeouts) => `tcp ${t.tcp} tcpfin ${t.tcpFin} udp ${t.udp}`;
  const seenTimeouts = observed.ipvs.timeouts;
  if (desired.ipvsTimeouts) {
    if (!seenTimeouts || timeoutsText(seenTimeouts) !== timeoutsText(desired.ipvsTimeouts)) {
      push("ipvs", "timeouts", seenTimeouts ? "changed" : "missing", timeoutsText(desired.ipvsTimeouts), seenTimeouts ? timeoutsText(seenTimeouts) : null);
      diff.ipvsTimeouts = desired.ipvsTimeouts;
    }
  } else if (owned?.ipvsTimeouts && seenTimeouts && timeoutsText(seenTimeouts) !== timeoutsText(owned.ipvsTimeouts)) {
    push("ipvs", "timeouts", "unexpected", timeoutsText(owned.ipvsTimeouts), timeoutsText(seenTimeouts));
    diff.ipvsTimeouts = owned.ipvsTimeouts;
  }

  // keepalived itself: running and enabled whenever there is a configuration of ours to run.
  const daemon = observed.keepalived;
  if (desired.keepalived && daemon) {
    if (!daemon.installed) push("keepalived", "keepalived", "missing", "installed, running, enabled at boot", "not installed");
    else {
      if (!daemon.running) push("keepalived", "keepalived", "changed", "running", "stopped", [{ field: "running", expected: "yes", actual: "no" }]);
      if (!daemon.enabled) push("keepalived", "keepalived", "changed", "enabled at boot", "disabled", [{ field: "enabled", expected: "yes", actual: "no" }]);
      diff.keepalived.start = !daemon.running;
      diff.keepalived.enable = !daemon.enabled;
    }
  } else if (!desired.keepalived && (daemon?.running || daemon?.enabled) && owned?.files.includes(hostPaths.keepalivedConf)) {
    push("keepalived", "keepalived", "unexpected", null, `${daemon.running ? "running" : "enabled at boot"} with lvs-dr's configuration`);
    diff.keepalived.stop = true;
    diff.keepalived.leftoverVips = (owned.vrrpAddresses ?? []).filter((key) => !desiredAddrKeys.has(key)).flatMap((key) => addressFromKey(key) ?? []);
  }

  diff.drift.clean = items.every((i) => i.status === "unmanaged");
  return diff;
}
