/**
 * Host plans: the ordered steps that take one host from what was observed to what it must
 * hold. The order is what keeps traffic safe:
 * - real server, prepare: ARP sysctls, then VIPs on lo (a VIP must never be answerable first);
 * - director: services and destinations, drains, then the VIP (it attracts traffic last),
 *   then waiting, deleting, and the VIPs no longer served;
 * - real server, release: VIPs off lo first, sysctls restored last.
 */
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { serviceKey } from "../model/keys";
import type { HostWavePlan, Step } from "../model/steps";
import { diffHost, type HostDiff } from "./drift";
import { drainSteps } from "./drain";
import { nextOwnership, sameOwnership } from "./ownership";

export interface HostPlan {
  host: string;
  role: DesiredHostState["role"];
  diff: HostDiff;
  waves: HostWavePlan[];
}

function withOwnership(steps: Step[], desired: DesiredHostState, observed: ObservedHostState, keepOwned: boolean): Step[] {
  const record = nextOwnership(desired, observed, keepOwned);
  if (steps.length === 0 && sameOwnership(record, observed.ownership)) return steps;
  return [...steps, { op: "record-ownership", record }];
}

export function planHost(desired: DesiredHostState, observed: ObservedHostState): HostPlan {
  const diff = diffHost(desired, observed);
  const waves = desired.role === "director" ? planDirector(desired, observed, diff) : planRealServer(desired, observed, diff);
  return { host: desired.host, role: desired.role, diff, waves: waves.filter((w) => w.steps.length > 0) };
}

function planRealServer(desired: DesiredHostState, observed: ObservedHostState, diff: HostDiff): HostWavePlan[] {
  const hasRelease = diff.addresses.unexpected.length + diff.sysctls.unexpected.length + diff.files.unexpected.length > 0;
  // Persisted files describe the final state, so they are written in the host's last wave.
  const fileSteps = [
    ...diff.files.changed.map((file): Step => ({ op: "write-file", file })),
    ...diff.files.unexpected.map((path): Step => ({ op: "remove-file", path })),
  ];
  const prepare: Step[] = [
    ...diff.sysctls.changed.map((s): Step => ({ op: "set-sysctl", sysctl: { key: s.key, value: s.value }, from: s.from })),
    ...diff.addresses.missing.map((address): Step => ({ op: "add-address", address })),
    ...(hasRelease ? [] : fileSteps),
  ];
  const release: Step[] = [
    ...diff.addresses.unexpected.map((address): Step => ({ op: "remove-address", address })),
    ...diff.sysctls.unexpected.map((s): Step => ({ op: "restore-sysctl", sysctl: { key: s.key, value: s.original } })),
    ...(hasRelease ? fileSteps : []),
  ];
  // When nothing is released, the prepare wave writes the final record itself.
  const prepareSteps = withOwnership(prepare, desired, observed, hasRelease);
  const observedAfterPrepare: ObservedHostState = hasRelease
    ? { ...observed, ownership: nextOwnership(desired, observed, true) }
    : observed;
  const releaseSteps = hasRelease ? withOwnership(release, desired, observedAfterPrepare, false) : [];
  return [
    { host: desired.host, wave: "prepare-real-servers", steps: prepareSteps, expectedIpvsFingerprint: null, expectedIpvsListing: null },
    { host: desired.host, wave: "release-real-servers", steps: releaseSteps, expectedIpvsFingerprint: null, expectedIpvsListing: null },
  ];
}

function planDirector(desired: DesiredHostState, observed: ObservedHostState, diff: HostDiff): HostWavePlan[] {
  const servicesRemoved = new Set(diff.services.unexpected.map(serviceKey));
  const drains = drainSteps(diff.destinations.unexpected, servicesRemoved, desired.drain);
  const steps: Step[] = [
    ...diff.services.missing.map((service): Step => ({ op: "add-service", service })),
    ...diff.services.changed.map((service): Step => ({ op: "edit-service", service })),
    ...diff.destinations.missing.map((destination): Step => ({ op: "add-destination", destination })),
    ...diff.destinations.changed.map((destination): Step => ({ op: "edit-destination", destination })),
    ...drains.drain,
    ...diff.addresses.missing.map((address): Step => ({ op: "add-address", address })),
    ...drains.wait,
    ...drains.remove,
    ...diff.services.unexpected.map((service): Step => ({ op: "remove-service", service })),
    ...diff.addresses.unexpected.map((address): Step => ({ op: "remove-address", address })),
    ...diff.files.changed.map((file): Step => ({ op: "write-file", file })),
    ...diff.files.unexpected.map((path): Step => ({ op: "remove-file", path })),
  ];
  return [
    {
      host: desired.host,
      wave: "directors",
      steps: withOwnership(steps, desired, observed, false),
      expectedIpvsFingerprint: observed.ipvs.status === "loaded" ? observed.ipvs.fingerprint : null,
      expectedIpvsListing: observed.ipvs.status === "loaded" ? observed.ipvs.listing : null,
    },
  ];
}
