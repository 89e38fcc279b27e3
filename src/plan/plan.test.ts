import fc from "fast-check";
import { parseCluster } from "../config/load";
import { schedulers, type ClusterInput } from "../config/schema";
import { desiredClusterState } from "../model/desired";
import type { ObservedHostState } from "../model/host-state";
import { destinationKey } from "../model/keys";
import type { Step } from "../model/steps";
import { labLikeSpec } from "../testing/specs";
import { clusterPlanOf, planCluster, planClusterHost, type ClusterPlan } from "./cluster-plan";
import { applyPlan, blankCluster } from "./testing/cluster";
import { observe, SimulatedKernelError } from "./testing/simulated-host";

function desiredOf(spec: ClusterInput) {
  const parsed = parseCluster(spec);
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return desiredClusterState(parsed.cluster);
}

function stepsOf(plan: ClusterPlan, host: string, wave?: string): Step[] {
  return plan.waves.filter((w) => wave === undefined || w.wave === wave).flatMap((w) => w.hosts.filter((h) => h.host === host).flatMap((h) => h.steps));
}

function ops(steps: Step[]): string[] {
  return steps.map((s) => s.op);
}

function converge(spec: ClusterInput, start?: Map<string, ObservedHostState>) {
  const desired = desiredOf(spec);
  const before = start ?? blankCluster(desired);
  const plan = planCluster(desired, before);
  const after = applyPlan(plan, before);
  return { desired, plan, after };
}

describe("planning a fresh cluster", () => {
  const { plan, after, desired } = converge(labLikeSpec());

  it("readies real servers first, then the director; nothing to release", () => {
    expect(plan.waves.map((w) => w.wave)).toEqual(["prepare-real-servers", "directors"]);
    expect(plan.waves[0]?.hosts.map((h) => h.host)).toEqual(["rs1", "rs2", "rs3"]);
  });

  it("sets ARP sysctls on a real server before the VIP goes on lo", () => {
    const steps = stepsOf(plan, "rs1");
    // The record first: a script that stops halfway leaves the originals recorded.
    expect(ops(steps)).toEqual(["record-ownership", ...Array(6).fill("set-sysctl"), "add-address", "write-file", "write-file", "write-file", "write-file"]);
    expect(steps.find((s) => s.op === "add-address")).toMatchObject({ address: { interface: "lo", address: "198.51.100.5", prefix: 32 } });
    const keys = steps.flatMap((s) => (s.op === "set-sysctl" ? [`${s.sysctl.key}=${s.sysctl.value}`] : []));
    expect(keys).toEqual([
      "net/ipv4/conf/all/arp_ignore=1",
      "net/ipv4/conf/all/arp_announce=2",
      "net/ipv4/conf/lo/arp_ignore=1",
      "net/ipv4/conf/lo/arp_announce=2",
      "net/ipv4/conf/eth0/arp_ignore=1",
      "net/ipv4/conf/eth0/arp_announce=2",
    ]);
  });

  it("builds the IPVS table on the director before it takes the VIP", () => {
    const steps = stepsOf(plan, "director");
    // The IPVS kernel settings first (directors[].ipvs defaults), so the table is built under them.
    expect(ops(steps)).toEqual([
      "record-ownership",
      "set-sysctl",
      "set-sysctl",
      "set-ipvs-timeouts",
      "add-service",
      "add-destination",
      "add-destination",
      "add-destination",
      "add-address",
      "write-file",
      "write-file",
      "write-file",
      "write-file",
      "write-file",
    ]);
    expect(steps.find((s) => s.op === "add-address")).toMatchObject({ address: { interface: "eth0", address: "198.51.100.5", prefix: 32 } });
  });

  it("converges: the plan after applying is empty and drift is clean", () => {
    const again = planCluster(desired, after);
    expect(again.empty).toBe(true);
    expect(again.drift.every((d) => d.clean && d.items.length === 0)).toBe(true);
  });
});

describe("drift after hand changes", () => {
  const { desired, after } = converge(labLikeSpec());
  const changed = new Map(after);
  const director = structuredClone(changed.get("director")!);
  director.ipvs.destinations = director.ipvs.destinations.filter((d) => d.address !== "198.51.100.11");
  director.ipvs.services.push({ protocol: "tcp", family: 4, address: "198.51.100.9", port: 8443, fwmark: 0, scheduler: "wlc", flags: [], persistence: null });
  changed.set("director", observe(director));
  const rs1 = structuredClone(changed.get("rs1")!);
  rs1.sysctls["net/ipv4/conf/all/arp_ignore"] = "0";
  changed.set("rs1", rs1);
  const rs2 = structuredClone(changed.get("rs2")!);
  rs2.addresses = rs2.addresses.filter((a) => a.interface !== "lo" || a.address !== "198.51.100.5");
  changed.set("rs2", rs2);
  const plan = planCluster(desired, changed);

  it("names each change with expected and actual values", () => {
    const items = plan.drift.flatMap((d) => d.items.map((i) => ({ host: i.host, kind: i.kind, key: i.key, status: i.status, expected: i.expected, actual: i.actual })));
    expect(items).toEqual(
      expect.arrayContaining([
        {
          host: "director",
          kind: "destination",
          key: "tcp:198.51.100.5:80/198.51.100.11:80",
          status: "missing",
          expected: "tcp:198.51.100.5:80/198.51.100.11:80 dr weight 1",
          actual: null,
        },
        { host: "director", kind: "service", key: "tcp:198.51.100.9:8443", status: "unmanaged", expected: null, actual: "tcp:198.51.100.9:8443 scheduler wlc" },
        { host: "rs1", kind: "sysctl", key: "net/ipv4/conf/all/arp_ignore", status: "changed", expected: "1", actual: "0" },
        { host: "rs2", kind: "address", key: "lo/198.51.100.5/32", status: "missing", expected: "198.51.100.5/32 on lo", actual: null },
      ]),
    );
    expect(items).toHaveLength(4);
    expect(plan.drift.find((d) => d.host === "rs3")?.clean).toBe(true);
    expect(plan.drift.find((d) => d.host === "director")?.clean).toBe(false);
  });

  it("repairs the drift and never touches the unmanaged service", () => {
    const all = plan.waves.flatMap((w) => w.hosts.flatMap((h) => h.steps));
    expect(JSON.stringify(all)).not.toContain("198.51.100.9");
    const repaired = applyPlan(plan, changed);
    const again = planCluster(desired, repaired);
    expect(again.empty).toBe(true);
    expect(again.drift.every((d) => d.clean)).toBe(true);
    expect(repaired.get("director")!.ipvs.services.map((s) => s.port)).toContain(8443);
  });

  it("refuses to apply a director plan made from a stale view of the table", () => {
    const directorPlan = plan.waves.find((w) => w.wave === "directors")!.hosts[0]!;
    const moved = new Map(changed);
    const d = structuredClone(moved.get("director")!);
    d.ipvs.services = d.ipvs.services.filter((s) => s.port !== 8443);
    moved.set("director", d);
    expect(() => applyPlan({ ...plan, waves: [{ wave: "directors", hosts: [directorPlan] }] }, moved)).toThrow(SimulatedKernelError);
  });
});

describe("removing a real server from a service", () => {
  const spec = labLikeSpec();
  const { after } = converge(spec);
  const smaller = labLikeSpec({
    virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }] }],
  });
  const { plan, after: final, desired } = converge(smaller, after);

  it("drains (weight 0), waits, then deletes at the director; then releases the real server", () => {
    expect(plan.waves.map((w) => w.wave)).toEqual(["directors", "release-real-servers"]);
    expect(ops(stepsOf(plan, "director"))).toEqual(["drain-destination", "wait-drained", "remove-destination", "write-file", "record-ownership"]);
    const drain = stepsOf(plan, "director")[0];
    expect(drain).toMatchObject({ op: "drain-destination", destination: { address: "198.51.100.12", weight: 1 } });
    expect(ops(stepsOf(plan, "rs3"))).toEqual(["remove-address", "write-file", "record-ownership"]);
    expect(stepsOf(plan, "rs1")).toEqual([]);
  });

  it("keeps rs3's ARP settings while it is still listed as a real server", () => {
    expect(final.get("rs3")!.sysctls["net/ipv4/conf/all/arp_ignore"]).toBe("1");
    expect(final.get("rs3")!.addresses.some((a) => a.interface === "lo" && a.address === "198.51.100.5")).toBe(false);
    expect(planCluster(desired, final).empty).toBe(true);
  });

  it("does not wait for UDP destinations (no connection end to wait for)", () => {
    const udp = (members: string[]) =>
      labLikeSpec({ virtualServices: [{ name: "dns", vip: "198.51.100.5", protocol: "udp", port: 53, realServers: members.map((name) => ({ name })) }] });
    const { after: udpAfter } = converge(udp(["rs1", "rs2"]));
    const { plan: udpPlan } = converge(udp(["rs1"]), udpAfter);
    expect(ops(stepsOf(udpPlan, "director"))).toEqual(["drain-destination", "remove-destination", "write-file", "record-ownership"]);
  });
});

describe("destroy", () => {
  it("puts every host back as it was before the first apply", () => {
    const { desired, after } = converge(labLikeSpec());
    const blank = blankCluster(desired);
    const plan = planCluster(desired, after, { destroy: true });
    expect(plan.waves.map((w) => w.wave)).toEqual(["directors", "release-real-servers"]);
    const rsSteps = stepsOf(plan, "rs1");
    const lastRemoveAddress = rsSteps.map((s) => s.op).lastIndexOf("remove-address");
    const firstRestore = rsSteps.map((s) => s.op).indexOf("restore-sysctl");
    expect(lastRemoveAddress).toBeGreaterThanOrEqual(0);
    expect(lastRemoveAddress).toBeLessThan(firstRestore);
    const destroyed = applyPlan(plan, after);
    for (const [host, before] of blank) {
      const now = destroyed.get(host)!;
      expect(now.addresses).toEqual(before.addresses);
      expect(now.sysctls).toEqual(before.sysctls);
      expect(now.ipvs.services).toEqual([]);
      expect(Object.values(now.files).every((f) => f === null)).toBe(true);
      expect(now.ownership).toBeNull();
    }
  });
});

// ---- properties over generated clusters ------------------------------------------------------

const arbSpec: fc.Arbitrary<ClusterInput> = fc
  .record({
    rsCount: fc.integer({ min: 0, max: 5 }),
    services: fc.array(
      fc.record({
        vip: fc.integer({ min: 3, max: 6 }),
        kind: fc.constantFrom("tcp", "udp", "fwmark"),
        port: fc.constantFrom(80, 443, 53),
        scheduler: fc.constantFrom(...schedulers),
        persistence: fc.option(fc.integer({ min: 1, max: 3600 }), { nil: undefined }),
        members: fc.array(fc.record({ idx: fc.integer({ min: 0, max: 4 }), weight: fc.integer({ min: 0, max: 5 }), upper: fc.constantFrom(0, 100) }), { maxLength: 5 }),
      }),
      { maxLength: 4 },
    ),
  })
  .map(({ rsCount, services }) => {
    const realServers = Array.from({ length: rsCount }, (_, i) => ({ name: `rs${i + 1}`, rip: `198.51.100.${10 + i}`, interface: "eth0", gateway: "198.51.100.1" }));
    const seen = new Set<string>();
    const virtualServices = services.flatMap((s, i) => {
      const key = s.kind === "fwmark" ? `fw${i}` : `${s.kind}:${s.vip}:${s.port}`;
      if (seen.has(key)) return [];
      seen.add(key);
      const members = [...new Map(s.members.filter((m) => m.idx < rsCount).map((m) => [m.idx, m])).values()];
      return [
        {
          name: `svc${i}`,
          vip: `198.51.100.${s.vip}`,
          ...(s.kind === "fwmark" ? { fwmark: i + 1 } : { protocol: s.kind as "tcp" | "udp", port: s.port }),
          scheduler: s.scheduler,
          ...(s.persistence ? { persistence: { timeout: s.persistence } } : {}),
          realServers: members.map((m) => ({ name: `rs${m.idx + 1}`, weight: m.weight, ...(m.upper ? { upperThreshold: m.upper, lowerThreshold: 10 } : {}) })),
        },
      ];
    });
    return labLikeSpec({ realServers, virtualServices });
  });

type HandChange = { kind: "drop-destination" | "arp-ignore-0" | "drop-lo-vip" | "unmanaged-service" | "weight"; pick: number };
const arbHandChanges = fc.array(
  fc.record({ kind: fc.constantFrom("drop-destination", "arp-ignore-0", "drop-lo-vip", "unmanaged-service", "weight"), pick: fc.nat() }) as fc.Arbitrary<HandChange>,
  { maxLength: 4 },
);

function handChange(hosts: Map<string, ObservedHostState>, change: HandChange): void {
  const names = [...hosts.keys()];
  const name = names[change.pick % names.length]!;
  const host = structuredClone(hosts.get(name)!);
  switch (change.kind) {
    case "drop-destination":
      host.ipvs.destinations.splice(change.pick % Math.max(1, host.ipvs.destinations.length), 1);
      break;
    case "weight": {
      const d = host.ipvs.destinations[change.pick % Math.max(1, host.ipvs.destinations.length)];
      if (d) d.weight = (d.weight + 1) % 7;
      break;
    }
    case "arp-ignore-0":
      host.sysctls["net/ipv4/conf/all/arp_ignore"] = "0";
      break;
    case "drop-lo-vip":
      host.addresses = host.addresses.filter((a) => a.interface !== "lo" || a.address === "127.0.0.1");
      break;
    case "unmanaged-service":
      if (host.ipvs.status === "loaded" && !host.ipvs.services.some((s) => s.port === 9999)) {
        host.ipvs.services.push({ protocol: "tcp", family: 4, address: "198.51.100.9", port: 9999, fwmark: 0, scheduler: "rr", flags: [], persistence: null });
      }
      break;
  }
  hosts.set(name, observe(host));
}

function checkOrdering(plan: ClusterPlan, before: Map<string, ObservedHostState>): void {
  for (const wave of plan.waves) {
    for (const hostPlan of wave.hosts) {
      const o = ops(hostPlan.steps);
      if (wave.wave === "prepare-real-servers") {
        const lastSysctl = o.lastIndexOf("set-sysctl");
        const firstLoVip = hostPlan.steps.findIndex((s) => s.op === "add-address" && s.address.interface === "lo");
        if (firstLoVip >= 0) expect(lastSysctl).toBeLessThan(firstLoVip);
        expect(o).not.toContain("remove-address");
      }
      if (wave.wave === "release-real-servers") {
        const lastRemove = o.lastIndexOf("remove-address");
        const firstRestore = o.indexOf("restore-sysctl");
        if (firstRestore >= 0) expect(lastRemove).toBeLessThan(firstRestore);
      }
      if (wave.wave === "directors") {
        const observed = before.get(hostPlan.host)!;
        hostPlan.steps.forEach((s, i) => {
          if (s.op !== "remove-destination") return;
          const key = destinationKey(s.destination);
          const wasZero = observed.ipvs.destinations.find((d) => destinationKey(d) === key)?.weight === 0;
          const drained = hostPlan.steps.slice(0, i).some((p) => p.op === "drain-destination" && destinationKey(p.destination) === key);
          expect(wasZero || drained).toBe(true);
          if (!s.destination.service.startsWith("udp:")) {
            expect(hostPlan.steps.slice(0, i).some((p) => p.op === "wait-drained" && p.destinations.some((d) => destinationKey(d) === key))).toBe(true);
          }
        });
        const firstVip = o.indexOf("add-address");
        const lastAdd = Math.max(o.lastIndexOf("add-service"), o.lastIndexOf("add-destination"));
        if (firstVip >= 0) expect(lastAdd).toBeLessThan(firstVip);
      }
    }
  }
  const order = plan.waves.map((w) => w.wave);
  expect(
    [...order].sort((a, b) => ["prepare-real-servers", "directors", "release-real-servers"].indexOf(a) - ["prepare-real-servers", "directors", "release-real-servers"].indexOf(b)),
  ).toEqual(order);
}

/** The director may register a real server only once that server holds the VIP behind ARP suppression. */
function checkRealServersReadyBeforeDirector(plan: ClusterPlan, before: Map<string, ObservedHostState>, spec: ClusterInput): void {
  let hosts = new Map(before);
  for (const wave of plan.waves) {
    if (wave.wave === "directors") {
      for (const hostPlan of wave.hosts) {
        for (const step of hostPlan.steps) {
          if (step.op !== "add-destination") continue;
          const rs = spec.realServers?.find((r) => r.rip === step.destination.address);
          const state = hosts.get(rs!.name)!;
          expect(state.sysctls["net/ipv4/conf/all/arp_ignore"]).toBe("1");
          expect(state.sysctls["net/ipv4/conf/all/arp_announce"]).toBe("2");
        }
      }
    }
    hosts = applyPlan({ ...plan, waves: [wave] }, hosts);
  }
}

describe("planner properties", () => {
  it("validates every generated spec (the generator only makes valid clusters)", () => {
    fc.assert(
      fc.property(arbSpec, (spec) => expect(parseCluster(spec).ok).toBe(true)),
      { numRuns: 200 },
    );
  });

  it("applying the plan yields a state whose plan is empty, from any earlier state", () => {
    fc.assert(
      fc.property(arbSpec, arbSpec, arbHandChanges, (first, second, changes) => {
        const { after } = converge(first);
        // The second spec reuses host names, so it is the same cluster changed.
        const desired = desiredOf(second);
        const start = new Map<string, ObservedHostState>();
        const blank = blankCluster(desired);
        for (const [name, state] of blank) start.set(name, after.get(name) ?? state);
        for (const change of changes) handChange(start, change);
        const plan = planCluster(desired, start);
        checkOrdering(plan, start);
        checkRealServersReadyBeforeDirector(plan, start, second);
        const end = applyPlan(plan, start);
        const again = planCluster(desired, end);
        expect(again.empty).toBe(true);
        expect(again.drift.every((d) => d.clean)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("destroy after any apply leaves no managed item behind", () => {
    fc.assert(
      fc.property(arbSpec, (spec) => {
        const { desired, after } = converge(spec);
        const end = applyPlan(planCluster(desired, after, { destroy: true }), after);
        const blank = blankCluster(desired);
        for (const [name, state] of end) {
          expect(state.ownership).toBeNull();
          expect(state.addresses).toEqual(blank.get(name)!.addresses);
          expect(state.sysctls).toEqual(blank.get(name)!.sysctls);
          expect(state.ipvs.services).toEqual([]);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe("a plan is checked against the state it was made from", () => {
  const withDigests = (observed: Map<string, ObservedHostState>) =>
    new Map(
      [...observed].map(([name, s], i) => [
        name,
        { ...s, state: { interfaces: ["lo", "eth0"], sysctlKeys: [], files: [], addresses: [], sha256: i.toString(16).padStart(64, "0") } },
      ]),
    );

  it("each host's first script carries the digest observed; its later ones follow it and do not", () => {
    const { desired, after } = converge(labLikeSpec());
    // The VIP moves: real servers add the new one before the director, and let the old one go after it.
    const moved = labLikeSpec();
    moved.virtualServices![0]!.vip = "198.51.100.6";
    const seen = withDigests(after);
    const plan = planCluster(desiredOf(moved), seen);
    expect(plan.waves.map((w) => w.wave)).toEqual(["prepare-real-servers", "directors", "release-real-servers"]);
    for (const host of plan.hosts) {
      expect(host.waves.length).toBeGreaterThan(0);
      expect(host.waves[0]!.expectedState).toEqual(seen.get(host.host)!.state);
      for (const later of host.waves.slice(1)) expect(later.expectedState).toBeUndefined();
    }
    expect(plan.hosts.find((h) => h.host === "rs1")!.waves.map((w) => w.wave)).toEqual(["prepare-real-servers", "release-real-servers"]);
    // Without a digest (a drift check's observation), no script checks one.
    expect(
      planCluster(desired, blankCluster(desired))
        .waves.flatMap((w) => w.hosts)
        .every((h) => h.expectedState === undefined),
    ).toBe(true);
  });

  it("is plain data: a plan saved as JSON and read back is the same plan", () => {
    const { desired } = converge(labLikeSpec());
    const plan = planCluster(desired, withDigests(blankCluster(desired)));
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });
});

describe("a plan with hosts not reached", () => {
  it("releases no real server while a director was not reached, and says why for each", () => {
    const { after } = converge(labLikeSpec());
    const moved = labLikeSpec();
    moved.virtualServices![0]!.vip = "198.51.100.6";
    const desired = desiredOf(moved);
    const reached = desired.hosts.filter((h) => h.role === "real-server");
    const plan = clusterPlanOf(
      desired,
      reached.map((h) => planClusterHost(h, after.get(h.host)!)),
      [],
      [{ host: "director", message: "connect: refused" }],
    );
    // Real servers still take the new VIP (safe whatever the director does), and keep the old one.
    expect(plan.waves.map((w) => w.wave)).toEqual(["prepare-real-servers"]);
    expect(plan.withheld).toEqual(
      reached.map((h) => ({ host: h.host, wave: "release-real-servers", reason: `director director not reached: ${h.host} keeps what it holds until it lets go of it` })),
    );
    expect(plan.notReached).toEqual([{ host: "director", message: "connect: refused" }]);
    // With every director reached, the same real servers are released.
    const full = planCluster(desired, after);
    expect(full.waves.map((w) => w.wave)).toContain("release-real-servers");
    expect(full.withheld).toEqual([]);
  });
});

describe("a one-entry change", () => {
  it("changes that entry and the persisted rules, and does not write an ownership record that stays the same", () => {
    const { after } = converge(labLikeSpec());
    const heavier = labLikeSpec();
    heavier.virtualServices![0]!.realServers![0]!.weight = 5;
    const plan = planCluster(desiredOf(heavier), after);
    expect(ops(stepsOf(plan, "director"))).toEqual(["edit-destination", "write-file"]);
    expect(plan.waves.map((w) => w.wave)).toEqual(["directors"]);
  });
});
