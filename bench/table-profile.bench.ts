/**
 * Where a one-entry change on a director with a large IPVS table spends its time (`npm run
 * bench:table`): the director alone, as `lvsdr apply --host director` runs it, at each table size
 * (BENCH_TABLE, default 100,10000) and BENCH_RUNS times (default 5), alternating the entry's
 * weight. Prints the medians of the engine's own phases (observe, plan, the directors' wave) and
 * of the whole run, and the ratio of the largest table to the smallest.
 */
import { labDown, labUp } from "../lab";
import { parseCluster } from "../src/config/load";
import type { Cluster } from "../src/config/schema";
import { desiredClusterState } from "../src/model/desired";
import { labSpec, resetHosts, timed, withRun } from "./common";
import { median } from "./report";

const sizes = (process.env.BENCH_TABLE ?? "100,10000").split(",").map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 5);

/** S services x 10 real servers, the first destination at `weight` (as the compare bench builds its tables). */
function table(destinations: number, weight: number): Cluster {
  const base = labSpec(10);
  const services = Math.max(1, Math.round(destinations / 10));
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
}

async function main(): Promise<void> {
  await labDown();
  await labUp({ realServers: 10 });
  const totals = new Map<number, number>();
  try {
    for (const size of sizes) {
      await resetHosts(desiredClusterState(labSpec(10)));
      // The whole cluster first: a director alone registers only real servers that are ready.
      await withRun(table(size, 1), (run) => run.apply(), 32);
      const phases: Record<string, number[]> = {};
      for (let r = 0; r < runs; r++) {
        let timings: Record<string, number> = {};
        let steps = 0;
        const total = await timed(async () => {
          const report = await withRun(table(size, r % 2 === 0 ? 2 : 1), (run) => run.apply(), 32, ["director"]);
          timings = report.timings;
          steps = report.applied.reduce((n, a) => n + a.steps, 0);
        });
        // The change must have happened: a run that found nothing to do would time nothing.
        if (steps === 0) throw new Error(`table ${size}, run ${r + 1}: the one-entry change applied no step`);
        (phases.total ??= []).push(total);
        for (const [k, v] of Object.entries(timings)) (phases[k] ??= []).push(v / 1000);
      }
      totals.set(size, median(phases.total!));
      console.log(
        `table ${size}: ` +
          Object.entries(phases)
            .map(([k, v]) => `${k} ${median(v).toFixed(2)}s`)
            .join("; "),
      );
    }
    const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
    console.log(`one-entry change, ${large} against ${small} destinations: ${(totals.get(large)! / totals.get(small)!).toFixed(2)}x`);
    await resetHosts(desiredClusterState(labSpec(10)));
  } finally {
    await labDown();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
