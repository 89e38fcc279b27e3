/** Sysctl values: the observe script's `key=value` lines and `sysctl` command output. */

/** Lines `net/ipv4/conf/all/arp_ignore=1`, or `<key>!absent` when the key does not exist. */
export function parseSysctlLines(text: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.endsWith("!absent")) {
      out[line.slice(0, -"!absent".length)] = null;
      continue;
    }
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
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
