/**
 * The two scripts the tool ever sends to a host: one that observes everything the planner
 * needs in one round trip, and one that applies a host's steps in one batch under a lock.
 * Output lines starting with `@@lvsdr` are markers the parse layer reads (model/script-protocol.ts).
 */
import { isIpvsStep, type HostWavePlan, type Step } from "../model/steps";
import type { DestinationState, HostStateScope, InterfaceAddress, RenderedFile, VirtualServiceState } from "../model/host-state";
import { holdAnswers, marker, refusalCodes } from "../model/script-protocol";
import { hostPort, serviceKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { describeStep } from "./describe";
import { renderOwnershipFile } from "./files";
import { ipvsLine, serviceSelectorFromKey } from "./ipvsadm";
import {
  assertAddress,
  assertInterface,
  assertManagedPath,
  assertSysctlKey,
  assertSysctlValue,
  assertUint,
  heredoc,
  quote,
} from "./shell";

const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH";

/**
 * A large script is sent on stdin and run once all of it has arrived: `cat` reads it in large
 * blocks. `sh -s` would read it from the pipe one byte per read(2) (bash must not consume input
 * meant for the script's commands), which on a slow host costs more than the script's work: a
 * 1.2 MB script took 138 s through `sh -s` on the lab's emulated director and 3.8 s this way.
 */
const runScriptFromStdin = `lvsdr_script=$(cat) || exit 125; eval "$lvsdr_script"`;

/**
 * Scripts up to this size travel in the exec request itself, as one argument of `sh -c`: no
 * process reads them (a `cat` costs 70 ms on the emulated director). Linux refuses a single
 * argument over 128 KiB (MAX_ARG_STRLEN), and sudo logs its command line, so keep well below.
 */
export const inlineScriptLimit = 64 * 1024;

/**
 * How a script reaches the host: the command of the exec request, and what goes on stdin.
 *
 * Without sudo, the login shell sshd starts runs the script itself (`eval`): on a host where
 * starting a process is slow, a second shell is the largest cost of a round trip (60 ms of the
 * emulated director's 90 ms for `true`). zsh is not POSIX by default (no word splitting), so it
 * hands the script to /bin/sh; csh and fish never could run these commands. With sudo, `exec`
 * replaces the login shell by sudo and a POSIX shell.
 *
 * With a timeout, the script first starts its own deadline on the host (`hostDeadline`).
 */
export function remoteInvocation(script: string, sudo: boolean, timeoutMs?: number): { command: string; stdin: string } {
  const text = withDeadline(script, timeoutMs);
  const inline = Buffer.byteLength(text) <= inlineScriptLimit;
  const program = quote(inline ? text : runScriptFromStdin);
  const stdin = inline ? "" : text;
  if (sudo) return { command: `exec sudo -n /bin/sh -c ${program}`, stdin };
  return { command: `lvsdr_script=${program}; [ -z "\${ZSH_VERSION-}" ] || exec /bin/sh -c "$lvsdr_script"; eval "$lvsdr_script"`, stdin };
}

/** Whether a script travels in the exec request, leaving its stdin free (see `remoteInvocation`). */
export function travelsInline(script: string, timeoutMs?: number): boolean {
  return Buffer.byteLength(withDeadline(script, timeoutMs)) <= inlineScriptLimit;
}

function withDeadline(script: string, timeoutMs: number | undefined): string {
  return timeoutMs === undefined ? script : hostDeadline(Math.ceil(timeoutMs / 1000) + 1) + script;
}

/**
 * The host's own deadline for a script: OpenSSH does not always honour signal requests, and
 * closing the channel leaves a running script (and its `flock`) alive. A background watchdog
 * kills the script and everything it started once `seconds` have passed (a second after our
 * own timer, so the local "timeout" error is what the caller sees), and is itself stopped when
 * the script exits. Builtins only, but for one `sleep`: no `timeout` process and no second
 * shell in the way of every apply. The process tree is found in /proc rather than by process
 * group, which is not the script's own under every SSH server.
 */
function hostDeadline(seconds: number): string {
  return [
    "lvsdr_main=$$",
    "(",
    // Stopped (TERM) as soon as the script ends, which can be before the sleep's pid is known:
    // the trap then only notes it. The sleep gets KILL: a TERM that reaches it between fork and
    // exec is caught by the shell's handler and lost, leaving the sleep behind.
    "  lvsdr_sleep= lvsdr_stop=",
    `  trap 'if [ -n "$lvsdr_sleep" ]; then kill -s KILL "$lvsdr_sleep" 2>/dev/null; exit 0; fi; lvsdr_stop=1' TERM`,
    `  sleep ${assertUint(seconds)} & lvsdr_sleep=$!`,
    '  if [ -n "$lvsdr_stop" ]; then kill -s KILL "$lvsdr_sleep" 2>/dev/null; exit 0; fi',
    '  wait "$lvsdr_sleep" || exit 0',
    // This watchdog's own pid (a builtin's redirection is opened by the shell itself), so that
    // it kills every other process of the tree before it ends.
    "  read -r lvsdr_self < /proc/self/stat; lvsdr_self=${lvsdr_self%% *}",
    '  lvsdr_tree=" $lvsdr_main $lvsdr_self " lvsdr_kill=$lvsdr_main lvsdr_grown=1',
    '  while [ -n "$lvsdr_grown" ]; do',
    "    lvsdr_grown=",
    "    for f in /proc/[0-9]*/stat; do",
    '      l=; read -r l 2>/dev/null < "$f" || continue',
    '      p=${f#/proc/} && p=${p%/stat}',
    // After the command name (which may hold spaces): state, parent, ...
    '      set -- ${l##*") "}',
    '      case "$lvsdr_tree" in *" $p "*) ;; *" ${2:-x} "*) lvsdr_tree="$lvsdr_tree$p " lvsdr_kill="$lvsdr_kill $p" lvsdr_grown=1 ;; esac',
    "    done",
    "  done",
    "  kill -s KILL $lvsdr_kill",
    ") </dev/null >/dev/null 2>&1 &",
    "lvsdr_watchdog=$!",
    `trap 'kill "$lvsdr_watchdog" 2>/dev/null' EXIT`,
    "",
  ].join("\n");
}

/**
 * The IPVS table's fingerprint on the host: the SHA-256 of `ipvsadm -Sn`'s output, which the
 * parse layer computes from the same bytes of the observe script's output.
 */
const ipvsFingerprint = `lvsdr_fp=$(ipvsadm -Sn | sha256sum) && lvsdr_fp=\${lvsdr_fp%% *}`;

/**
 * A table listed in at most this many bytes is checked against the text observed, in the apply
 * script itself: no sha256sum process. A larger one is checked by its fingerprint, so that the
 * script does not carry the table twice.
 */
const wholeListingLimit = 16 * 1024;

/**
 * Sets `$lvsdr_state` to the SHA-256 of what a plan for the host depends on (`HostStateScope`):
 * each address on the scope's interfaces (interface, family, address/prefix: not lifetimes, which
 * count down), which of the files are links or there, and the /proc/sys values and files' text.
 * The observe script prints it and the apply script compares it: both render it here, so the two
 * hash the same bytes. Three processes (ip, grep, sha256sum): only a plan asks for it.
 */
function stateDigestCommand(scope: HostStateScope): string {
  const interfaces = scope.interfaces.map((i) => quote(assertInterface(i))).join("|");
  const files = scope.files.map((f) => quote(assertManagedPath(f))).join(" ");
  const values = [...scope.sysctlKeys.map((k) => quote(`/proc/sys/${assertSysctlKey(k)}`)), files].filter(Boolean).join(" ");
  return [
    "lvsdr_state=$({",
    `  ip -o addr show 2>/dev/null | while read -r _ lvsdr_dev lvsdr_fam lvsdr_cidr _; do case "\${lvsdr_dev%%@*}" in ${interfaces || "''"}) echo "\${lvsdr_dev%%@*} $lvsdr_fam $lvsdr_cidr" ;; esac; done`,
    ...(files ? [`  for lvsdr_f in ${files}; do if [ -L "$lvsdr_f" ]; then echo "link $lvsdr_f"; elif [ -e "$lvsdr_f" ]; then echo "file $lvsdr_f"; fi; done`] : []),
    `  LC_ALL=C grep -s -H '' ${values || "/dev/null"} || :`,
    "} | sha256sum) && lvsdr_state=${lvsdr_state%% *}",
  ].join("\n");
}

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
  /** A plan's observation: the host's state digest over this scope (`@@lvsdr state <sha256>`). */
  state?: HostStateScope;
}

/** The commands the tool runs on hosts, as the observe script looks them up. */
export const observedTools = ["ip", "ipvsadm", "flock", "grep", "sha256sum", "modprobe", "sysctl", "arping"] as const;

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
      // Both listings from one process (-R runs each line as a command): the rules form, then
      // the thresholds listing, which has what the rules form leaves out (thresholds, counters).
      "  ipvsadm -R <<'LVSDR_IPVS'",
      "-S -n",
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
  if (req.state) lines.push(stateDigestCommand(req.state), `echo "${marker} state $lvsdr_state"`);
  // Addresses, the neighbour table when asked (the section's header says so), then one route
  // lookup per on-link peer: one JSON array per line. `-force` goes on past an unreachable
  // target, which prints nothing.
  const batch = ["addr show", ...(req.neighbours ? ["neigh show"] : []), ...req.routeTargets.map((t) => `route get ${assertAddress(t)}`)];
  lines.push(`echo '${marker} section ip${req.neighbours ? " neigh" : ""}'`, `ip -j -force -batch - 2>/dev/null <<'LVSDR_IP' || :`, ...batch, "LVSDR_IP");
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
  // in the spec are seen too), the spec's keys (one that does not exist says so first), and the
  // files gathered above, from one grep: with -z a file without NUL bytes is one record, printed
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
    `LC_ALL=C grep -z -s '' /dev/null ${globs.map((g) => `/proc/sys/net/ipv4/conf/*/${g}`).join(" ")}${extraPaths.map((k) => ` ${k.path}`).join("")} $lvsdr_read || :`,
  );
  lines.push(`echo '${marker} end'`);
  return lines.join("\n") + "\n";
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
  return [
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
  ].join("\n") + "\n";
}

/** Shell for one step. IPVS steps are batched separately (see `renderApplyScript`). */
function stepCommand(step: Step): string {
  switch (step.op) {
    case "set-sysctl":
    case "restore-sysctl": {
      const write = `printf '%s\\n' ${quote(assertSysctlValue(step.sysctl.value))} > ${quote(`/proc/sys/${assertSysctlKey(step.sysctl.key)}`)}`;
      // IPVS parameters exist once ip_vs is loaded.
      return step.sysctl.key.startsWith("net/ipv4/vs/") ? `[ -e /proc/net/ip_vs ] || modprobe ip_vs\n${write}` : write;
    }
    case "set-ipvs-timeouts":
      return `[ -e /proc/net/ip_vs ] || modprobe ip_vs\nipvsadm --set ${assertUint(step.timeouts.tcp)} ${assertUint(step.timeouts.tcpFin)} ${assertUint(step.timeouts.udp)}`;
    case "add-address": {
      const a = step.address;
      return `ip addr replace ${quote(`${assertAddress(a.address)}/${assertUint(a.prefix, 128)}`)} dev ${quote(assertInterface(a.interface))}`;
    }
    case "remove-address":
      return removeAddressCommand(step.address);
    case "write-file":
      return writeFileCommand(step.file, "when-replacing");
    case "remove-file":
      return `rm -f ${quote(assertManagedPath(step.path))}`;
    case "record-ownership":
      return step.record
        ? // A half-written record would stop every later run: it always replaces atomically.
          writeFileCommand(renderOwnershipFile(step.record), "always")
        : // Nothing managed here any more: the record goes, and the tool's directories if empty.
          `rm -f ${quote(hostPaths.ownership)}\nrmdir /var/lib/lvs-dr /etc/lvs-dr 2>/dev/null || :`;
    case "wait-drained":
      return waitDrainedCommand(step.destinations, step.timeoutSeconds, step.pollSeconds);
    case "add-service":
    case "edit-service":
    case "remove-service":
    case "add-destination":
    case "edit-destination":
    case "drain-destination":
    case "remove-destination":
      return heredoc("ipvsadm -R", ipvsRestoreLine(step), "LVSDR_IPVS");
    case "write-keepalived-config":
      return writeKeepalivedConfigCommand(step.file);
    case "reload-keepalived":
      // A reload keeps established connections and the VRRP state; systemd starts it if it is stopped.
      return [
        ...(step.daemonReload ? ["systemctl daemon-reload </dev/null"] : []),
        ...(step.enable ? [enableKeepalived("enable")] : []),
        `systemctl ${step.restart ? "restart" : "reload-or-restart"} keepalived </dev/null`,
      ].join("\n");
    case "stop-keepalived":
      return [`systemctl stop keepalived </dev/null`, enableKeepalived("disable"), ...step.leftoverVips.map(removeAddressCommand)].join("\n");
    case "wait-keepalived-ready":
      return waitKeepalivedCommand(step.services, "ready", step.timeoutSeconds);
    case "wait-keepalived-released":
      return waitKeepalivedCommand(step.services, "released", step.timeoutSeconds);
    case "remove-stray-destination":
      return `ipvsadm ${ipvsLine.removeDestination(step.destination)} 2>/dev/null || :`;
    default: {
      const never: never = step;
      throw new Error(`unknown step ${JSON.stringify(never)}`);
    }
  }
}

/**
 * A file's content is written by `printf`, a builtin (no process per file), to a temporary
 * name, and renamed over the old file so that nothing ever reads half of it. A file that does
 * not exist yet is written in place, saving the `mv` (a process start: 40-80 ms on a slow
 * host): nothing reads it before the steps after it run (the unit's link, the ownership
 * record), and a run cut short is seen and rewritten by the next one.
 * The directory exists: the apply script creates every parent directory up front.
 */
function writeFileCommand(f: RenderedFile, rename: "always" | "when-replacing"): string {
  const path = quote(assertManagedPath(f.path));
  if ("linkTarget" in f) return `ln -sfn ${quote(assertManagedPath(f.linkTarget))} ${path}`;
  const tmp = quote(`${f.path}.lvsdr-new`);
  const chmod = (target: string) => (f.mode === 0o644 ? "" : ` && chmod ${f.mode.toString(8)} ${target}`);
  if (rename === "always") return `printf '%s' ${quote(f.content)} > ${tmp}${chmod(tmp)} && mv -f ${tmp} ${path}`;
  return [
    `lvsdr_to=${tmp}; [ -e ${path} ] || [ -L ${path} ] || lvsdr_to=${path}`,
    `printf '%s' ${quote(f.content)} > "$lvsdr_to"${chmod('"$lvsdr_to"')}`,
    `[ "$lvsdr_to" = ${path} ] || mv -f ${tmp} ${path}`,
  ].join("\n");
}

/** Removes an address if the interface still holds it (an absent one is not an error). */
function removeAddressCommand(a: InterfaceAddress): string {
  const cidr = quote(`${assertAddress(a.address)}/${assertUint(a.prefix, 128)}`);
  const dev = quote(assertInterface(a.interface));
  return `if ip -o addr show dev ${dev} to ${cidr} 2>/dev/null | grep -q .; then ip addr del ${cidr} dev ${dev}; fi`;
}

/**
 * keepalived's configuration goes in only once keepalived's own check accepts it: written beside
 * the old file, checked (`-t`, whose exit code says whether the file is usable), renamed over it.
 * A file it refuses is removed and the run stops before any reload, so keepalived keeps running
 * with the configuration it had.
 */
function writeKeepalivedConfigCommand(f: RenderedFile): string {
  if ("linkTarget" in f) throw new Error("keepalived's configuration is a file, not a link");
  const path = quote(assertManagedPath(f.path));
  const tmp = quote(`${f.path}.lvsdr-new`);
  return [
    `[ -d ${quote(f.path.slice(0, f.path.lastIndexOf("/")))} ] || mkdir -p ${quote(f.path.slice(0, f.path.lastIndexOf("/")))}`,
    `(umask 077 && printf '%s' ${quote(f.content)} > ${tmp})`,
    `if ! lvsdr_kt=$(keepalived -t -f ${tmp} 2>&1 </dev/null); then rm -f ${tmp}; printf '%s\\n' "${marker} error keepalived refused the configuration:" "$lvsdr_kt" >&2; exit ${refusalCodes.keepalivedConfigRefused}; fi`,
    `mv -f ${tmp} ${path}`,
  ].join("\n");
}

/**
 * Enabling keepalived is its unit's link, nothing more: without SYSTEMCTL_SKIP_SYSV, systemctl also
 * runs Debian's update-rc.d for the package's init script (7 s on the lab's director), and
 * without --no-reload a daemon-reload (2 s), which only a changed unit file needs.
 */
function enableKeepalived(verb: "enable" | "disable"): string {
  return `SYSTEMCTL_SKIP_SYSV=1 systemctl ${verb} --no-reload --quiet keepalived </dev/null`;
}

/**
 * Polls the IPVS table until keepalived has put a real server (or the sorry server) with a
 * weight into each service (`ready`), or deleted each service (`released`). Ready only warns at
 * the timeout (a service whose real servers are all down is health, not a failed apply);
 * released fails, since adding the service back would.
 */
function waitKeepalivedCommand(services: VirtualServiceState[], until: "ready" | "released", timeoutSeconds: number): string {
  const wanted = services.map((s) => listedService(serviceKey(s))).join(" ");
  const count =
    until === "ready"
      ? `awk -v want=${quote(wanted)} 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 } $1 == "TCP" || $1 == "UDP" || $1 == "FWM" { s = $1 "/" $2; next } $1 == "->" && (s in k) && $4 > 0 { up[s] = 1 } END { for (s in k) if (!(s in up)) m++; print m + 0 }'`
      : `awk -v want=${quote(wanted)} 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 } ($1 == "TCP" || $1 == "UDP" || $1 == "FWM") && (($1 "/" $2) in k) { m++ } END { print m + 0 }'`;
  const onTimeout =
    until === "ready"
      ? `echo "${marker} warn no healthy real server yet in $lvsdr_left of ${services.length} keepalived service(s) after ${assertUint(timeoutSeconds)}s"; break`
      : `echo '${marker} error keepalived did not let go of its services in ${assertUint(timeoutSeconds)}s' >&2; exit 78`;
  return [
    `lvsdr_deadline=$(( $(date +%s) + ${assertUint(timeoutSeconds)} ))`,
    "while :; do",
    `  lvsdr_left=$(ipvsadm -Ln 2>/dev/null | ${count})`,
    '  [ "${lvsdr_left:-0}" -eq 0 ] && break',
    `  if [ "$(date +%s)" -ge "$lvsdr_deadline" ]; then ${onTimeout}; fi`,
    // Released: the service is re-added the moment it is gone, so poll without sleeping.
    until === "ready" ? "  sleep 0.2 2>/dev/null || sleep 1" : "  :",
    "done",
  ].join("\n");
}

/**
 * After the unit or its link changed, a running systemd reloads so that it sees the host as it
 * will boot: the unit known and enabled after an apply, gone after a destroy. A removed unit that
 * ran at this boot is stopped first, or systemd keeps it loaded and active without its file. It
 * is never started here: the steps did what its boot script would do, and `ipvsadm -R` would
 * refuse entries that exist. A host without systemd, or one whose systemd cannot be reached,
 * keeps what the steps did; the files are what the next boot reads.
 */
function systemdReloadCommand(steps: readonly Step[]): string | null {
  const unitFiles: string[] = [hostPaths.systemdUnit, hostPaths.systemdUnitLink, hostPaths.keepalivedDropIn];
  const touched = steps.some((s) => (s.op === "write-file" && unitFiles.includes(s.file.path)) || (s.op === "remove-file" && unitFiles.includes(s.path)));
  if (!touched) return null;
  const unit = quote(assertManagedPath(hostPaths.systemdUnit));
  const name = quote(hostPaths.systemdUnit.slice(hostPaths.systemdUnit.lastIndexOf("/") + 1));
  return `if [ -d /run/systemd/system ]; then { [ -e ${unit} ] || systemctl stop ${name}; systemctl daemon-reload; } </dev/null >/dev/null 2>&1 || :; fi`;
}

/**
 * Tells neighbours about an address the script added (gratuitous ARP), in the background and
 * after the last step: nothing waits on it, and on a host with one slow CPU it does not hold up
 * the steps. Not even the host lock waits: without `9>&-` arping would hold it for the second
 * it runs. Two arpings share the name: Habets' (Debian's `arping` package) takes the interface
 * with `-i` and needs the address as its source (`-S`); iputils' takes `-I`. Each refuses the
 * other's form at once, so both forms are sent.
 */
function announceCommand(a: InterfaceAddress): string | null {
  if (a.interface === "lo" || a.address.includes(":")) return null;
  const dev = quote(assertInterface(a.interface));
  const vip = quote(assertAddress(a.address));
  return `(command -v arping >/dev/null 2>&1 && { arping -q -U -c 1 -i ${dev} -S ${vip} ${vip}; arping -q -U -c 1 -I ${dev} ${vip}; }) </dev/null >/dev/null 2>&1 9>&- &`;
}

function ipvsRestoreLine(step: Step): string {
  switch (step.op) {
    case "add-service":
      return ipvsLine.addService(step.service);
    case "edit-service":
      return ipvsLine.editService(step.service);
    case "remove-service":
      return ipvsLine.removeService(step.service);
    case "add-destination":
      return ipvsLine.addDestination(step.destination);
    case "edit-destination":
      return ipvsLine.editDestination(step.destination);
    case "drain-destination":
      return ipvsLine.editDestination(step.destination, 0);
    case "remove-destination":
      return ipvsLine.removeDestination(step.destination);
    default:
      throw new Error(`${step.op} is not an IPVS step`);
  }
}

/** How `ipvsadm -Ln` heads a service: `TCP  198.51.100.5:80`, `FWM  7` (joined with "/" here). */
function listedService(key: string): string {
  serviceSelectorFromKey(key); // refuses anything that is not a valid service key
  const fw = /^fwmark6?:(\d+)$/.exec(key);
  if (fw) return `FWM/${fw[1]}`;
  const m = /^(tcp|udp):(.+)$/.exec(key);
  if (!m) throw new Error(`refusing to render service key "${key}"`);
  return `${m[1]!.toUpperCase()}/${m[2]}`;
}

/**
 * Polls active connections of the drained destinations; gives up at the timeout (the
 * destinations are removed either way, as the spec asks). One listing per poll, whatever the
 * number of destinations.
 */
function waitDrainedCommand(destinations: DestinationState[], timeoutSeconds: number, pollSeconds: number): string {
  // Keys are validated addresses and ports, so they hold no spaces; awk splits the list on them.
  const wanted = destinations.map((d) => `${listedService(d.service)}|${hostPort(assertAddress(d.address), assertUint(d.port, 65535))}`).join(" ");
  const sum = `awk -v want=${quote(wanted)} 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 } $1 == "TCP" || $1 == "UDP" || $1 == "FWM" { s = $1 "/" $2; next } $1 == "->" && ((s "|" $2) in k) { a += $5 } END { print a + 0 }'`;
  return [
    `lvsdr_deadline=$(( $(date +%s) + ${assertUint(timeoutSeconds)} ))`,
    "while :; do",
    `  lvsdr_active=$(ipvsadm -Ln --exact 2>/dev/null | ${sum})`,
    '  [ "${lvsdr_active:-0}" -eq 0 ] && break',
    `  if [ "$(date +%s)" -ge "$lvsdr_deadline" ]; then echo "${marker} warn drain timed out with $lvsdr_active active connections"; break; fi`,
    `  sleep ${assertUint(pollSeconds, 60)}`,
    "done",
  ].join("\n");
}

/** Up to this many IPVS changes are announced one by one; a larger batch as one line. */
const progressLinesPerBatch = 50;

/**
 * Progress markers for the IPVS steps [from, to), which run as one `ipvsadm -R`. One builtin
 * call: on a slow host each `echo` down the SSH channel costs a write (0.3 ms each on the lab's
 * emulated director, 3 s for 11,000 steps).
 */
function batchProgress(steps: readonly Step[], from: number, to: number): string {
  const total = steps.length;
  if (to - from > progressLinesPerBatch) {
    const first = describeStep(steps[from] as Step);
    const last = describeStep(steps[to - 1] as Step);
    return `echo ${quote(`${marker} step ${to}/${total} ${to - from} IPVS changes in one batch (steps ${from + 1}-${to}: ${first} ... ${last})`)}`;
  }
  const each = steps.slice(from, to).map((s, k) => quote(`${marker} step ${from + k + 1}/${total} ${describeStep(s)}`));
  return `printf '%s\\n' ${each.join(" ")}`;
}


export interface ApplyScriptOptions {
  /** Seconds to wait for another run's lock. */
  lockWaitSeconds?: number;
  /**
   * Start now, change nothing until told: after the lock and the IPVS check, print
   * `@@lvsdr ready` and wait for a line on stdin (`holdAnswers`). The round trip and the checks
   * then overlap the wave before, while the safe order still holds for every change.
   */
  held?: boolean;
}

/**
 * One host's steps for one wave as a single `set -eu` script under `flock`. Consecutive IPVS
 * steps go to one `ipvsadm -R` process, so a 10,000-entry change is one process, not 10,000.
 */
export function renderApplyScript(plan: HostWavePlan, options: ApplyScriptOptions = {}): string {
  const lockWaitSeconds = options.lockWaitSeconds ?? 60;
  const dirs = new Set<string>([hostPaths.lockDir]);
  for (const step of plan.steps) {
    const path = step.op === "write-file" ? step.file.path : step.op === "record-ownership" && step.record ? hostPaths.ownership : null;
    if (path) dirs.add(path.slice(0, path.lastIndexOf("/")));
  }
  const lines = [
    "set -eu",
    PATH,
    "umask 022",
    // `mkdir` only when a directory is missing: a test is a builtin, mkdir a process.
    `${[...dirs].map((d) => `[ -d ${quote(assertManagedPath(d))} ]`).join(" && ")} || mkdir -p ${[...dirs].map((d) => quote(assertManagedPath(d))).join(" ")}`,
    `exec 9>>${quote(hostPaths.lock)}`,
    `if ! flock -w ${assertUint(lockWaitSeconds)} 9; then echo '${marker} error another lvs-dr run holds ${hostPaths.lock}' >&2; exit ${refusalCodes.lockHeld}; fi`,
  ];
  if (plan.expectedIpvsFingerprint !== null) {
    if (!/^[0-9a-f]{64}$/.test(plan.expectedIpvsFingerprint)) throw new Error("invalid IPVS fingerprint");
    const changed = `echo '${marker} error the IPVS table changed since it was observed; run again' >&2; exit ${refusalCodes.ipvsChanged}`;
    const listing = plan.expectedIpvsListing;
    if (listing === "") {
      // Observed empty (a first apply): the kernel's own listing still has nothing after its
      // three header lines. Read with builtins: no process at all (ipvsadm costs about 100 ms on
      // the lab's emulated director, grep 30, where this check runs while the real servers get
      // ready and can outlast them).
      lines.push(
        `lvsdr_line=; if [ ! -e /proc/net/ip_vs ] || { read -r _; read -r _; read -r _; read -r lvsdr_line || [ -n "$lvsdr_line" ]; } < /proc/net/ip_vs; then ${changed}; fi`,
      );
    } else if (listing !== null && Buffer.byteLength(listing) <= wholeListingLimit) {
      // `$(...)` drops trailing newlines: so does the expected text.
      lines.push(`if [ ! -e /proc/net/ip_vs ] || [ "$(ipvsadm -Sn)" != ${quote(listing.replace(/\n+$/, ""))} ]; then ${changed}; fi`);
    } else {
      lines.push(`if [ -e /proc/net/ip_vs ]; then ${ipvsFingerprint}; else lvsdr_fp=none; fi`, `if [ "$lvsdr_fp" != ${quote(plan.expectedIpvsFingerprint)} ]; then ${changed}; fi`);
    }
  }
  if (plan.expectedState) {
    if (!/^[0-9a-f]{64}$/.test(plan.expectedState.sha256)) throw new Error("invalid host state digest");
    lines.push(
      stateDigestCommand(plan.expectedState),
      `if [ "$lvsdr_state" != ${plan.expectedState.sha256} ]; then echo '${marker} error this host changed since the plan was made (its addresses, kernel settings or the tool files); nothing was changed on it' >&2; exit ${refusalCodes.hostChanged}; fi`,
    );
  }
  if (options.held) {
    lines.push(
      `echo '${marker} ready'`,
      "lvsdr_go=; read -r lvsdr_go || :",
      `if [ "$lvsdr_go" != go ]; then echo '${marker} held back'; exit 0; fi`,
    );
  }
  const steps = plan.steps;
  for (let i = 0; i < steps.length; ) {
    const step = steps[i] as Step;
    if (isIpvsStep(step)) {
      let j = i;
      const batch: string[] = [];
      while (j < steps.length && isIpvsStep(steps[j] as Step)) batch.push(ipvsRestoreLine(steps[j++] as Step));
      lines.push(batchProgress(steps, i, j), "[ -e /proc/net/ip_vs ] || modprobe ip_vs 2>/dev/null || :", heredoc("ipvsadm -R", batch.join("\n"), "LVSDR_IPVS"));
      i = j;
      continue;
    }
    lines.push(`echo ${quote(`${marker} step ${i + 1}/${steps.length} ${describeStep(step)}`)}`, stepCommand(step));
    i++;
  }
  const systemdCommand = systemdReloadCommand(steps);
  if (systemdCommand) lines.push(systemdCommand);
  // What a host restores at boot must be on disk before the run says done: a power cut or a hard
  // reset seconds after an apply would otherwise boot without files the kernel had not written yet.
  if (steps.some((s) => s.op === "write-file" || s.op === "remove-file" || s.op === "record-ownership" || s.op === "write-keepalived-config")) lines.push("sync");
  for (const step of steps) {
    const announce = step.op === "add-address" ? announceCommand(step.address) : null;
    if (announce) lines.push(announce);
  }
  lines.push(`echo '${marker} done'`);
  return lines.join("\n") + "\n";
}

export { stepCommand as renderStepCommand };
