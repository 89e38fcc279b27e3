/** Helpers for planner tests: blank hosts for a cluster, and a whole plan applied to simulated hosts. */
import type { DesiredClusterState } from "../../model/desired";
import type { ObservedHostState } from "../../model/host-state";
import type { ClusterPlan } from "../cluster-plan";
import { applySteps, blankHost, observe } from "./simulated-host";

export function blankCluster(desired: DesiredClusterState): Map<string, ObservedHostState> {
  return new Map(desired.hosts.map((h) => [h.host, blankHost(h.host, { role: h.role, nic: h.interface, address: h.primaryAddress, prefix: h.primaryPrefix ?? 24 })]));
}

/** Runs the waves in order, every host of a wave before the next wave. */
export function applyPlan(plan: ClusterPlan, observed: ReadonlyMap<string, ObservedHostState>): Map<string, ObservedHostState> {
  const hosts = new Map(observed);
  for (const wave of plan.waves) {
    for (const hostPlan of wave.hosts) {
      const before = hosts.get(hostPlan.host);
      if (!before) throw new Error(`no host ${hostPlan.host}`);
      hosts.set(hostPlan.host, applySteps(before, hostPlan.steps, hostPlan.expectedIpvsFingerprint));
    }
  }
  return new Map([...hosts].map(([k, v]) => [k, observe(v)]));
}
