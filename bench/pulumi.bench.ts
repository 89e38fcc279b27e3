/**
 * `npm run bench:pulumi` (as root): the lab stack through Pulumi's own Node.js halves and the
 * test-only engine stand-in (test/pulumi-engine), beside the `lvsdr` CLI on the same stack in the
 * same run. Per round: `up` from scratch, `up` with nothing to do, `refresh`, `destroy`; then
 * `lvsdr apply` from scratch, `lvsdr apply` with nothing to do, `lvsdr drift`, `lvsdr destroy`.
 * Medians of BENCH_RUNS (3). The stand-in's own timings say where the difference goes: the
 * program's process start and run, the provider host's start, and the time inside provider calls.
 * Writes bench/results/<BENCH_OUT>.json and .md (default pulumi).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { labUp } from "../lab";
import { runStack, type Operation, type RunResult } from "../test/pulumi-engine/engine";
import { REPO } from "./common";
import { median } from "./report";

const runs = Number(process.env.BENCH_RUNS ?? 3);
const out = process.env.BENCH_OUT ?? "pulumi";
const backendDir = mkdtempSync(join(tmpdir(), "lvsdr-bench-pulumi-"));

async function standIn(op: Operation): Promise<RunResult> {
  const r = await runStack(op, { projectDir: REPO, stack: "lab", backendDir, passphrase: "bench" });
  if (!r.ok) throw new Error(`${op}: ${r.errors.join("\n")}`);
  return r;
}

function lvsdr(...args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [resolve(REPO, "bin/lvsdr"), ...args, "--stack", "lab"], { cwd: REPO, encoding: "utf8", input: "" });
  if (r.status !== 0) throw new Error(`lvsdr ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1000));

async function main(): Promise<void> {
  await labUp({ realServers: 3, directors: 1 });
  lvsdr("destroy", "--yes");
  const rows: Record<string, number[]> = {};
  const breakdown: Record<string, Record<string, number[]>> = {};
  const add = (name: string, ms: number): void => void (rows[name] ??= []).push(ms);
  const note = (name: string, r: RunResult): void => {
    add(`stand-in ${name}`, r.timings.totalMs);
    const b = (breakdown[name] ??= {});
    const put = (k: string, v: number | undefined): void => void (v !== undefined && (b[k] ??= []).push(v));
    put("program start to first registration", r.timings.programStartMs);
    put("program process, start to exit", r.timings.programMs);
    put("provider host start (spawn to Configure done)", r.timings.providerStartMs);
    for (const [method, ms] of Object.entries(r.timings.providerCallsMs)) put(`in provider ${method} (${r.timings.providerCalls[method]} calls, summed)`, ms);
  };
  for (let i = 0; i < runs; i++) {
    await settle();
    note("up from scratch", await standIn("up"));
    await settle();
    note("up, nothing to do", await standIn("up"));
    await settle();
    note("refresh", await standIn("refresh"));
    await settle();
    note("destroy", await standIn("destroy"));
    await settle();
    add("lvsdr apply from scratch", lvsdr("apply", "--yes"));
    await settle();
    add("lvsdr apply, nothing to do", lvsdr("apply", "--yes"));
    await settle();
    add("lvsdr drift", lvsdr("drift"));
    await settle();
    add("lvsdr destroy", lvsdr("destroy", "--yes"));
  }

  const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  const m = (name: string): number => median(rows[name]!);
  const lines = [
    "# The lab stack through Pulumi's runtime (engine stand-in) beside lvsdr",
    "",
    `Medians of ${runs} runs; ${cpus().length} cores, kernel ${release()}, Node ${process.version}, ${new Date().toISOString()}.`,
    "",
    "| operation | stand-in | lvsdr | ratio |",
    "|---|---|---|---|",
    ...(
      [
        ["up from scratch / apply from scratch", "stand-in up from scratch", "lvsdr apply from scratch"],
        ["up, nothing to do / apply, nothing to do", "stand-in up, nothing to do", "lvsdr apply, nothing to do"],
        ["refresh / drift", "stand-in refresh", "lvsdr drift"],
        ["destroy / destroy", "stand-in destroy", "lvsdr destroy"],
      ] as const
    ).map(([label, a, b]) => `| ${label} | ${fmt(m(a))} | ${fmt(m(b))} | ${(m(a) / m(b)).toFixed(2)}x |`),
    "",
    "Where the stand-in's time goes (medians):",
    "",
    ...Object.entries(breakdown).flatMap(([op, parts]) => [`- ${op}:`, ...Object.entries(parts).map(([k, v]) => `  - ${k}: ${fmt(median(v))}`)]),
    "",
  ];
  mkdirSync(resolve(REPO, "bench/results"), { recursive: true });
  writeFileSync(resolve(REPO, `bench/results/${out}.json`), `${JSON.stringify({ rows, breakdown }, null, 2)}\n`);
  writeFileSync(resolve(REPO, `bench/results/${out}.md`), lines.join("\n"));
  process.stdout.write(lines.join("\n"));
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
