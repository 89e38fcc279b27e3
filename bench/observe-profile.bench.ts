/**
 * `sudo npm run bench:profile` (N from BENCH_N, default 10): where the drift check's time goes
 * beyond the floor, by role. Brings the lab up with N real servers, applies once, then times the
 * floor and the drift check for all hosts, the real servers only and the director only;
 * medians of BENCH_RUNS (5) rounds.
 */
import { labDown, labUp } from "../lab";
import type { Cluster } from "../src/config/schema";
import { desiredClusterState, type HostTarget } from "../src/model/desired";
import type { ClusterRun } from "../src/ops/engine";
import { floor as floorOf, labSpec, timed, withRun as withClusterRun } from "./common";
import { median } from "./report";

const n = Number(process.env.BENCH_N ?? 10);
const runs = Number(process.env.BENCH_RUNS ?? 5);
const concurrency = 32;

const withRun = (cluster: Cluster, fn: (run: ClusterRun) => Promise<unknown>, hosts?: string[]) => withClusterRun(cluster, fn, concurrency, hosts);
const floor = (targets: HostTarget[]) => floorOf(targets, concurrency);

async function main(): Promise<void> {
  await labDown();
  await labUp({ realServers: Math.max(3, n) });
  const cluster = labSpec(n);
  const desired = desiredClusterState(cluster);
  const realServers = desired.hosts.filter((h) => h.role === "real-server").map((h) => h.host);
  await withRun(cluster, (run) => run.apply());
  const cases: Record<string, () => Promise<unknown>> = {
    "floor, all hosts": () => floor(desired.targets),
    "floor, real servers only": () => floor(desired.targets.filter((t) => t.role !== "director")),
    "floor, director only": () => floor(desired.targets.filter((t) => t.role === "director")),
    "drift check, all hosts": () => withRun(cluster, (run) => run.drift()),
    "drift check, real servers only": () => withRun(cluster, (run) => run.drift(), realServers),
    "drift check, director only": () => withRun(cluster, (run) => run.drift(), ["director"]),
  };
  const seconds: Record<string, number[]> = {};
  for (let r = 0; r < runs; r++) for (const [label, fn] of Object.entries(cases)) (seconds[label] ??= []).push(await timed(fn));
  console.log(`N=${n}, medians of ${runs}, seconds:`);
  for (const [label, xs] of Object.entries(seconds)) console.log(`  ${label}: ${median(xs).toFixed(2)} (${xs.map((x) => x.toFixed(2)).join(" ")})`);
  await labDown();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
