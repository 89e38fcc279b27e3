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
  /** Destinations left out because their real server, outside a run limited by `hosts`, is not ready. */
  heldBack: HeldBack[];
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

/** The cluster plan from its hosts' plans (`planClusterHost`, one per host, in the spec's order). */
export function clusterPlanOf(desired: DesiredClusterState, hosts: HostPlan[], heldBack: HeldBack[] = []): ClusterPlan {
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
  };
}

/**
 * A failover group's VIPs held by exactly one of its directors is health (that one is master).
 * Held by none, the VIP is down; held by two or more, both answer ARP (split brain): either is
 * drift, reported on every director of the group. A group only partly observed is not judged.
 */
function checkFailoverGroups(hosts: HostPlan[]): void {
  const groups = new Map<string, HostPlan[]>();
  for (const h of hosts) if (h.vrrp) groups.set(h.vrrp.group, [...(groups.get(h.vrrp.group) ?? []), h]);
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
