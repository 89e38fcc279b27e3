/**
 * How long reading and validating a very large spec file takes, and how much memory it needs:
 * a generated stack file of about 5 MB (1 director, 500 real servers on a /16, 10,000 virtual
 * services of 5 destinations each = 50,000 destinations). Run with `npm run bench:spec`.
 *
 * Each measurement is a fresh child process (so one run's heap is not the next one's): it loads
 * the modules, then times one `loadCluster` / `checkClusterSource` and reports that wall time,
 * the CPU time it took (user + system, all threads: steadier than wall time on a shared machine),
 * and the process's peak RSS (`process.resourceUsage().maxRSS`, node and its modules included).
 * Cases: the valid spec; the same with one error on the last destination (the issue must still
 * carry its line); with every destination wrong (50,000 issues, the list capped); and node with
 * the modules loaded and nothing read, the floor of the RSS figure. The issue's target for the
 * valid spec: under 1 s and under 200 MB. BENCH_RUNS (7), BENCH_SERVICES (10000) change the size.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkClusterSource, loadCluster } from "../src/config/load";
import { median } from "./report";

const services = Number(process.env.BENCH_SERVICES ?? 10000);
const realServers = 500;
const perService = 5;
const runs = Number(process.env.BENCH_RUNS ?? 7);

type Case = "valid" | "one error" | "every destination wrong" | "modules only";
const cases: Case[] = ["valid", "one error", "every destination wrong", "modules only"];

/** The stack file as a person would write it: block style, one flow mapping per host and destination. */
function specText(kind: Case): string {
  const out: string[] = [
    "config:",
    "  lvs-dr:cluster:",
    "    name: big",
    "    connectionDefaults: { user: root, privateKeyPath: /root/.ssh/id_ed25519, knownHostsFile: /root/.ssh/known_hosts }",
    "    directors:",
    "      - { name: director, interface: eth0, dip: 10.20.0.2/16 }",
    "    realServers:",
  ];
  const rip = (i: number) => `10.20.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
  for (let i = 0; i < realServers; i++) out.push(`      - { name: rs${i + 1}, rip: ${rip(i)}, interface: eth0, gateway: 10.20.0.1 }`);
  out.push("    virtualServices:");
  for (let s = 0; s < services; s++) {
    // 100 VIPs x 100 ports: every (VIP, protocol, port) is distinct.
    out.push(
      `      - name: svc${s + 1}`,
      `        vip: 10.20.200.${1 + (s % 100)}`,
      `        protocol: tcp`,
      `        port: ${1000 + Math.floor(s / 100)}`,
      `        scheduler: wlc`,
      `        realServers:`,
    );
    for (let d = 0; d < perService; d++) {
      const last = s === services - 1 && d === perService - 1;
      const weight = kind === "every destination wrong" || (kind === "one error" && last) ? -1 : 1 + (d % 3);
      out.push(`          - { name: rs${1 + ((s * perService + d) % realServers)}, weight: ${weight}, upperThreshold: 1000, lowerThreshold: 800 }`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** In the child: one measured read and validation. */
function child(file: string, kind: Case): void {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  let detail: string;
  if (kind === "modules only") detail = "";
  else if (kind === "valid") {
    const cluster = loadCluster({ file });
    detail = `${cluster.virtualServices.length} services`;
  } else {
    const { result } = checkClusterSource({ file });
    if (result.ok) throw new Error(`${kind}: the spec should not be valid`);
    const first = result.issues[0]!;
    if (first.line === undefined) throw new Error(`${kind}: the first issue has no line: ${first.path}: ${first.message}`);
    detail = `${result.issues.length} issues listed, first at line ${first.line}: ${first.path}`;
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  process.stdout.write(JSON.stringify({ ms, cpuMs: (used.user + used.system) / 1000, rssMb: process.resourceUsage().maxRSS / 1024, detail }));
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), "lvsdr-bench-spec-"));
  try {
    const files = new Map(cases.map((kind) => [kind, join(dir, `${kind.replace(/ /g, "-")}.yaml`)]));
    for (const [kind, file] of files) writeFileSync(file, specText(kind));
    const size = statSync(files.get("valid")!).size;
    const figures = new Map(cases.map((kind) => [kind, { ms: [] as number[], cpuMs: [] as number[], rssMb: [] as number[], detail: "" }]));
    // Cases alternate within each round, so a slow moment of the machine is not one case's.
    for (let r = 0; r < runs; r++) {
      for (const kind of cases) {
        const out = execFileSync(process.execPath, [__filename, "--child", files.get(kind)!, kind], { encoding: "utf8", maxBuffer: 1 << 20 });
        const m = JSON.parse(out) as { ms: number; cpuMs: number; rssMb: number; detail: string };
        const f = figures.get(kind)!;
        f.ms.push(m.ms);
        f.cpuMs.push(m.cpuMs);
        f.rssMb.push(m.rssMb);
        f.detail = m.detail;
      }
    }
    console.log(
      `bench:spec  ${(size / 1e6).toFixed(2)} MB stack file: ${services} virtual services x ${perService} destinations, ${realServers} real servers; ` +
        `median of ${runs} child processes, node ${process.version}`,
    );
    for (const [kind, f] of figures) {
      console.log(
        `  ${kind.padEnd(24)} ${median(f.ms).toFixed(0).padStart(6)} ms (min ${Math.min(...f.ms).toFixed(0)}, max ${Math.max(...f.ms).toFixed(0)})` +
          `   cpu ${median(f.cpuMs).toFixed(0).padStart(6)} ms` +
          `   peak RSS ${median(f.rssMb).toFixed(0).padStart(4)} MB (max ${Math.max(...f.rssMb).toFixed(0)})${f.detail ? `   ${f.detail}` : ""}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") child(process.argv[3]!, process.argv[4] as Case);
else main();
