/**
 * The demo: the whole job on the local lab, told as a story. `npm ci && npm run demo` as root.
 * Brings the lab up (installing what it needs), applies stacks/Pulumi.lab.yaml, shows requests
 * spreading over the real servers and the director's counters proving replies bypass it, breaks
 * a real server's ARP setting by hand, shows drift catching it, repairs it, and takes the lab down.
 */
import { resolve } from "node:path";
import { ensurePrerequisites, labCannotRunReason, labDown, labExecOk, labUp, LAB_ADDRESSES } from "../lab";
import { loadCluster } from "../src/config/load";
import { summarize } from "../src/cli/commands/validate";
import { ClusterRun, type ProgressEvent } from "../src/ops/engine";
import type { HostDrift } from "../src/plan/drift";
import { SshTransport } from "../src/transport/ssh";

const REPO = resolve(__dirname, "../..");
const VIP = LAB_ADDRESSES.vip;
const say = (text = "") => process.stdout.write(`${text}\n`);
const title = (n: number, text: string) => say(`\n${n}. ${text}`);

function run(onProgress?: (e: ProgressEvent) => void): ClusterRun {
  return new ClusterRun(loadCluster({ stack: "lab", stacksDir: resolve(REPO, "stacks") }), {
    transport: new SshTransport(),
    connectOptions: { baseDir: REPO },
    ...(onProgress ? { onProgress } : {}),
  });
}

async function using<T>(fn: (r: ClusterRun) => Promise<T>, onProgress?: (e: ProgressEvent) => void): Promise<T> {
  const r = run(onProgress);
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}

function printDrift(drift: HostDrift[]): void {
  const items = drift.flatMap((d) => d.items);
  if (items.length === 0) {
    say("   no drift: every host holds exactly what the stack says");
    return;
  }
  for (const i of items) {
    say(`   ${i.host.padEnd(9)} ${i.status.padEnd(10)} ${i.kind} ${i.key}${i.expected !== null || i.actual !== null ? `: expected ${i.expected ?? "(absent)"}, actual ${i.actual ?? "(absent)"}` : ""}`);
  }
}

async function spread(n: number): Promise<Map<string, number>> {
  const out = await labExecOk("client", `for i in $(seq ${n}); do curl -s -m 3 http://${VIP}/ || echo FAILED; done`);
  const counts = new Map<string, number>();
  for (const name of out.split("\n").map((l) => l.trim()).filter(Boolean)) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

async function main(): Promise<void> {
  const cannot = labCannotRunReason();
  if (cannot) throw new Error(`the demo needs the lab, which cannot run here: ${cannot}`);
  const started = Date.now();
  say("lvs-dr demo: an LVS-DR cluster on a lab of real hosts (a qemu director with IPVS, namespace real servers with real sshd and ARP)");

  title(1, "Preparing the lab (Debian packages, an IPVS kernel, the director's image; cached after the first run)");
  await ensurePrerequisites();
  const hosts = await labUp();
  const director = hosts.hosts.find((h) => h.role === "director")!;
  say(`   director ${director.ip} (MAC ${director.mac}), real servers ${hosts.hosts.filter((h) => h.role === "real-server" && h.segment === "A").map((h) => h.ip).join(", ")}, client ${LAB_ADDRESSES.client}`);

  title(2, "The stack: stacks/Pulumi.lab.yaml, validated before any host is contacted");
  say(`   ${summarize(loadCluster({ stack: "lab", stacksDir: resolve(REPO, "stacks") }))}`);

  title(3, "Applying it (real servers first: ARP suppression, then the VIP on lo; then the director's IPVS table, then its VIP)");
  const report = await using(
    (r) => r.apply(),
    (e) => {
      if (e.kind === "wave-done") say(`   ${e.host.padEnd(9)} done (${e.wave})`);
    },
  );
  say(`   ${report.applied.reduce((n, a) => n + a.steps, 0)} steps on ${report.applied.length} hosts`);

  title(4, `Twelve requests from the client to the VIP ${VIP}:80`);
  for (const [name, count] of [...(await spread(12))].sort()) say(`   ${name}: ${"#".repeat(count)} ${count}`);

  title(5, "The director's counters: packets in, none out. Replies went straight from the real servers to the client");
  const stats = await labExecOk("director", "ipvsadm -Ln --stats --exact");
  for (const line of stats.split("\n").filter((l) => l.startsWith("Prot") || l.includes(`${VIP}:80`) || l.includes("->"))) say(`   ${line}`);

  title(6, "Breaking a real server by hand: arp_ignore=0 on rs2 (it would now answer ARP for the VIP)");
  await labExecOk("rs2", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore");
  const drift = await using((r) => r.drift());
  printDrift(drift);
  say(`   drift found on ${drift.filter((d) => !d.clean).map((d) => d.host).join(", ")}: \`lvsdr drift\` would exit 2 here, for cron and CI to alert on`);

  title(7, "Applying again repairs it; drift is clean");
  await using((r) => r.apply());
  printDrift(await using((r) => r.drift()));

  title(8, "Taking the lab down");
  await labDown();
  say(`   done in ${Math.round((Date.now() - started) / 1000)} s`);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
