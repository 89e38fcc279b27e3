/** Small helpers the lab test files share. */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { labExecOk } from "../../lab";

export const REPO = resolve(__dirname, "../..");

/** Runs the lvsdr command line as users and cron jobs do: bin/lvsdr in a child process, no terminal. */
export function lvsdr(...args: string[]): { code: number; stdout: string; stderr: string } {
  return lvsdrWithEnv({}, ...args);
}

/** The same, with variables added to its environment (jest's process.env is the test file's own copy, not the child's). */
export function lvsdrWithEnv(env: Record<string, string>, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(REPO, "bin/lvsdr"), ...args], { cwd: REPO, encoding: "utf8", input: "", timeout: 180_000, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Polls `fn` until it returns something other than undefined, and returns that. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The MACs that answered in arping's output, lower case, one per reply. Habets' arping prints
 * "42 bytes from <mac> (<ip>)", iputils' "reply from <ip> [<mac>]". */
export function arpRepliers(output: string): string[] {
  return [...output.matchAll(/\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b/gi)].map((m) => m[1]!.toLowerCase());
}

/**
 * What the tool could touch on a host: addresses, ARP sysctls, its files and (on the director)
 * the IPVS table. Two equal snapshots mean the host was not changed.
 */
export async function hostSnapshot(host: string): Promise<string> {
  const files =
    'for f in /etc/sysctl.d/90-lvs-dr.conf /etc/lvs-dr/ipvs.rules /etc/lvs-dr/restore.sh /etc/systemd/system/lvs-dr.service /etc/systemd/system/multi-user.target.wants/lvs-dr.service /var/lib/lvs-dr/ownership.json; do [ -e "$f" ] && echo "file $f $(md5sum < $f)"; done';
  const sysctls = 'for f in /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce; do echo "$f=$(cat $f)"; done';
  const ipvs = host.startsWith("director") ? "; ipvsadm -Sn 2>/dev/null | sort" : "";
  return labExecOk(host, `ip -o addr show | awk '{print $2, $3, $4}'; ${sysctls}; ${files}${ipvs}; true`);
}

export async function hostSnapshots(hosts: readonly string[]): Promise<Record<string, string>> {
  return Object.fromEntries(await Promise.all(hosts.map(async (n) => [n, await hostSnapshot(n)] as const)));
}
