/** Sysctl values: the observe script's `path:value` lines and `sysctl` command output. */
import { ParseError } from "./ipvsadm";

/**
 * `grep '' /dev/null /proc/sys/...` output: `/proc/sys/net/ipv4/conf/all/arp_ignore:1` per
 * line (sysctl paths hold no colon), or `<key>!absent` when a key does not exist.
 */
export function parseSysctlFiles(text: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.endsWith("!absent")) {
      out[line.slice(0, -"!absent".length)] = null;
      continue;
    }
    const m = /^\/proc\/sys\/([^:]+):(.*)$/.exec(line);
    if (!m) throw new ParseError("sysctl values", `unexpected line "${line}"`);
    out[m[1]!] = m[2]!.trim();
  }
  return out;
}

/** `sysctl a.b.c` output (`net.ipv4.conf.all.arp_ignore = 1`), keyed in slash form. */
export function parseSysctlOutput(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[(m[1] as string).replace(/\./g, "/")] = m[2] as string;
  }
  return out;
}
