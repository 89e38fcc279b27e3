/** Sysctl values as the `sysctl` command prints them (the observe script reads /proc/sys itself). */

/** `sysctl a.b.c` output (`net.ipv4.conf.all.arp_ignore = 1`), keyed in slash form. */
export function parseSysctlOutput(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[(m[1] as string).replace(/\./g, "/")] = m[2] as string;
  }
  return out;
}
