/**
 * The peer in the style `@pulumi/command` users write: one `remote.Command` per address,
 * sysctl and IPVS entry, so one SSH session per command. Same transport library and the same
 * concurrency as the tool, so the difference is the shape of the work, not the plumbing.
 */
import type { DesiredClusterState } from "../../src/model/desired";
import { runOnHosts } from "../../src/transport/pool";
import { SshTransport } from "../../src/transport/ssh";

export function perCommandJobs(desired: DesiredClusterState, vip: string): { host: string; command: string }[] {
  const jobs: { host: string; command: string }[] = [];
  for (const host of desired.hosts) {
    if (host.role === "real-server") {
      for (const s of host.sysctls) jobs.push({ host: host.host, command: `sysctl -w ${s.key.replace(/\//g, ".")}=${s.value}` });
      for (const a of host.addresses) jobs.push({ host: host.host, command: `ip addr replace ${a.address}/${a.prefix} dev ${a.interface}` });
    }
  }
  // Real servers first, then the director, as a Pulumi program with dependsOn would order them.
  const director = desired.hosts.find((h) => h.role === "director")!;
  jobs.push({ host: director.host, command: `ipvsadm -A -t ${vip}:80 -s rr` });
  for (const d of director.destinations) jobs.push({ host: director.host, command: `ipvsadm -a -t ${vip}:80 -r ${d.address}:${d.port} -g -w ${d.weight}` });
  jobs.push({ host: director.host, command: `ip addr replace ${vip}/32 dev ${director.interface}` });
  return jobs;
}

/**
 * Sessions open at once against one host. Pulumi's own default is unbounded, but 32 handshakes
 * at once overwhelm the lab's emulated director (every one timed out at N = 50): a user would
 * lower `--parallel` until it works, and 8 does here.
 */
export const perCommandSessionsPerHost = 8;

export async function runPerCommand(desired: DesiredClusterState, vip: string, concurrency: number, baseDir: string): Promise<void> {
  const targets = new Map(desired.targets.map((t) => [t.name, t.connection]));
  const transport = new SshTransport();
  const jobs = perCommandJobs(desired, vip);
  const run = (batch: typeof jobs, limit = concurrency) =>
    runOnHosts(batch, limit, async (job) => {
      const session = await transport.connect(job.host, targets.get(job.host)!, { baseDir });
      try {
        const r = await session.runScript(`${job.command}\n`);
        if (r.code !== 0) throw new Error(`${job.host}: ${job.command}: exit ${r.code}: ${r.stderr.trim()}`);
      } finally {
        await session.close();
      }
    });
  // Real-server commands, then the director's, in order (ipvsadm -a needs the -A first).
  const realServerJobs = jobs.filter((j) => j.host !== "director");
  const directorJobs = jobs.filter((j) => j.host === "director");
  const failures = [
    ...(await run(realServerJobs)),
    ...(await run(directorJobs.slice(0, 1))),
    ...(await run(directorJobs.slice(1), Math.min(concurrency, perCommandSessionsPerHost))),
  ].filter((r) => !r.ok);
  if (failures.length) throw new Error(`per-command: ${failures.length} commands failed: ${String((failures[0] as { error: unknown }).error)}`);
}
