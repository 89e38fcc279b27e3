/**
 * Host plans: the ordered steps that take one host from what was observed to what it must
 * hold. The order is what keeps traffic safe:
 * - real server, prepare: ARP sysctls, then VIPs on lo (a VIP must never be answerable first);
 * - director: services and destinations, drains, then the VIP (it attracts traffic last),
 *   then waiting, deleting, and the VIPs no longer served;
 * - real server, release: VIPs off lo first, sysctls restored last.
 */
import type { DesiredHostState, DestinationState, KeepalivedState, ObservedHostState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { renderFile } from "../render/files";
import { serviceKey } from "../model/keys";
import { isIpvsStep, type HostWavePlan, type Step } from "../model/steps";
import { diffHost, type HostDiff } from "./drift";
import { drainSteps, needsWait } from "./drain";
import { nextOwnership, sameOwnership } from "./ownership";

export interface HostPlan {
  host: string;
  role: DesiredHostState["role"];
  diff: HostDiff;
  waves: HostWavePlan[];
  /** A director of a failover group: the group's VIPs it was seen holding (it is master if it holds them). */
  vrrp: { group: string; directors: number; vips: string[]; held: string[] } | null;
}

function withOwnership(steps: Step[], desired: DesiredHostState, observed: ObservedHostState, keepOwned: boolean): Step[] {
  const record = nextOwnership(desired, observed, keepOwned);
  // An unchanged record is not written again: on a director it lists every destination, and a
  // one-entry change on a 10,000-entry table would carry half a megabyte for nothing.
  if (sameOwnership(record, observed.ownership)) return steps;
  return [...steps, { op: "record-ownership", record }];
}

/**
 * The record goes on a host before anything it names changes: a script that fails halfway then
 * leaves a host whose record still has every value from before the tool (and everything it may
 * have touched), so destroy puts back the originals rather than what the failed run left. It
 * names both what was owned and what will be; the final record follows the last change, unless
 * it is that same record.
 */
function recordedFirst(waves: HostWavePlan[], desired: DesiredHostState, observed: ObservedHostState): HostWavePlan[] {
  const first = waves[0];
  if (!first) return waves;
  const ahead = nextOwnership(desired, observed, true);
  if (sameOwnership(ahead, observed.ownership)) return waves;
  const recordAhead: Step = { op: "record-ownership", record: ahead };
  const last = first.steps[first.steps.length - 1];
  const alreadyFinal = last?.op === "record-ownership" && sameOwnership(last.record, ahead);
  const steps = [recordAhead, ...(alreadyFinal ? first.steps.slice(0, -1) : first.steps)];
  return [{ ...first, steps }, ...waves.slice(1)];
}

export function planHost(desired: DesiredHostState, observed: ObservedHostState): HostPlan {
  const diff = diffHost(desired, observed);
  const waves = desired.role === "director" ? planDirector(desired, observed, diff) : planRealServer(desired, observed, diff);
  const group = desired.keepalived?.vrrp;
  const seenAt = group ? new Set(observed.addresses.map((a) => `${a.interface}/${a.address}`)) : null;
  const vrrp = group
    ? {
        group: group.group,
        directors: group.peers.length + 1,
        vips: group.vips.map((v) => v.address),
        held: group.vips.filter((v) => seenAt!.has(`${v.interface}/${v.address}`)).map((v) => v.address),
      }
    : null;
  const planned = recordedFirst(
    waves.filter((w) => w.steps.length > 0),
    desired,
    observed,
  );
  // The host's first script checks that the host is still as observed; its later ones follow it.
  if (observed.state && planned[0]) planned[0] = { ...planned[0], expectedState: observed.state };
  return { host: desired.host, role: desired.role, diff, waves: planned, vrrp };
}

function planRealServer(desired: DesiredHostState, observed: ObservedHostState, diff: HostDiff): HostWavePlan[] {
  const hasRelease = diff.addresses.unexpected.length + diff.sysctls.unexpected.length + diff.files.unexpected.length > 0;
  // Persisted files describe the final state, so they are written in the host's last wave.
  const fileSteps = [...diff.files.changed.map((file): Step => ({ op: "write-file", file })), ...diff.files.unexpected.map((path): Step => ({ op: "remove-file", path }))];
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
  const observedAfterPrepare: ObservedHostState = hasRelease ? { ...observed, ownership: nextOwnership(desired, observed, true) } : observed;
  const releaseSteps = hasRelease ? withOwnership(release, desired, observedAfterPrepare, false) : [];
  return [
    { host: desired.host, wave: "prepare-real-servers", steps: prepareSteps, expectedIpvsFingerprint: null, expectedIpvsListing: null },
    { host: desired.host, wave: "release-real-servers", steps: releaseSteps, expectedIpvsFingerprint: null, expectedIpvsListing: null },
  ];
}

/**
 * Whether a director carries connections for a destination: only while it holds the service's
 * VIP. A failover group's backup holds connection entries the master's sync daemon sent it,
 * which no packet ever ends there: waiting for them to drain would only run out the timeout.
 */
function carriesTraffic(observed: ObservedHostState): (d: DestinationState) => boolean {
  const held = new Set(observed.addresses.map((a) => a.address));
  const vipOf = new Map(observed.ipvs.services.map((s) => [serviceKey(s), s.address]));
  return (d) => {
    const vip = vipOf.get(d.service);
    return vip === undefined || vip === "" || held.has(vip);
  };
}

/** A wait step for only the destinations this director carries traffic for, or none. */
function waitsFor(steps: Step[], carries: (d: DestinationState) => boolean): Step[] {
  return steps.flatMap((s): Step[] => {
    if (s.op !== "wait-drained") return [s];
    const destinations = s.destinations.filter(carries);
    return destinations.length ? [{ ...s, destinations }] : [];
  });
}

function planDirector(desired: DesiredHostState, observed: ObservedHostState, diff: HostDiff): HostWavePlan[] {
  const servicesRemoved = new Set(diff.services.unexpected.map(serviceKey));
  const carries = carriesTraffic(observed);
  const drains = drainSteps(diff.destinations.unexpected, servicesRemoved, desired.drain);
  drains.wait = waitsFor(drains.wait, carries);
  const keepalived = keepalivedSteps(desired, diff, carries);
  const handedBack = new Set(diff.keepalived.handBack.map(serviceKey));
  const staticMissing = diff.destinations.missing.filter((d) => !handedBack.has(d.service));
  const released = !desired.ipvsTimeouts && diff.ipvsTimeouts !== null;
  const steps: Step[] = [
    // IPVS settings first: they govern the connections the services below take.
    ...diff.sysctls.changed.map((s): Step => ({ op: "set-sysctl", sysctl: { key: s.key, value: s.value }, from: s.from })),
    ...(diff.ipvsTimeouts && !released ? [{ op: "set-ipvs-timeouts", timeouts: diff.ipvsTimeouts } as Step] : []),
    ...diff.services.missing.map((service): Step => ({ op: "add-service", service })),
    ...diff.services.changed.map((service): Step => ({ op: "edit-service", service })),
    ...staticMissing.map((destination): Step => ({ op: "add-destination", destination })),
    ...diff.destinations.changed.map((destination): Step => ({ op: "edit-destination", destination })),
    ...drains.drain,
    // keepalived's services, drained through its configuration when real servers leave them.
    ...keepalived.configure,
    // Services keepalived let go of are the tool's again the moment they are gone.
    ...(diff.keepalived.handBack.length
      ? [
          { op: "wait-keepalived-released", services: diff.keepalived.handBack, timeoutSeconds: 15 } as Step,
          ...diff.keepalived.handBack.map((service): Step => ({ op: "add-service", service })),
          ...diff.destinations.missing.filter((d) => handedBack.has(d.service)).map((destination): Step => ({ op: "add-destination", destination })),
        ]
      : []),
    ...keepalived.ready,
    ...diff.addresses.missing.map((address): Step => ({ op: "add-address", address })),
    ...drains.wait,
    ...keepalived.drained,
    ...drains.remove,
    ...diff.services.unexpected.map((service): Step => ({ op: "remove-service", service })),
    ...diff.addresses.unexpected.map((address): Step => ({ op: "remove-address", address })),
    ...diff.sysctls.unexpected.map((s): Step => ({ op: "restore-sysctl", sysctl: { key: s.key, value: s.original } })),
    ...(diff.ipvsTimeouts && released ? [{ op: "set-ipvs-timeouts", timeouts: diff.ipvsTimeouts } as Step] : []),
    ...diff.files.changed.filter((f) => f.path !== hostPaths.keepalivedConf && f.path !== hostPaths.keepalivedDropIn).map((file): Step => ({ op: "write-file", file })),
    ...diff.files.unexpected.map((path): Step => ({ op: "remove-file", path })),
  ];
  // The table check guards the tool's own IPVS changes only: keepalived changes its services'
  // weights whenever a check passes or fails, so a plan that leaves IPVS to it does not ask.
  return [
    {
      host: desired.host,
      wave: "directors",
      steps: withOwnership(steps, desired, observed, false),
      expectedIpvsFingerprint: observed.ipvs.status === "loaded" && steps.some(isIpvsStep) ? observed.ipvs.fingerprint : null,
      expectedIpvsListing: observed.ipvs.status === "loaded" && steps.some(isIpvsStep) ? observed.ipvs.listing : null,
    },
  ];
}

/**
 * keepalived's part of a director's plan. Its configuration is written and keepalived reloaded
 * before the VIP is added (so a new service has a checked real server first). Real servers that
 * leave one of its services are drained through the configuration: written first at weight 0,
 * and written without them once drained, as the static path does with ipvsadm.
 */
function keepalivedSteps(desired: DesiredHostState, diff: HostDiff, carries: (d: DestinationState) => boolean): { configure: Step[]; ready: Step[]; drained: Step[] } {
  const k = diff.keepalived;
  const none = { configure: [], ready: [], drained: [] };
  // Stopped first. Run with --dont-release-ipvs, it leaves its entries: the tool takes over the
  // services it keeps (no moment without them) and drains and removes the others.
  if (!desired.keepalived) return k.stop ? { ...none, configure: [{ op: "stop-keepalived", leftoverVips: k.leftoverVips }] } : none;
  const conf = diff.files.changed.find((f) => f.path === hostPaths.keepalivedConf);
  const dropIn = diff.files.changed.find((f) => f.path === hostPaths.keepalivedDropIn);
  const leaving = k.unexpectedDestinations.filter((d) => d.weight !== 0);
  const waitFor = leaving.filter(needsWait).filter(carries);
  const reload = conf !== undefined || dropIn !== undefined || k.start || k.enable || k.missingServices.length > 0;
  // A running keepalived takes a changed drop-in (its command line) only by a restart.
  const reloadStep: Step = {
    op: "reload-keepalived",
    restart: (k.missingServices.length > 0 || dropIn !== undefined) && !k.start,
    ...(dropIn ? { daemonReload: true } : {}),
    ...(k.enable ? { enable: true } : {}),
  };
  const configure: Step[] = dropIn ? [{ op: "write-file", file: dropIn }] : [];
  const drained: Step[] = [];
  if (conf && waitFor.length > 0 && desired.drain.timeoutSeconds > 0) {
    // First the configuration with the leaving real servers kept at weight 0 (keepalived adopts them).
    const draining = drainingKeepalived(desired.keepalived, leaving);
    configure.push({ op: "write-keepalived-config", file: renderFile({ path: hostPaths.keepalivedConf, content: { kind: "keepalived-conf", keepalived: draining } }) });
    configure.push(reloadStep);
    drained.push({ op: "wait-drained", destinations: waitFor, timeoutSeconds: desired.drain.timeoutSeconds, pollSeconds: desired.drain.pollSeconds });
    drained.push({ op: "write-keepalived-config", file: conf }, { op: "reload-keepalived", restart: false });
  } else if (reload) {
    if (conf) configure.push({ op: "write-keepalived-config", file: conf });
    // Only a restart rebuilds a service deleted under a running keepalived.
    configure.push(reloadStep);
  }
  // Real servers added by hand to keepalived's services, or left behind: gone after the last reload.
  drained.push(...k.unexpectedDestinations.map((destination): Step => ({ op: "remove-stray-destination", destination })));
  const adding = new Set(diff.addresses.missing.map((a) => a.address));
  const fresh = desired.keepalived.virtualServers.filter((v) => adding.has(v.service.address));
  const ready: Step[] = fresh.length && reload ? [{ op: "wait-keepalived-ready", services: fresh.map((v) => v.service), timeoutSeconds: 30 }] : [];
  return { configure, ready, drained };
}

/** The configuration while real servers drain: every desired entry, and the leaving ones at weight 0. */
function drainingKeepalived(state: KeepalivedState, leaving: DestinationState[]): KeepalivedState {
  // By service once, not a scan of every leaving destination per service.
  const byService = new Map<string, DestinationState[]>();
  for (const d of leaving) {
    const going = { ...d, weight: 0, upperThreshold: 0, lowerThreshold: 0 };
    const list = byService.get(d.service);
    if (list) list.push(going);
    else byService.set(d.service, [going]);
  }
  return {
    ...state,
    virtualServers: state.virtualServers.map((vs) => {
      const going = byService.get(serviceKey(vs.service));
      return going ? { ...vs, destinations: [...vs.destinations, ...going] } : vs;
    }),
  };
}
