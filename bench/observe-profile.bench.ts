/**
 * `sudo npm run bench:profile` (N from BENCH_N, default 10): where the drift check's time goes
 * beyond the floor, by role. Brings the lab up with N real servers, applies once, then times the
 * floor and the drift check for all hosts, the real servers only and the director only, plus
 * connecting alone; medians of BENCH_RUNS (5) rounds.
 */
import { resolve } from "node:path";
import { labDown, labUp } from "../lab";
import type { Cluster } from "../src/config/schema";
import { desiredClusterState, type HostTarget } from "../src/model/desired";
import { ClusterRun } from "../src/ops/engine";
import { runOnHosts } from "../src/transport/pool";
import { SshTransport, type SshSession } from "../src/transport/ssh";
import { labSpec, timed } from "./common";
import { median } from "./report";

const REPO = resolve(__dirname, "../..");
const n = Number(process.env.BENCH_N ?? 10);
const runs = Number(process.env.BENCH_RUNS ?? 5);
const concurrency = 32;

async function withRun(cluster: Cluster, fn: (run: ClusterRun) => Promise<unknown>, hosts?: string[]): Promise<void> {
  const run = new ClusterRun(cluster, { transport: new SshTransport(), connectOptions: { baseDir: REPO }, concurrency, connectConcurrency: concurrency, ...(hosts ? { hosts } : {}) });
  try {
    await fn(run);
  } finally {
    await run.close();
  }
}

async function floor(targets: HostTarget[]): Promise<void> {
  const transport = new SshTransport();
  await runOnHosts(targets, concurrency, async (t) => {
    const session = (await transport.connect(t.name, t.connection, { baseDir: REPO })) as SshSession;
    try {
      await session.runCommand("true");
    } finally {
      await session.close();
    }
  });
}

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
