/**
 * The cluster plan: every host's plan, grouped in waves that run one after another
 * (real servers ready -> directors -> real servers released), so a director registers a
 * real server only once it is ready and lets go of it before it is torn down.
 */
import type { DesiredClusterState } from "../model/desired";
import { releasedHostState } from "../model/desired";
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { waveOrder, type HostWavePlan, type Wave } from "../model/steps";
import type { HostDrift } from "./drift";
import type { HeldBack } from "./hold-back";
import { planHost, type HostPlan } from "./host-plan";

export interface ClusterPlan {
  cluster: string;
  hosts: HostPlan[];
  waves: { wave: Wave; hosts: HostWavePlan[] }[];
  drift: HostDrift[];
  /** True when no host needs any step. */
  empty: boolean;
  /** Destinations left out because their real server is not ready: outside a run limited by `hosts`, or not reached. */
  heldBack: HeldBack[];
  /** Hosts that could not be observed, and why: the plan leaves them as they are. */
  notReached: NotReached[];
  /** Host waves left out because a host they depend on was not reached. */
  withheld: Withheld[];
}

/** A host a run could not observe (not reachable, host key refused, ...), and why. */
export interface NotReached {
  host: string;
  message: string;
}

/** A host's wave left out of a plan, and why. */
export interface Withheld {
  host: string;
  wave: Wave;
  reason: string;
}

export interface PlanOptions {
  /** Plan the tool's complete withdrawal from every host instead of the spec's state. */
  destroy?: boolean;
}

/** One host's part of the cluster plan: it depends on that host's own observation only. */
export function planClusterHost(host: DesiredHostState, seen: ObservedHostState, options: PlanOptions = {}): HostPlan {
  return planHost(options.destroy ? releasedHostState(host) : host, seen);
}

export function planCluster(desired: DesiredClusterState, observed: ReadonlyMap<string, ObservedHostState>, options: PlanOptions = {}): ClusterPlan {
  return clusterPlanOf(
    desired,
    desired.hosts.map((host) => {
      const seen = observed.get(host.host);
      if (!seen) throw new Error(`no observation of host ${host.host}`);
      return planClusterHost(host, seen, options);
    }),
  );
}

/**
 * The cluster plan from its hosts' plans (`planClusterHost`, one per host reached, in the spec's
 * order). With a director not reached, no real server is released: taking a VIP off `lo` while
 * that director may still send it traffic would drop the traffic. What real servers not reached
 * mean for their directors is decided before, by holding them back (`holdBackUnready`).
 */
export function clusterPlanOf(desired: DesiredClusterState, planned: HostPlan[], heldBack: HeldBack[] = [], notReached: NotReached[] = []): ClusterPlan {
  const directors = new Set(desired.hosts.filter((h) => h.role === "director").map((h) => h.host));
  const directorsDown = notReached.filter((n) => directors.has(n.host)).map((n) => n.host);
  const withheld: Withheld[] = [];
  const hosts = directorsDown.length
    ? planned.map((h) => {
        const release = h.waves.find((w) => w.wave === "release-real-servers");
        if (!release) return h;
        withheld.push({
          host: h.host,
          wave: release.wave,
          reason: `director${directorsDown.length > 1 ? "s" : ""} ${directorsDown.join(", ")} not reached: ${h.host} keeps what it holds until ${directorsDown.length > 1 ? "they let" : "it lets"} go of it`,
        });
        return { ...h, waves: h.waves.filter((w) => w !== release) };
      })
    : planned;
  checkFailoverGroups(hosts);
  const waves = waveOrder.map((wave) => ({
    wave,
    hosts: hosts.flatMap((h) => h.waves.filter((w) => w.wave === wave)),
  }));
  return {
    cluster: desired.cluster,
    hosts,
    waves: waves.filter((w) => w.hosts.length > 0),
    drift: hosts.map((h) => h.diff.drift),
    empty: hosts.every((h) => h.waves.length === 0),
    heldBack,
    notReached,
    withheld,
  };
}

/**
 * A failover group's VIPs held by exactly one of its directors is health (that one is master).
 * Held by none, the VIP is down; held by two or more, both answer ARP (split brain): either is
 * drift, reported on every director of the group. A group only partly observed is not judged.
 */
function checkFailoverGroups(hosts: HostPlan[]): void {
  const groups = new Map<string, HostPlan[]>();
  for (const h of hosts) {
    if (!h.vrrp) continue;
    const members = groups.get(h.vrrp.group);
    if (members) members.push(h);
    else groups.set(h.vrrp.group, [h]);
  }
  for (const [group, members] of groups) {
    if (members.length !== members[0]!.vrrp!.directors) continue;
    const vips = members[0]!.vrrp!.vips;
    for (const vip of vips) {
      const holders = members.filter((m) => m.vrrp!.held.includes(vip)).map((m) => m.host);
      if (holders.length === 1) continue;
      for (const m of members) {
        m.diff.drift.items.push({
          host: m.host,
          kind: "vrrp",
          key: `${group}/${vip}`,
          status: holders.length === 0 ? "missing" : "changed",
          expected: "held by one director of the group",
          actual: holders.length === 0 ? "held by none" : `held by ${holders.join(" and ")} (split brain)`,
          fields: [{ field: "holders", expected: "1", actual: String(holders.length) }],
        });
        m.diff.drift.clean = false;
      }
    }
  }
}
