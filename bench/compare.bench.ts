/**
 * `npm run bench` (as root): the tool against the floor and its peers on the lab in scale mode,
 * all systems alternating within each round, then the director's table at scale. Writes
 * bench/results/latest.json, latest.md (tables with ratios) and chart.svg (time against N).
 * The doctor's cost (`tool: doctor`) is measured beside the drift check: `BENCH_N=10,100 BENCH_PEERS=tool BENCH_TABLE= npm run bench`.
 * BENCH_N (default 1,10,50,100,200), BENCH_RUNS (3), BENCH_CONCURRENCY (32),
 * BENCH_PEERS (tool,per-command,ansible), BENCH_PEER_RUNS (= BENCH_RUNS: rounds the peers run in),
 * BENCH_TABLE (100,1000,10000), BENCH_PER_ENTRY_MAX (1000), BENCH_OUT (latest), BENCH_SETTLE_MS
 * (1000: the pause before each measurement, see `timed`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { resolve } from "node:path";
import { labDown, labUp, LAB_ADDRESSES } from "../lab";
import { parseCluster } from "../src/config/load";
import type { Cluster } from "../src/config/schema";
import { desiredClusterState, type DesiredClusterState } from "../src/model/desired";
import type { ClusterRun } from "../src/ops/engine";
import { runDoctor } from "../src/ops/doctor";
import { SshTransport } from "../src/transport/ssh";
import { ensureAnsible, runPlaybook } from "./peers/ansible";
import { runPerCommand } from "./peers/per-command";
import { floor, labSpec, leastObservation, REPO, resetHosts as resetAll, timed, withRun as withClusterRun } from "./common";
import { chartSvg, markdownReport, median, type Results } from "./report";

const VIP = LAB_ADDRESSES.vip;
const sizes = (process.env.BENCH_N ?? "1,10,50,100,200").split(",").map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const peers = new Set((process.env.BENCH_PEERS ?? "tool,per-command,ansible").split(","));
const tableSizes = (process.env.BENCH_TABLE ?? "100,1000,10000").split(",").filter(Boolean).map(Number);
const out = process.env.BENCH_OUT ?? "latest";
// Ansible needs minutes per playbook at N = 200 on a small machine: the peers can run in the first rounds only.
const peerRuns = Math.min(runs, Number(process.env.BENCH_PEER_RUNS ?? runs));

const withRun = <T>(cluster: Cluster | DesiredClusterState, fn: (run: ClusterRun) => Promise<T>, hosts?: string[]) => withClusterRun(cluster, fn, concurrency, hosts);

/** One SSH round trip per host: whatever any system left, gone (bench only; the tool itself never does this). */
const resetHosts = (desired: DesiredClusterState) => resetAll(desired, concurrency);

/** The same end state for every system, checked with the tool's own observe: the data plane (addresses, sysctls, IPVS) matches. */
async function checkEndState(cluster: Cluster, system: string): Promise<void> {
  const drift = await withRun(cluster, (run) => run.drift());
  const wrong = drift.flatMap((d) => d.items).filter((i) => i.kind !== "file" && (i.status === "missing" || i.status === "changed"));
  if (wrong.length)
    throw new Error(
      `${system} did not reach the end state: ${wrong
        .slice(0, 3)
        .map((i) => `${i.host} ${i.status} ${i.key}`)
        .join("; ")}`,
    );
}

async function main(): Promise<void> {
  const results: Results = {
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model ?? "",
      kernel: release(),
      node: process.version,
      date: new Date().toISOString(),
      director: "qemu TCG VM (emulated CPU, no KVM), kernel 6.1, 1 vCPU",
    },
    concurrency,
    runs,
    peerRuns,
    scale: {},
    table: {},
    profile: {},
  };
  const save = () => {
    mkdirSync(resolve(REPO, "bench/results"), { recursive: true });
    writeFileSync(resolve(REPO, `bench/results/${out}.json`), JSON.stringify(results, null, 2) + "\n");
    writeFileSync(resolve(REPO, `bench/results/${out}.md`), markdownReport(results));
    writeFileSync(resolve(REPO, `bench/results/${out}.svg`), chartSvg(results));
  };
  /** A peer that fails is a result too: recorded under "Not measured", and the run goes on. */
  const recorded = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (error) {
      (results.failures ??= []).push(`${what}: ${error instanceof Error ? error.message.split("\n").slice(0, 2).join(" ") : String(error)}`);
      process.stderr.write(`${what} failed: ${String(error)}\n`);
    }
  };
  if (peers.has("ansible")) ensureAnsible();
  for (const n of sizes) {
    process.stderr.write(`lab with ${n} real servers...\n`);
    await labDown();
    await labUp({ realServers: Math.max(3, n) });
    const cluster = labSpec(n);
    const desired = desiredClusterState(cluster);
    const hostsForAnsible = { director: LAB_ADDRESSES.director, realServers: cluster.realServers.map((r) => ({ name: r.name, rip: r.rip })) };
    const f: Record<string, number[]> = {};
    const add = (k: string, v: number) => (f[k] ??= []).push(v);
    for (let r = 0; r < runs; r++) {
      await resetHosts(desired);
      add("floor", await timed(() => floor(desired.targets, concurrency)));
      if (peers.has("tool")) {
        let timings: Record<string, number> = {};
        add("tool: apply from scratch", await timed(() => withRun(cluster, async (run) => (timings = (await run.apply()).timings))));
        for (const [phase, ms] of Object.entries(timings)) ((results.profile[String(n)] ??= {})[phase] ??= []).push(ms / 1000);
        add("least observation (ip, ipvsadm, grep)", await timed(() => leastObservation(desired.targets, concurrency)));
        add("tool: observe (drift check)", await timed(() => withRun(cluster, (run) => run.drift())));
        // Every check, read only: one observation per host with the doctor's reads, one probe script per director.
        add("tool: doctor", await timed(() => withRun(cluster, (run) => runDoctor(run))));
        add("tool: no-op apply", await timed(() => withRun(cluster, (run) => run.apply())));
        add("tool: change one weight", await timed(() => withRun(labSpec(n, 2), (run) => run.apply())));
        await checkEndState(labSpec(n, 2), "tool");
        await resetHosts(desired);
      }
      if (peers.has("per-command") && r < peerRuns) {
        await recorded(`per-command at N=${n}, run ${r + 1}`, async () => {
          add("per-command: apply from scratch", await timed(() => runPerCommand(desired, VIP, concurrency, REPO)));
          await checkEndState(cluster, "per-command");
        });
        await resetHosts(desired);
      }
      if (peers.has("ansible") && r < peerRuns) {
        for (const forks of [5, Math.max(5, n + 1)]) {
          const label = forks === 5 ? "ansible (forks 5)" : `ansible (forks N+1)`;
          await recorded(`${label} at N=${n}, run ${r + 1}`, async () => {
            add(`${label}: apply from scratch`, await timed(async () => runPlaybook(REPO, hostsForAnsible, VIP, forks)));
            await checkEndState(cluster, label);
            add(`${label}: drift check (--check)`, await timed(async () => runPlaybook(REPO, hostsForAnsible, VIP, forks, true)));
          });
          await resetHosts(desired);
        }
      }
    }
    results.scale[String(n)] = f;
    save(); // what was measured so far survives a later failure
    const fl = median(f.floor!);
    console.log(
      `N=${n}: ` +
        Object.entries(f)
          .map(([k, v]) => `${k} ${median(v).toFixed(2)}s (${(median(v) / fl).toFixed(2)}x floor)`)
          .join("; "),
    );
  }

  // The director's table at scale: S services x 10 real servers.
  if (tableSizes.length) {
    await labDown();
    await labUp({ realServers: 10 });
    for (const destinations of tableSizes) {
      const services = Math.max(1, Math.round(destinations / 10));
      const big = (weight: number): Cluster => {
        const base = labSpec(10);
        const parsed = parseCluster({
          ...base,
          virtualServices: Array.from({ length: services }, (_, i) => ({
            name: `s${i}`,
            vip: `198.51.100.${3 + (i % 5)}`,
            protocol: "tcp",
            port: 1000 + Math.floor(i / 5),
            scheduler: "wlc",
            realServers: base.realServers.map((rs, j) => ({ name: rs.name, weight: i === 0 && j === 0 ? weight : 1 })),
          })),
        });
        if (!parsed.ok) throw new Error(parsed.issues[0]!.message);
        return parsed.cluster;
      };
      const t: Record<string, number[]> = {};
      const add = (k: string, v: number) => (t[k] ??= []).push(v);
      const director = desiredClusterState(big(1));
      for (let r = 0; r < runs; r++) {
        try {
          await resetHosts(desiredClusterState(labSpec(10)));
          // The real servers made ready first, untimed: a director alone registers only real servers that are ready.
          await withRun(
            big(1),
            (run) => run.apply(),
            labSpec(10).realServers.map((r) => r.name),
          );
          add("tool: load from empty", await timed(() => withRun(big(1), (run) => run.apply(), ["director"])));
          add("tool: change one entry", await timed(() => withRun(big(2), (run) => run.apply(), ["director"])));
          await resetHosts(desiredClusterState(labSpec(10)));
          if (destinations <= Number(process.env.BENCH_PER_ENTRY_MAX ?? 1000)) {
            const host = director.hosts.find((h) => h.role === "director")!;
            const lines = [
              ...host.services.map((s) => `ipvsadm -A -t ${s.address}:${s.port} -s ${s.scheduler}`),
              ...host.destinations.map((d) => `ipvsadm -a -t ${d.service.slice(4)} -r ${d.address}:${d.port} -g -w ${d.weight}`),
            ];
            const target = director.targets.find((x) => x.role === "director")!;
            const session = await new SshTransport().connect("director", target.connection, { baseDir: REPO });
            try {
              add("one ipvsadm per entry: load from empty", await timed(() => session.runScript(lines.join("\n") + "\n", { timeoutMs: 3_600_000 })));
              add(
                "one ipvsadm per entry: change one entry",
                await timed(() => session.runScript(`ipvsadm -e -t ${lines[0]!.split(" ")[2]} -r ${host.destinations[0]!.address}:${host.destinations[0]!.port} -g -w 2\n`)),
              );
            } finally {
              await session.close();
            }
          }
        } catch (error) {
          // A table the director cannot load in time is a result too: record it and go on.
          (results.failures ??= []).push(`table ${destinations}, run ${r + 1}: ${error instanceof Error ? error.message.split("\n").slice(0, 2).join(" ") : String(error)}`);
          break;
        }
      }
      results.table[String(destinations)] = t;
      console.log(
        `table ${destinations}: ` +
          Object.entries(t)
            .map(([k, v]) => `${k} ${median(v).toFixed(2)}s`)
            .join("; "),
      );
    }
    await resetHosts(desiredClusterState(labSpec(10)));
  }
  await labDown();
  save();
  console.log(markdownReport(results));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
