/**
 * Host operations against the lab in scale mode: 1 director + N real servers (N = 10, 50, 100
 * by default). For each N, in alternation, several runs of:
 *   floor    - open one SSH session per host and run `true` (same library, same concurrency)
 *   observe  - the drift check: connect, one observe round trip per host, plan
 *   apply    - from scratch (the hosts were destroyed just before, untimed)
 *   no-op    - apply again with nothing to change (observe with ARP probes, preflight, plan)
 * Needs root (it brings the lab up and down): `sudo npm run bench:ops`.
 * Writes bench/results/ops-latest.json and prints medians and ratios to the floor.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { resolve } from "node:path";
import { labDown, labUp, LAB_ADDRESSES } from "../lab";
import { parseCluster } from "../src/config/load";
import type { ClusterInput } from "../src/config/schema";
import { desiredClusterState } from "../src/model/desired";
import { ClusterRun } from "../src/ops/engine";
import { runOnHosts } from "../src/transport/pool";
import { SshTransport } from "../src/transport/ssh";

const REPO = resolve(__dirname, "../..");
const sizes = (process.env.BENCH_N ?? "10,50,100").split(",").map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);

function spec(n: number): ClusterInput {
  const realServers = Array.from({ length: n }, (_, i) => ({ name: `rs${i + 1}`, rip: LAB_ADDRESSES.realServer(i + 1), interface: "eth0", gateway: LAB_ADDRESSES.routerA }));
  return {
    name: "lab",
    connectionDefaults: { user: "root", privateKeyPath: ".lab/id_ed25519", knownHostsFile: ".lab/known_hosts" },
    directors: [{ name: "director", interface: "eth0", dip: `${LAB_ADDRESSES.director}/24` }],
    realServers,
    virtualServices: [{ name: "http", vip: LAB_ADDRESSES.vip, protocol: "tcp", port: 80, scheduler: "rr", realServers: realServers.map((r) => ({ name: r.name })) }],
    drain: { timeoutSeconds: 0, pollSeconds: 1 },
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const results: Record<string, Record<string, number[]>> = {};
  for (const n of sizes) {
    process.stderr.write(`lab up with ${n} real servers...\n`);
    await labDown();
    await labUp({ realServers: Math.max(3, n) });
    const parsed = parseCluster(spec(n));
    if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
    const desired = desiredClusterState(parsed.cluster);
    const engine = () => new ClusterRun(desired, { transport: new SshTransport(), connectOptions: { baseDir: REPO }, concurrency, connectConcurrency: concurrency });
    const withRun = async (fn: (run: ClusterRun) => Promise<unknown>) => {
      const run = engine();
      try {
        await fn(run);
      } finally {
        await run.close();
      }
    };
    const figures: Record<string, number[]> = { floor: [], observe: [], "apply from scratch": [], "no-op apply": [] };
    for (let r = 0; r < runs; r++) {
      figures.floor!.push(
        await timed(async () => {
          const transport = new SshTransport();
          const out = await runOnHosts(desired.targets, concurrency, async (t) => {
            const session = await transport.connect(t.name, t.connection, { baseDir: REPO });
            try {
              const res = await session.runScript("true\n");
              if (res.code !== 0) throw new Error(`true exited ${res.code}`);
            } finally {
              await session.close();
            }
          });
          const failed = out.filter((o) => !o.ok);
          if (failed.length) throw new Error(`floor: ${failed.length} hosts failed: ${String((failed[0] as { error: unknown }).error)}`);
        }),
      );
      figures.observe!.push(await timed(() => withRun((run) => run.drift())));
      await withRun((run) => run.apply({ destroy: true }));
      figures["apply from scratch"]!.push(await timed(() => withRun((run) => run.apply())));
      figures["no-op apply"]!.push(
        await timed(() =>
          withRun(async (run) => {
            const report = await run.apply();
            if (!report.plan.empty) throw new Error("the second apply was not a no-op");
          }),
        ),
      );
    }
    await withRun((run) => run.apply({ destroy: true }));
    results[String(n)] = figures;
    const floor = median(figures.floor!);
    console.log(`N=${n} real servers (+1 director), concurrency ${concurrency}, median of ${runs} runs:`);
    for (const [name, xs] of Object.entries(figures)) {
      console.log(`  ${name.padEnd(20)} ${median(xs).toFixed(2).padStart(7)} s   (${(median(xs) / floor).toFixed(2)}x floor)   runs: ${xs.map((x) => x.toFixed(2)).join(" ")}`);
    }
  }
  await labDown();
  await labUp();
  mkdirSync(resolve(REPO, "bench/results"), { recursive: true });
  writeFileSync(
    resolve(REPO, "bench/results/ops-latest.json"),
    JSON.stringify({ date: new Date().toISOString(), machine: { cores: cpus().length, kernel: release(), node: process.version }, concurrency, runs, seconds: results }, null, 2) + "\n",
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
