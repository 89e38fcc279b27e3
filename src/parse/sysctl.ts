/** Sysctl values as the `sysctl` command prints them (the observe script reads /proc/sys itself). */
import { hostRecord } from "./records";

/** `sysctl a.b.c` output (`net.ipv4.conf.all.arp_ignore = 1`), keyed in slash form. */
export function parseSysctlOutput(text: string): Record<string, string> {
  const out = hostRecord<string>();
  for (const line of text.split("\n")) {
    // Cut at the first `=` rather than a regex with a lazy value and trailing blanks, which
    // backtracks over a long run of blanks.
    const eq = line.indexOf("=");
    const key = eq < 0 ? "" : line.slice(0, eq).trim();
    if (key !== "" && !/[\s=]/.test(key)) out[key.replace(/\./g, "/")] = line.slice(eq + 1).trim();
  }
  return out;
}
