/**
 * How long validating and planning a large cluster takes: 1,000 virtual services x 10 real
 * servers (10,000 destinations). Pure computation, no host: run with `npm run bench:plan`.
 * Prints the median of several runs of each phase; the issue's target is under 100 ms.
 */
import { parseCluster } from "../src/config/load";
import type { ClusterInput } from "../src/config/schema";
import { desiredClusterState } from "../src/model/desired";
import { planCluster } from "../src/plan/cluster-plan";
import { applyPlan, blankCluster } from "../src/plan/testing/cluster";

const services = Number(process.env.BENCH_SERVICES ?? 1000);
const perService = Number(process.env.BENCH_REAL_SERVERS ?? 10);
const runs = Number(process.env.BENCH_RUNS ?? 15);

function bigSpec(): ClusterInput {
  const realServers = Array.from({ length: perService }, (_, i) => ({ name: `rs${i + 1}`, rip: `198.51.100.${10 + i}`, interface: "eth0" }));
  return {
    name: "bench",
    connectionDefaults: { knownHostsFile: "/dev/null" },
    directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24" }],
    realServers,
    virtualServices: Array.from({ length: services }, (_, i) => ({
      name: `svc${i}`,
      vip: `198.51.100.${3 + (i % 5)}`,
      protocol: "tcp" as const,
      port: 1000 + Math.floor(i / 5),
      scheduler: "wlc" as const,
      realServers: realServers.map((rs) => ({ name: rs.name, weight: 1 })),
    })),
  };
}

function time<T>(fn: () => T): [number, T] {
  const start = process.hrtime.bigint();
  const value = fn();
  return [Number(process.hrtime.bigint() - start) / 1e6, value];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const spec = bigSpec();
const figures: Record<string, number[]> = { validate: [], "desired state": [], "plan from empty hosts": [], "plan with nothing to do": [], "validate + plan from empty": [] };
for (let i = 0; i < runs + 2; i++) {
  const [tValidate, parsed] = time(() => parseCluster(spec));
  if (!parsed.ok)
    throw new Error(
      parsed.issues
        .slice(0, 3)
        .map((x) => `${x.path}: ${x.message}`)
        .join("\n"),
    );
  const [tDesired, desired] = time(() => desiredClusterState(parsed.cluster));
  const blank = blankCluster(desired);
  const [tPlan, plan] = time(() => planCluster(desired, blank));
  const converged = applyPlan(plan, blank);
  const [tNoop, noop] = time(() => planCluster(desired, converged));
  if (!noop.empty) throw new Error("a converged cluster should need no steps");
  if (i < 2) continue; // warm-up
  figures.validate!.push(tValidate);
  figures["desired state"]!.push(tDesired);
  figures["plan from empty hosts"]!.push(tPlan);
  figures["plan with nothing to do"]!.push(tNoop);
  figures["validate + plan from empty"]!.push(tValidate + tDesired + tPlan);
}
console.log(`bench:plan  ${services} virtual services x ${perService} real servers = ${services * perService} destinations; median of ${runs} runs (ms), node ${process.version}`);
for (const [name, xs] of Object.entries(figures)) {
  console.log(
    `  ${name.padEnd(28)} median ${median(xs).toFixed(1).padStart(7)}   min ${Math.min(...xs)
      .toFixed(1)
      .padStart(7)}   max ${Math.max(...xs)
      .toFixed(1)
      .padStart(7)}`,
  );
}
