/**
 * Graceful removal of real servers from a director: weight 0 first (no new connections),
 * wait until active connections reach 0 or the drain timeout passes, then delete. UDP has no
 * connection end to wait for, so UDP destinations are removed without waiting.
 */
import type { DestinationState } from "../model/host-state";
import type { Step } from "../model/steps";

export interface DrainSteps {
  /** Set weight 0; runs with the other additions, before any wait. */
  drain: Step[];
  wait: Step[];
  remove: Step[];
}

export function drainSteps(
  leaving: (DestinationState & { activeConnections?: number })[],
  servicesRemoved: Set<string>,
  options: { timeoutSeconds: number; pollSeconds: number },
): DrainSteps {
  const drain: Step[] = [];
  const waitFor: DestinationState[] = [];
  const remove: Step[] = [];
  for (const d of leaving) {
    const {
      activeConnections: _active,
      inactiveConnections: _inactive,
      ...destination
    } = d as DestinationState & {
      activeConnections?: number;
      inactiveConnections?: number;
    };
    if (destination.weight !== 0) drain.push({ op: "drain-destination", destination });
    if (needsWait(destination)) waitFor.push(destination);
    // Deleting the service deletes its destinations; no separate step.
    if (!servicesRemoved.has(destination.service)) remove.push({ op: "remove-destination", destination });
  }
  const wait: Step[] =
    waitFor.length > 0 && options.timeoutSeconds > 0
      ? [{ op: "wait-drained", destinations: waitFor, timeoutSeconds: options.timeoutSeconds, pollSeconds: options.pollSeconds }]
      : [];
  return { drain, wait, remove };
}

/** kube-proxy's rule: connection-oriented destinations drain; UDP ones go at once. */
export function needsWait(d: DestinationState): boolean {
  return !d.service.startsWith("udp:");
}
