/**
 * The scripts that read a host without changing it: the observe script, which prints everything
 * the planner needs in one round trip, and the ARP probe of new RIPs. Output lines starting with
 * `@@lvsdr` are markers the parse layer reads (model/script-protocol.ts).
 */
import { marker } from "../model/script-protocol";
import { PATH } from "./script-common";
import { assertAddress, assertInterface, assertManagedPath, assertSysctlKey, assertUint, quote } from "./shell";

export interface ObserveRequest {
  sysctlKeys: string[];
  filePaths: string[];
  /** Which of the commands the tool needs the host has: only preflight asks. */
  tools: boolean;
  /** Route lookups for the same-broadcast-domain check: only preflight asks. */
  routeTargets: string[];
  ipvs: boolean;
  /** Links whose expected target is known: checked with the `-ef` test, so `readlink` runs only when they differ. */
  linkTargets: Record<string, string>;
  /**
   * A director about to apply: its neighbour table, from the same `ip -batch`. Which RIPs have a
   * resolved entry decides, once the plan says which RIPs are new, whether any must be asked.
   */
  neighbours?: boolean;
  /** A director: whether keepalived is installed, running and enabled at boot (builtins only). */
  keepalived?: boolean;
  /** The IPv4 default routes, from the same `ip -batch`: what strict rp_filter judges a client's packets by. */
  defaultRoute?: boolean;
  /**
   * The doctor, on a real server: the sockets bound on these ports (TCP listening, UDP bound),
   * filtered on the host by one `grep` so a busy server's connection table does not travel.
   */
  listeners?: { protocol: "tcp" | "udp"; port: number }[];
  /** The doctor, on a director: `ethtool -k` of this interface, when ethtool is installed. */
  offloads?: string;
}

/** The commands the tool runs on hosts, as the observe script looks them up. */
export const observedTools = ["ip", "ipvsadm", "flock", "grep", "sha256sum", "awk", "modprobe", "sysctl", "arping"] as const;

/**
 * The observe script. Hosts can be slow to start a process (the lab's director is an emulated
 * CPU, where each costs 40-120 ms), so it reads through as few as it can: one `ipvsadm` for both
 * listings of the IPVS table; one `ip -batch` for addresses, routes and the neighbour table; one
 * `grep -z` for every /proc/sys value and every file (`readlink` only for a link that is not the
 * expected one). What builtins find is gathered and printed in one write: each write wakes sshd
 * to send a packet, a millisecond or more there. Nothing is decided on the host: what the
 * output means is the parser's and the planner's business.
 */
export function renderObserveScript(req: ObserveRequest): string {
  const lines = ["set -u", PATH, `echo '${marker} observe 6'`];
  if (req.tools) {
    // The names found, one per line, in one write; one redirection for the loop, not one per name.
    lines.push(
      "lvsdr_out=",
      `for t in ${observedTools.join(" ")}; do command -v "$t" && lvsdr_out="$lvsdr_out$t\n"; done >/dev/null 2>&1`,
      `printf '%s\\n%s' '${marker} section tools' "$lvsdr_out"`,
    );
  }
  if (req.ipvs) {
    lines.push(
      "if [ ! -e /proc/net/ip_vs ]; then",
      `  printf '%s\\n' '${marker} section ipvs' '${marker} ipvs not-loaded'`,
      "elif ! command -v ipvsadm >/dev/null 2>&1; then",
      `  printf '%s\\n' '${marker} section ipvs' '${marker} ipvs no-ipvsadm'`,
      "else",
      `  printf '%s\\n' '${marker} section ipvs' '${marker} ipvs loaded'`,
      // One listing (services, thresholds, counters) and the timeouts from one process (-R runs
      // each line as a command). Weights and forwarding come from the kernel's own listing, read
      // with the files below: a second ipvsadm listing costs half a second on a 10,000-entry table.
      "  ipvsadm -R <<'LVSDR_IPVS'",
      "-L -n --exact --thresholds",
      "-L --timeout",
      "LVSDR_IPVS",
      "fi",
    );
  }
  if (req.keepalived) {
    // Running: the pid in its pid file is alive. Enabled: systemd's link for multi-user.target.
    lines.push(
      "lvsdr_k=",
      'command -v keepalived >/dev/null 2>&1 && lvsdr_k="$lvsdr_k installed"',
      '[ -e /etc/systemd/system/multi-user.target.wants/keepalived.service ] && lvsdr_k="$lvsdr_k enabled"',
      "lvsdr_pid=; { read -r lvsdr_pid < /run/keepalived.pid; } 2>/dev/null || :",
      'case "$lvsdr_pid" in "" | *[!0-9]*) ;; *) [ -d "/proc/$lvsdr_pid" ] && lvsdr_k="$lvsdr_k running" ;; esac',
      `echo "${marker} keepalived$lvsdr_k"`,
    );
  }
  // Addresses, the neighbour table when asked (the section's header says so), then one route
  // lookup per on-link peer: one JSON array per line. `-force` goes on past an unreachable
  // target, which prints nothing.
  // The header names the optional lines in their order. `route show default` always prints one
  // line (`[]` without a default route), so the lines after it stay in place.
  const batch = [
    "addr show",
    ...(req.neighbours ? ["neigh show"] : []),
    ...(req.defaultRoute ? ["route show default"] : []),
    ...req.routeTargets.map((t) => `route get ${assertAddress(t)}`),
  ];
  const ipWords = `${req.neighbours ? " neigh" : ""}${req.defaultRoute ? " default" : ""}`;
  lines.push(`echo '${marker} section ip${ipWords}'`, `ip -j -force -batch - 2>/dev/null <<'LVSDR_IP' || :`, ...batch, "LVSDR_IP");
  lines.push(...listenerLines(req.listeners ?? []), ...offloadLines(req.offloads));
  // Files: a link's target (printed at once: rare), or a regular file's path gathered in
  // $lvsdr_read (managed paths are single words without glob characters) for the grep below.
  // The other lines gather in $lvsdr_out.
  lines.push(
    "lvsdr_out= lvsdr_read=",
    "lvsdr_file() {",
    `  if [ -L "$1" ]; then echo "${marker} file link $1"; if [ -n "\${2-}" ] && [ "$1" -ef "$2" ]; then printf '%s\\n' "$2"; else readlink "$1"; fi`,
    `  elif [ -f "$1" ]; then lvsdr_out="$lvsdr_out${marker} file read $1\n" lvsdr_read="$lvsdr_read $1"`,
    `  else lvsdr_out="$lvsdr_out${marker} file absent $1\n"; fi`,
    "}",
  );
  for (const file of req.filePaths) {
    const expected = req.linkTargets[file];
    lines.push(`lvsdr_file ${quote(assertManagedPath(file))}${expected ? ` ${quote(assertManagedPath(expected))}` : ""}`);
  }
  // Every interface's ARP and reverse-path settings (so settings owned on an interface no longer
  // in the spec are seen too), the spec's keys (one that does not exist says so first), on a
  // director the kernel's IPVS listing, and the files gathered above, from one grep: with -z a file without NUL bytes is one record, printed
  // exactly as `path:content` and a NUL (/dev/null makes even a single file print its path; no
  // path here holds a colon). This section comes last: the parser reads it by records, since a
  // file's lines may look like anything, even a marker.
  const globs = ["arp_ignore", "arp_announce", "rp_filter"];
  const keyPaths = req.sysctlKeys.map((key) => ({ key: assertSysctlKey(key), path: quote(`/proc/sys/${key}`) }));
  // A key the globs read already is not read twice.
  const globbed = new RegExp(`^net/ipv4/conf/[^/]+/(${globs.join("|")})$`);
  const extraPaths = keyPaths.filter((k) => !globbed.test(k.key));
  lines.push(
    ...(keyPaths.length ? [`lvsdr_out="$lvsdr_out${marker} section sysctl-absent\n"`] : []),
    ...keyPaths.map((k) => `[ -e ${k.path} ] || lvsdr_out="\${lvsdr_out}${k.key}\n"`),
    `printf '%s%s\\n' "$lvsdr_out" '${marker} section read'`,
    `LC_ALL=C grep -z -s '' /dev/null ${globs.map((g) => `/proc/sys/net/ipv4/conf/*/${g}`).join(" ")}${extraPaths.map((k) => ` ${k.path}`).join("")}${req.ipvs ? " /proc/net/ip_vs" : ""} $lvsdr_read || :`,
  );
  lines.push(`echo '${marker} end'`);
  return lines.join("\n") + "\n";
}

/**
 * Sockets bound on the services' ports, as the kernel lists them (/proc/net/tcp: state 0A is
 * LISTEN; /proc/net/udp: 07 is an unconnected bound socket): one grep over the files of the
 * protocols asked, keeping only lines on those ports in those states.
 */
function listenerLines(listeners: { protocol: "tcp" | "udp"; port: number }[]): string[] {
  if (listeners.length === 0) return [];
  const ports = [...new Set(listeners.map((l) => assertUint(l.port, 65535).toString(16).toUpperCase().padStart(4, "0")))].sort();
  const protocols = [...new Set(listeners.map((l) => l.protocol))].sort();
  const files = protocols.flatMap((p) => [`/proc/net/${p}`, `/proc/net/${p}6`]);
  const pattern = `^ *[0-9]+: [0-9A-F]+:(${ports.join("|")}) [0-9A-F]+:[0-9A-F]+ (0A|07) `;
  return [`echo '${marker} section listeners'`, `LC_ALL=C grep -E -H -s ${quote(pattern)} ${files.join(" ")} || :`];
}

/** A NIC's offloads, when ethtool is there; a marker saying it is not otherwise. */
function offloadLines(iface: string | undefined): string[] {
  if (iface === undefined) return [];
  const dev = assertInterface(iface);
  return [
    "if command -v ethtool >/dev/null 2>&1; then",
    `  echo '${marker} section offloads ${dev}'; ethtool -k ${quote(dev)} 2>/dev/null || :`,
    `else echo '${marker} offloads ${dev} no-ethtool'; fi`,
  ];
}

/**
 * The live half of the same-broadcast-domain check, for the RIPs a director is about to register
 * that had no resolved neighbour entry when it was observed: asks the kernel itself to resolve
 * them (`ip neigh replace ... nud none use` in one `ip -batch`: no datagram sent by the script,
 * no process started per RIP), waits for the answers (every 0.1 s, at most 2 s), and prints a
 * verdict for every RIP in one write. An entry resolved in the meantime is not asked again: on a
 * permanent entry that line would clear it.
 */
export function renderArpProbeScript(iface: string, targets: string[]): string {
  // A validated name needs no quotes, which lets it also stand inside the batch lines below.
  const dev = quote(assertInterface(iface));
  const list = targets.map((t) => assertAddress(t)).join(" ");
  const v6 = targets.some((t) => t.includes(":"));
  return (
    [
      "set -u",
      PATH,
      `echo '${marker} probe 1'`,
      // Resolved neighbours on the interface, as " a b c ": IPv4 from /proc/net/arp (flags 0x2 =
      // complete, 0x6 = permanent) with builtins; IPv6 from `ip -6 neigh`, only when there are IPv6 RIPs.
      "lvsdr_neighbours() {",
      "  lvsdr_ok=' '",
      `  while read -r a _ f _ _ d; do case "$f $d" in '0x2 '${dev} | '0x6 '${dev}) lvsdr_ok="$lvsdr_ok$a " ;; esac; done < /proc/net/arp`,
      ...(v6 ? [`  lvsdr_ok="$lvsdr_ok$(ip -6 neigh show dev ${dev} 2>/dev/null | while read -r a l _; do [ "$l" = lladdr ] && printf '%s ' "$a"; done) "`] : []),
      "}",
      "lvsdr_neighbours",
      // A newline inside the quotes: one batch line per RIP.
      `lvsdr_probe=; for t in ${list}; do case "$lvsdr_ok" in *" $t "*) ;; *) lvsdr_probe="$lvsdr_probe\nneigh replace $t dev ${dev} nud none use" ;; esac; done`,
      'if [ -n "$lvsdr_probe" ]; then',
      "  ip -force -batch - >/dev/null 2>&1 <<LVSDR_IP || :",
      "$lvsdr_probe",
      "LVSDR_IP",
      "  for lvsdr_try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do",
      "    lvsdr_neighbours",
      "    lvsdr_pending=",
      `    for t in ${list}; do case "$lvsdr_ok" in *" $t "*) ;; *) lvsdr_pending=1 ;; esac; done`,
      '    [ -z "$lvsdr_pending" ] && break',
      "    sleep 0.1 2>/dev/null || sleep 1",
      "  done",
      "fi",
      "lvsdr_out=",
      `for t in ${list}; do case "$lvsdr_ok" in *" $t "*) lvsdr_out="$lvsdr_out${marker} arp $t ok\n" ;; *) lvsdr_out="$lvsdr_out${marker} arp $t fail\n" ;; esac; done`,
      `printf '%s' "$lvsdr_out"`,
      `echo '${marker} end'`,
    ].join("\n") + "\n"
  );
}
