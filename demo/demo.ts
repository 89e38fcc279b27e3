/**
 * The demo: the whole job on the local lab, told as a story. `npm ci && npm run demo` as root.
 * Brings the lab up (installing what it needs), applies stacks/Pulumi.lab.yaml, shows requests
 * spreading over the real servers and the director's counters proving replies bypass it, breaks
 * a real server's ARP setting by hand, shows drift catching it, repairs it, and takes the lab down.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ensurePrerequisites, labCannotRunReason, labDown, labExecOk, labUp, LAB_ADDRESSES } from "../lab";
import { loadCluster } from "../src/config/load";
import { summarize } from "../src/cli/commands/validate";

const REPO = resolve(__dirname, "../..");
const VIP = LAB_ADDRESSES.vip;
const say = (text = "") => process.stdout.write(`${text}\n`);
const title = (n: number, text: string) => say(`\n${n}. ${text}`);

/** Runs the lvsdr command line as a user would, showing its output indented. */
function lvsdr(...args: string[]): number {
  say(`   $ lvsdr ${args.join(" ")}`);
  const r = spawnSync(process.execPath, [resolve(REPO, "bin/lvsdr"), ...args], { cwd: REPO, encoding: "utf8", input: "" });
  // apply prints its whole plan and every step; the story needs only each host's end and the summary.
  const keep = args[0] === "apply" ? (l: string) => / done \(|^apply:|^nothing to do|FAILED|warning/.test(l) : () => true;
  for (const line of `${r.stdout}${r.stderr}`.split("\n").filter(Boolean).filter(keep)) say(`     ${line}`);
  say(`     (exit ${r.status})`);
  return r.status ?? 1;
}

/** Whether the Pulumi CLI is on PATH (it is not on the machines this project is developed on). */
function pulumiAvailable(): boolean {
  return spawnSync("pulumi", ["version"], { encoding: "utf8" }).status === 0;
}

async function spread(n: number): Promise<Map<string, number>> {
  const out = await labExecOk("client", `for i in $(seq ${n}); do curl -s -m 3 http://${VIP}/ || echo FAILED; done`);
  const counts = new Map<string, number>();
  for (const name of out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean))
    counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

async function main(): Promise<void> {
  const cannot = labCannotRunReason();
  if (cannot) throw new Error(`the demo needs the lab, which cannot run here: ${cannot}`);
  const started = Date.now();
  say("lvs-dr demo: an LVS-DR cluster on a lab of real hosts (a Debian director VM with IPVS, a Debian real server VM and namespace real servers, all with real sshd and ARP)");

  title(1, "Preparing the lab (Debian packages, an IPVS kernel, the VMs' Debian image; cached after the first run)");
  await ensurePrerequisites();
  const hosts = await labUp();
  const director = hosts.hosts.find((h) => h.role === "director")!;
  say(
    `   director ${director.ip} (MAC ${director.mac}), real servers ${hosts.hosts
      .filter((h) => h.role === "real-server" && h.segment === "A")
      .map((h) => h.ip)
      .join(", ")}, client ${LAB_ADDRESSES.client}`,
  );

  title(2, "The stack: stacks/Pulumi.lab.yaml, validated before any host is contacted");
  say(`   ${summarize(loadCluster({ stack: "lab", stacksDir: resolve(REPO, "stacks") }))}`);

  title(3, "Applying it (real servers first: ARP suppression, then the VIP on lo; then the director's IPVS table, then its VIP)");
  if (pulumiAvailable()) {
    say("   the Pulumi CLI is installed: pulumi up --stack lab, with a local file backend");
    const env = { ...process.env, PULUMI_BACKEND_URL: `file://${resolve(REPO, ".lab")}`, PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "lvs-dr-demo" };
    spawnSync("pulumi", ["stack", "select", "--create", "lab"], { cwd: REPO, env, stdio: "inherit" });
    const up = spawnSync("pulumi", ["up", "--stack", "lab", "--yes", "--skip-preview"], { cwd: REPO, env, stdio: "inherit" });
    if (up.status !== 0) throw new Error("pulumi up failed");
  } else {
    say("   (no Pulumi CLI here, so through the lvsdr command line; `pulumi up --stack lab` does the same)");
    if (lvsdr("apply", "--stack", "lab", "--yes") !== 0) throw new Error("lvsdr apply failed");
  }

  title(4, `Twelve requests from the client to the VIP ${VIP}:80`);
  for (const [name, count] of [...(await spread(12))].sort()) say(`   ${name}: ${"#".repeat(count)} ${count}`);

  title(5, "The director's counters: packets in, none out. Replies went straight from the real servers to the client");
  // The kernel folds its per-CPU counters into these totals every two seconds.
  await new Promise((r) => setTimeout(r, 2500));
  const stats = await labExecOk("director", "ipvsadm -Ln --stats --exact");
  for (const line of stats.split("\n").filter((l) => l.startsWith("Prot") || l.includes(`${VIP}:80`) || l.includes("->"))) say(`   ${line}`);

  title(6, "Breaking a real server by hand: arp_ignore=0 on rs2 (it would now answer ARP for the VIP)");
  await labExecOk("rs2", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore");
  if (lvsdr("drift", "--stack", "lab") !== 2) throw new Error("drift should have been found (exit 2)");
  say("   exit 2 means drift: a cron job or CI step alerts on it");

  title(7, "Applying again repairs it; drift is clean");
  if (lvsdr("apply", "--stack", "lab", "--yes") !== 0) throw new Error("lvsdr apply failed");
  if (lvsdr("drift", "--stack", "lab") !== 0) throw new Error("drift should be clean after apply");

  title(8, "Taking the lab down");
  await labDown();
  say(`   done in ${Math.round((Date.now() - started) / 1000)} s`);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
