/**
 * `npm run bench:ha` (as root): keepalived mode on the lab, in three figures.
 * 1. Health: from a real server's HTTP server stopping to the last failed request, against the
 *    stack's configured detection time (interval + connect timeout x retries).
 * 2. Failover: the gap in requests when the master director's VM is frozen (median of
 *    BENCH_FAILOVERS, default 5), against the target of 3 advert intervals plus 1 s.
 * 3. Apply from scratch and the drift check of a keepalived director (every real server checked
 *    over TCP) beside a static one and the SSH floor, at BENCH_N (default 10,100) real servers.
 * Medians of BENCH_RUNS (3). BENCH_PARTS (health,failover,scale) picks the parts. Writes
 * bench/results/<BENCH_OUT>.json and .md (default ha).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { resolve } from "node:path";
import { parseDocument } from "yaml";
import { labDown, labExec, labHttpd, labUp, labVmFreeze, labVmPowerOnAfterFreeze, labBootId, labWaitForNewBoot, LAB_ADDRESSES } from "../lab";
import { gapAfter, labRequests, lastFailureAfter } from "../lab/traffic";
import { loadCluster, parseCluster } from "../src/config/load";
import type { Cluster } from "../src/config/schema";
import { desiredClusterState } from "../src/model/desired";
import { floor, labSpec, REPO, timed, withRun } from "./common";
import { median } from "./report";

const VIP = LAB_ADDRESSES.vip;
const runs = Number(process.env.BENCH_RUNS ?? 3);
const failovers = Number(process.env.BENCH_FAILOVERS ?? 5);
const sizes = (process.env.BENCH_N ?? "10,100").split(",").map(Number);
const concurrency = 32;
const out = process.env.BENCH_OUT ?? "ha";
const parts = new Set((process.env.BENCH_PARTS ?? "health,failover,scale").split(","));

function haStack(): Cluster {
  return loadCluster({ stack: "lab-ha", stacksDir: resolve(REPO, "stacks") });
}

/** The scale-mode lab spec with every real server checked over TCP by keepalived. */
function keepalivedSpec(n: number): Cluster {
  const base = labSpec(n);
  const parsed = parseCluster({ ...base, virtualServices: base.virtualServices.map((s) => ({ ...s, healthCheck: { type: "tcp", intervalSeconds: 5 } })) });
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return parsed.cluster;
}

async function holder(): Promise<string | null> {
  for (const d of ["director", "director2"]) if ((await labExec(d, `ip -o addr show dev eth0 to ${VIP}/32`, { timeoutMs: 5000 })).stdout.includes(VIP)) return d;
  return null;
}

async function until(what: string, fn: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const start = Date.now();
  while (!(await fn())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = {
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? "", kernel: release(), node: process.version, date: new Date().toISOString() },
  };
  const lines: string[] = ["# keepalived mode on the lab", ""];

  // 1 and 2: the lab-ha stack on two directors.
  await labDown();
  await labUp({ realServers: 3, directors: 2 });
  const ha = haStack();
  const check = (
    parseDocument(readFileSync(resolve(REPO, "stacks/Pulumi.lab-ha.yaml"), "utf8")).toJS() as {
      config: { "lvs-dr:cluster": { virtualServices: { healthCheck: Record<string, number> }[] } };
    }
  ).config["lvs-dr:cluster"].virtualServices[0]!.healthCheck;
  const detection = check.intervalSeconds! + check.connectTimeoutSeconds! * check.retries!;
  await withRun(ha, (run) => run.apply({ destroy: true }), concurrency);
  await withRun(ha, (run) => run.apply(), concurrency);
  await until("director to be master", async () => (await holder()) === "director");

  const lastFailures: number[] = [];
  for (let r = 0; parts.has("health") && r < runs; r++) {
    await new Promise((res) => setTimeout(res, 3000));
    const traffic = labRequests(VIP, 8 + detection);
    await new Promise((res) => setTimeout(res, 2000));
    // From the moment the stop is asked for: the figure can only be larger than the truth.
    const stoppedAt = Date.now() / 1000;
    await labHttpd("rs1", "stop");
    lastFailures.push(lastFailureAfter(await traffic, stoppedAt));
    await labHttpd("rs1", "start");
  }
  if (parts.has("health")) results.health = { configuredDetectionSeconds: detection, lastFailureSeconds: lastFailures };
  if (parts.has("health"))
    lines.push(
      `Health (lab-ha: HTTP check every ${check.intervalSeconds} s, ${check.connectTimeoutSeconds} s timeout, ${check.retries} retry): from rs1's HTTP server stopping to the last failed request, median of ${runs}: **${median(lastFailures).toFixed(2)} s** against a configured detection time of ${detection} s (all: ${lastFailures.map((x) => x.toFixed(2)).join(", ")}).`,
      "",
    );
  if (parts.has("health")) console.log(lines[lines.length - 2]);

  const gaps: number[] = [];
  for (let r = 0; parts.has("failover") && r < failovers; r++) {
    await until("director to be master", async () => (await holder()) === "director");
    await new Promise((res) => setTimeout(res, 3000));
    const traffic = labRequests(VIP, 12);
    await new Promise((res) => setTimeout(res, 2000));
    const boot = await labBootId("director");
    const killedAt = Date.now() / 1000;
    await labVmFreeze("director");
    const gap = gapAfter(await traffic, killedAt);
    if (gap === null) throw new Error(`failover ${r + 1}: the service did not come back within the run`);
    gaps.push(gap);
    await labVmPowerOnAfterFreeze("director");
    await labWaitForNewBoot("director", boot);
  }
  const advert = ha.failoverGroups[0]!.advertIntervalSeconds;
  if (parts.has("failover")) results.failover = { advertIntervalSeconds: advert, targetSeconds: 3 * advert + 1, gapSeconds: gaps };
  if (parts.has("failover"))
    lines.push(
      `Failover (advert interval ${advert} s, connection sync on): the gap in requests when the master director's VM is frozen, median of ${failovers}: **${median(gaps).toFixed(2)} s** against a target of ${3 * advert + 1} s (all: ${gaps.map((x) => x.toFixed(2)).join(", ")}).`,
      "",
    );
  if (parts.has("failover")) console.log(lines[lines.length - 2]);
  await until("director to be master", async () => (await holder()) === "director");
  await withRun(ha, (run) => run.apply({ destroy: true }), concurrency);

  // 3: a static director against a keepalived one, beside the floor.
  lines.push(
    "| N real servers | floor | static: apply from scratch | keepalived: apply from scratch | static: drift check | keepalived: drift check |",
    "|---|---|---|---|---|---|",
  );
  const scale: Record<string, Record<string, number[]>> = {};
  for (const n of parts.has("scale") ? sizes : []) {
    await labDown();
    await labUp({ realServers: Math.max(3, n) });
    const f: Record<string, number[]> = {};
    const add = (k: string, v: number) => (f[k] ??= []).push(v);
    for (let r = 0; r < runs; r++) {
      for (const [mode, spec] of [
        ["static", labSpec(n)],
        ["keepalived", keepalivedSpec(n)],
      ] as const) {
        await withRun(spec, (run) => run.apply({ destroy: true }), concurrency);
        add("floor", await timed(() => floor(desiredClusterState(spec).targets, concurrency)));
        add(`${mode}: apply from scratch`, await timed(() => withRun(spec, (run) => run.apply(), concurrency)));
        add(`${mode}: drift check`, await timed(() => withRun(spec, (run) => run.drift(), concurrency)));
        const drift = await withRun(spec, (run) => run.drift(), concurrency);
        if (!drift.every((d) => d.clean)) throw new Error(`${mode} at N=${n}: drift after apply`);
        await withRun(spec, (run) => run.apply({ destroy: true }), concurrency);
      }
    }
    scale[String(n)] = f;
    const fl = median(f.floor!);
    const cell = (k: string) => `${median(f[k]!).toFixed(2)} (${(median(f[k]!) / fl).toFixed(1)}x)`;
    lines.push(
      `| ${n} | ${fl.toFixed(2)} | ${cell("static: apply from scratch")} | ${cell("keepalived: apply from scratch")} | ${cell("static: drift check")} | ${cell("keepalived: drift check")} |`,
    );
    console.log(lines[lines.length - 1]);
  }
  results.scale = scale;
  lines.push("", `Seconds, medians of ${runs} runs; (x) against the floor (one SSH session per host running \`true\`). ${cpus().length} cores, kernel ${release()}.`);
  await labDown();
  mkdirSync(resolve(REPO, "bench/results"), { recursive: true });
  writeFileSync(resolve(REPO, `bench/results/${out}.json`), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(resolve(REPO, `bench/results/${out}.md`), lines.join("\n") + "\n");
  console.log(lines.join("\n"));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
