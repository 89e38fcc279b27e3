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
import { planHost, type HostPlan } from "./host-plan";

export interface ClusterPlan {
  cluster: string;
  hosts: HostPlan[];
  waves: { wave: Wave; hosts: HostWavePlan[] }[];
  drift: HostDrift[];
  /** True when no host needs any step. */
  empty: boolean;
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
export function clusterPlanOf(desired: DesiredClusterState, hosts: HostPlan[]): ClusterPlan {
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
  };
}
