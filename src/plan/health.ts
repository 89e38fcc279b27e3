/**
 * Health as a director sees it now: per virtual service each real server's state and weight in
 * its IPVS table, and per failover group which director holds the VIPs (the master). Pure: read
 * from observations, for `lvsdr status`. Health is never drift (see drift.ts).
 */
import type { DesiredClusterState } from "../model/desired";
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import { destinationKey, serviceKey } from "../model/keys";

export type RealServerHealth = "up" | "down" | "quiesced" | "absent";

export interface ServiceHealth {
  service: string;
  director: string;
  /** keepalived checks it, or the tool's static table holds it. */
  managedBy: "keepalived" | "lvs-dr";
  /** Whether the director has the service in its IPVS table at all. */
  present: boolean;
  realServers: {
    name: string | null;
    address: string;
    /** up: in with its weight; down: keepalived took it out (weight 0 or removed); quiesced: 0 in the spec. */
    health: RealServerHealth;
    weight: number | null;
    configuredWeight: number;
    activeConnections: number;
    inactiveConnections: number;
  }[];
  /** The sorry server, when the director is sending it the traffic now. */
  sorryServer: { name: string | null; address: string; active: boolean } | null;
}

export interface GroupHealth {
  group: string;
  vips: string[];
  /** The director holding the VIPs; null when none or several do. */
  master: string | null;
  holders: string[];
  directors: { name: string; priority: number; keepalivedRunning: boolean | null }[];
}

export interface ClusterHealth {
  services: ServiceHealth[];
  groups: GroupHealth[];
}

export function clusterHealth(desired: DesiredClusterState, observed: ReadonlyMap<string, ObservedHostState>): ClusterHealth {
  const names = new Map(desired.hosts.filter((h) => h.role === "real-server").flatMap((h) => h.ownAddresses.map((a) => [a.address, h.host] as const)));
  const services: ServiceHealth[] = [];
  const groups = new Map<string, GroupHealth>();
  for (const host of desired.hosts) {
    const seen = observed.get(host.host);
    if (host.role !== "director" || !seen) continue;
    const keepalived = new Map((host.keepalived?.virtualServers ?? []).map((v) => [serviceKey(v.service), v]));
    const table = new Map(seen.ipvs.destinations.map((d) => [destinationKey(d), d]));
    const present = new Set(seen.ipvs.services.map(serviceKey));
    // Grouped by service once: a scan of every destination per service is quadratic in the spec.
    const destinationsOf = new Map<string, DesiredHostState["destinations"]>();
    for (const d of host.destinations) {
      const list = destinationsOf.get(d.service);
      if (list) list.push(d);
      else destinationsOf.set(d.service, [d]);
    }
    for (const svc of host.services) {
      const key = serviceKey(svc);
      const vs = keepalived.get(key);
      const realServers = (destinationsOf.get(key) ?? []).map((d) => {
        const now = table.get(destinationKey(d));
        const health: RealServerHealth = d.weight === 0 ? "quiesced" : !now ? (vs ? "down" : "absent") : now.weight === 0 && vs ? "down" : "up";
        return {
          name: names.get(d.address) ?? null,
          address: d.address,
          health,
          weight: now?.weight ?? null,
          configuredWeight: d.weight,
          activeConnections: now?.activeConnections ?? 0,
          inactiveConnections: now?.inactiveConnections ?? 0,
        };
      });
      const sorry = vs?.sorryServer;
      services.push({
        service: key,
        director: host.host,
        managedBy: vs ? "keepalived" : "lvs-dr",
        present: present.has(key),
        realServers,
        sorryServer: sorry
          ? { name: names.get(sorry.address) ?? null, address: sorry.address, active: table.has(destinationKey({ service: key, address: sorry.address, port: sorry.port })) }
          : null,
      });
    }
    const vrrp = host.keepalived?.vrrp;
    if (vrrp) {
      const group = groups.get(vrrp.group) ?? { group: vrrp.group, vips: vrrp.vips.map((v) => v.address), master: null, holders: [], directors: [] };
      group.directors.push({ name: host.host, priority: vrrp.priority, keepalivedRunning: seen.keepalived?.running ?? null });
      const held = new Set(seen.addresses.map((a) => `${a.interface}/${a.address}`));
      if (vrrp.vips.length > 0 && vrrp.vips.every((v) => held.has(`${v.interface}/${v.address}`))) group.holders.push(host.host);
      groups.set(vrrp.group, group);
    }
  }
  for (const g of groups.values()) g.master = g.holders.length === 1 ? g.holders[0]! : null;
  return { services, groups: [...groups.values()] };
}
