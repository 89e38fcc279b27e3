/** What the lab benchmarks share: the lab cluster with N real servers, a timer, a run, and the floor. */
import { resolve } from "node:path";
import { LAB_ADDRESSES } from "../lab";
import { parseCluster } from "../src/config/load";
import type { Cluster, ClusterInput } from "../src/config/schema";
import type { DesiredClusterState, HostTarget } from "../src/model/desired";
import { hostPaths } from "../src/model/paths";
import { ClusterRun } from "../src/ops/engine";
import { observedFiles } from "../src/ops/observe";
import { runOnHosts } from "../src/transport/pool";
import { SshTransport, type SshSession } from "../src/transport/ssh";
import type { ScriptResult } from "../src/transport/types";

export const REPO = resolve(__dirname, "../..");

/** The lab cluster: one director, N real servers, one TCP service on the VIP; rs1 at `weight`. */
export function labSpec(n: number, weight = 1): Cluster {
  const realServers = Array.from({ length: n }, (_, i) => ({ name: `rs${i + 1}`, rip: LAB_ADDRESSES.realServer(i + 1), interface: "eth0", gateway: LAB_ADDRESSES.routerA }));
  const input: ClusterInput = {
    name: "lab",
    connectionDefaults: { user: "root", privateKeyPath: ".lab/id_ed25519", knownHostsFile: ".lab/known_hosts" },
    directors: [{ name: "director", interface: "eth0", dip: `${LAB_ADDRESSES.director}/24` }],
    realServers,
    virtualServices: [
      {
        name: "http",
        vip: LAB_ADDRESSES.vip,
        protocol: "tcp",
        port: 80,
        scheduler: "rr",
        realServers: realServers.map((r, i) => ({ name: r.name, weight: i === 0 ? weight : 1 })),
      },
    ],
    drain: { timeoutSeconds: 0, pollSeconds: 1 },
  };
  const parsed = parseCluster(input);
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return parsed.cluster;
}

/**
 * A pause before every measurement (BENCH_SETTLE_MS, default 1000), so that what the one before
 * left running on the hosts is not counted against it: sessions still closing, and after an
 * apply the director's background gratuitous ARP, on an emulated CPU the next run shares.
 */
const settleMs = Number(process.env.BENCH_SETTLE_MS ?? 1000);

/** Seconds that `fn` took, timed once the lab has settled. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** One ClusterRun (its own sessions), closed afterwards; `hosts` limits it to those hosts. */
export async function withRun<T>(cluster: Cluster | DesiredClusterState, fn: (run: ClusterRun) => Promise<T>, concurrency: number, hosts?: string[]): Promise<T> {
  const run = new ClusterRun(cluster, {
    transport: new SshTransport(),
    connectOptions: { baseDir: REPO },
    concurrency,
    connectConcurrency: concurrency,
    ...(hosts ? { hosts } : {}),
  });
  try {
    return await fn(run);
  } finally {
    await run.close();
  }
}

/** One new SSH session per host, same library and concurrency, running `work` and closed at once. */
async function oneSessionPerHost(
  what: string,
  targets: HostTarget[],
  concurrency: number,
  work: (session: SshSession, target: HostTarget) => Promise<ScriptResult>,
): Promise<void> {
  const transport = new SshTransport();
  const out = await runOnHosts(targets, concurrency, async (t) => {
    const session = (await transport.connect(t.name, t.connection, { baseDir: REPO })) as SshSession;
    try {
      const result = await work(session, t);
      if (result.code !== 0) throw new Error(`${t.name}: exited ${result.code}: ${result.stderr}`);
    } finally {
      await session.close();
    }
  });
  const failed = out.flatMap((o) => (o.ok ? [] : [String(o.error)]));
  if (failed.length) throw new Error(`${what}: ${failed.join("; ")}`);
}

/** The floor: one SSH session per host running exactly `true`. */
export async function floor(targets: HostTarget[], concurrency: number): Promise<void> {
  // Exactly `true`: no shell reading a script, so the floor is the least a session can cost.
  await oneSessionPerHost("floor", targets, concurrency, (session) => session.runCommand("true"));
}

/**
 * The least an observation of these hosts can cost here, to read the observe figures against:
 * per host one session, sent through the tool's own transport, that starts only the processes no
 * observation can do without (`ip` for the addresses; on a director one `ipvsadm` for both
 * listings of its table; `grep` for the sysctls and the persisted files, some of which may not
 * exist) and prints what they print: no markers, no file tests, no parsing.
 */
export async function leastObservation(targets: HostTarget[], concurrency: number): Promise<void> {
  // The files the tool observes, but for the unit's link, which it does not read either.
  const files = observedFiles.filter((f) => f !== hostPaths.systemdUnitLink).join(" ");
  const read = `LC_ALL=C grep -z -s '' /dev/null /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce /proc/sys/net/ipv4/conf/*/rp_filter ${files} || :\n`;
  const ipvs = "ipvsadm -R <<'E'\n-S -n\n-L -n --exact --thresholds\nE\n";
  await oneSessionPerHost("least observation", targets, concurrency, (session, t) =>
    session.runScript(`ip -j addr show\n${t.role === "director" ? ipvs : ""}${read}`, { killOnHost: false }),
  );
}

/** Every host as before the tool (the lab's own VIP and ARP settings undone), whatever the tool left. */
export async function resetHosts(desired: DesiredClusterState, concurrency = 32): Promise<void> {
  const transport = new SshTransport();
  const results = await runOnHosts(desired.targets, concurrency, async (t) => {
    const session = await transport.connect(t.name, t.connection, { baseDir: REPO });
    try {
      const script =
        t.role === "director"
          ? `ipvsadm -C 2>/dev/null; ip addr del ${LAB_ADDRESSES.vip}/32 dev eth0 2>/dev/null; rm -rf /etc/lvs-dr /var/lib/lvs-dr /etc/systemd/system/lvs-dr.service /etc/systemd/system/multi-user.target.wants/lvs-dr.service; true\n`
          : `ip addr del ${LAB_ADDRESSES.vip}/32 dev lo 2>/dev/null; for i in all lo eth0; do echo 0 > /proc/sys/net/ipv4/conf/$i/arp_ignore; echo 0 > /proc/sys/net/ipv4/conf/$i/arp_announce; done; rm -rf /etc/sysctl.d/90-lvs-dr*.conf /etc/lvs-dr /var/lib/lvs-dr /etc/systemd/system/lvs-dr.service /etc/systemd/system/multi-user.target.wants/lvs-dr.service; true\n`;
      await session.runScript(script);
    } finally {
      await session.close();
    }
  });
  const failed = results.flatMap((r, i) => (r.ok ? [] : [`${desired.targets[i]!.name}: ${String((r as { error: unknown }).error)}`]));
  if (failed.length) throw new Error(`reset failed on ${failed.length} hosts: ${failed.join("; ")}`);
}
