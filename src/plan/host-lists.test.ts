/**
 * What a host lists is not the spec's to bound: 20,000 addresses, destinations, routes or
 * recorded items from one host must cost the planner time in proportion, not in the square
 * (comparing 20,000 addresses once took 16 s). And a host naming something `__proto__` or
 * `constructor` is compared like any other name.
 */
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import type { DestinationState, InterfaceAddress, ObservedHostState, RouteLookup } from "../model/host-state";
import { addressKey, destinationKey } from "../model/keys";
import { labLikeSpec } from "../testing/specs";
import { planCluster, planClusterHost } from "./cluster-plan";
import { diffHost } from "./drift";
import { clusterHealth } from "./health";
import { holdBackUnready, realServerNotReady } from "./hold-back";
import { nextOwnership, sameOwnership } from "./ownership";
import { preflightHost } from "./preflight";
import { applyPlan, blankCluster } from "./testing/cluster";

const parsed = parseCluster(labLikeSpec());
if (!parsed.ok) throw new Error("spec");
const desired = desiredClusterState(parsed.cluster);
const host = (name: string) => desired.hosts.find((h) => h.host === name)!;
const blank = blankCluster(desired);
const applied = applyPlan(planCluster(desired, blank), blank);

const N = 20_000;
/** 10.a.b.c for i, distinct for i < 2^24. */
const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const many = <T>(make: (i: number) => T): T[] => Array.from({ length: N }, (_, i) => make(i));

/** A generous bound: the linear code takes a small fraction of it, the quadratic code many times it. */
const budgetMs = 2_000;
function timed<T>(what: string, fn: () => T): T {
  const started = performance.now();
  const result = fn();
  const ms = performance.now() - started;
  if (ms > budgetMs) throw new Error(`${what} took ${ms.toFixed(0)} ms with ${N} items from the host (budget ${budgetMs} ms)`);
  return result;
}

/** The applied director, and besides: N addresses, N destinations under a service of its own, N routes, and a record that owns them all. */
function crowdedDirector(): ObservedHostState {
  const seen = structuredClone(applied.get("director")!);
  const extra: InterfaceAddress[] = many((i) => ({ interface: "eth0", address: address(i), prefix: 32 }));
  const service = "tcp:198.51.100.9:8080";
  const destinations: (DestinationState & { activeConnections: number; inactiveConnections: number })[] = many((i) => ({
    service,
    address: address(i),
    port: 8080,
    forwarding: "dr",
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
    activeConnections: 0,
    inactiveConnections: 0,
  }));
  const routes: RouteLookup[] = many((i) => ({ destination: address(i), device: "eth0", gateway: null, source: null }));
  seen.addresses.push(...extra);
  seen.ipvs.services.push({ protocol: "tcp", family: 4, address: "198.51.100.9", port: 8080, fwmark: 0, scheduler: "rr", flags: [], persistence: null });
  seen.ipvs.destinations.push(...destinations);
  seen.routes.push(...routes);
  seen.ownership = {
    ...seen.ownership!,
    addresses: [...seen.ownership!.addresses, ...extra.map(addressKey)],
    services: [...seen.ownership!.services, service],
    destinations: [...seen.ownership!.destinations, ...destinations.map(destinationKey)],
    files: [...seen.ownership!.files, ...many((i) => `/etc/lvs-dr/old-${i}`)],
  };
  return seen;
}

describe("lists from a host, planned in linear time", () => {
  it("a director with 20,000 addresses, destinations and routes, all recorded as its own, against a spec of a few", () => {
    const director = host("director");
    const seen = crowdedDirector();
    const diff = timed("diffHost", () => diffHost(director, seen));
    // Owned and no longer wanted: every one of them goes, and nothing else.
    expect(diff.addresses.unexpected).toHaveLength(N);
    expect(diff.services.unexpected.map((s) => s.port)).toEqual([8080]);
    expect(diff.destinations.unexpected).toHaveLength(N);
    expect(diff.addresses.missing).toEqual([]);
    const plan = timed("planClusterHost", () => planClusterHost(director, seen));
    expect(plan.waves.flatMap((w) => w.steps).filter((s) => s.op === "remove-address")).toHaveLength(N);
    timed("preflightHost", () => preflightHost(director, seen));
    timed("nextOwnership", () => sameOwnership(nextOwnership(director, seen, true), seen.ownership));
    timed("clusterHealth", () => clusterHealth(desired, new Map([["director", seen]])));
    timed("holdBackUnready", () => holdBackUnready(director, seen, new Map(many((i) => [address(i), { realServer: `rs${i}`, reason: "not ready" }]))));
  });

  it("a real server with 20,000 addresses on lo is judged ready in linear time", () => {
    const rs1 = host("rs1");
    const seen = structuredClone(applied.get("rs1")!);
    seen.addresses.unshift(...many((i) => ({ interface: "lo", address: address(i), prefix: 32 })));
    expect(timed("realServerNotReady", () => realServerNotReady(rs1, seen))).toBeNull();
    expect(timed("planClusterHost", () => planClusterHost(rs1, seen)).waves).toEqual([]);
  });
});

describe("names from a host that an object would answer for itself", () => {
  const rs1 = host("rs1");

  it("a recorded sysctl or file named constructor, toString or __proto__ is not taken as present", () => {
    const seen = structuredClone(applied.get("rs1")!);
    seen.ownership = {
      ...seen.ownership!,
      sysctls: { ...seen.ownership!.sysctls, constructor: "0", toString: "1" },
      files: [...seen.ownership!.files, "constructor", "__proto__"],
    };
    const diff = diffHost(rs1, seen);
    // Not observed (a plain object would answer `constructor` with Object): nothing to restore, nothing to remove.
    expect(diff.sysctls.unexpected).toEqual([]);
    expect(diff.files.unexpected).toEqual([]);
    expect(diff.drift.clean).toBe(true);
  });

  it("observed sysctls named that way are compared as values, and recorded originals keep them", () => {
    const seen = structuredClone(applied.get("rs1")!);
    const sysctls: Record<string, string | null> = Object.create(null);
    Object.assign(sysctls, seen.sysctls);
    sysctls["__proto__"] = "5";
    sysctls["constructor"] = "6";
    seen.sysctls = sysctls;
    const owned = Object.create(null) as Record<string, string>;
    Object.assign(owned, seen.ownership!.sysctls);
    owned["__proto__"] = "1";
    owned["constructor"] = "2";
    seen.ownership = { ...seen.ownership!, sysctls: owned };
    const diff = diffHost(rs1, seen);
    expect(diff.sysctls.unexpected).toEqual([
      { key: "__proto__", original: "1", actual: "5" },
      { key: "constructor", original: "2", actual: "6" },
    ]);
    // The record kept while they are released still names both, with their originals.
    const record = nextOwnership(rs1, seen, true)!;
    expect(Object.entries(record.sysctls)).toEqual(
      expect.arrayContaining([
        ["__proto__", "1"],
        ["constructor", "2"],
      ]),
    );
    expect(sameOwnership(record, seen.ownership)).toBe(true);
  });
});
