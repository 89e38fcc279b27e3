/** What the lab benchmarks share: the lab cluster with N real servers, and a timer. */
import { LAB_ADDRESSES } from "../lab";
import { parseCluster } from "../src/config/load";
import type { Cluster, ClusterInput } from "../src/config/schema";

/** The lab cluster: one director, N real servers, one TCP service on the VIP; rs1 at `weight`. */
export function labSpec(n: number, weight = 1): Cluster {
  const realServers = Array.from({ length: n }, (_, i) => ({ name: `rs${i + 1}`, rip: LAB_ADDRESSES.realServer(i + 1), interface: "eth0", gateway: LAB_ADDRESSES.routerA }));
  const input: ClusterInput = {
    name: "lab",
    connectionDefaults: { user: "root", privateKeyPath: ".lab/id_ed25519", knownHostsFile: ".lab/known_hosts" },
    directors: [{ name: "director", interface: "eth0", dip: `${LAB_ADDRESSES.director}/24` }],
    realServers,
    virtualServices: [{ name: "http", vip: LAB_ADDRESSES.vip, protocol: "tcp", port: 80, scheduler: "rr", realServers: realServers.map((r, i) => ({ name: r.name, weight: i === 0 ? weight : 1 })) }],
    drain: { timeoutSeconds: 0, pollSeconds: 1 },
  };
  const parsed = parseCluster(input);
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return parsed.cluster;
}

/** Seconds that `fn` took. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
