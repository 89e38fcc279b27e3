/**
 * The two scripts the tool ever sends to a host: one that observes everything the planner
 * needs in one round trip, and one that applies a host's steps in one batch under a lock.
 * Output lines starting with `@@lvsdr` are markers the parse layer reads.
 */
import type { HostWavePlan, Step } from "../model/steps";
import type { DestinationState } from "../model/host-state";
import { hostPort } from "../model/keys";
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

export const marker = "@@lvsdr";
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
 * `exec` so the login shell sshd starts is replaced, not left as a parent that swallows the
 * signal request. With a timeout, coreutils `timeout` (when the host has it) also enforces the
 * deadline on the host and kills the whole process group: OpenSSH does not always honour signal
 * requests, and closing the channel leaves a running script (and its `flock`) alive. It fires a
 * second after our own timer, so the local "timeout" error is what the caller sees.
 */
export function remoteInvocation(script: string, sudo: boolean, timeoutMs?: number): { command: string; stdin: string } {
  const inline = Buffer.byteLength(script) <= inlineScriptLimit;
  const program = quote(inline ? script : runScriptFromStdin);
  const stdin = inline ? "" : script;
  const prefix = sudo ? "exec sudo -n " : "exec ";
  if (timeoutMs === undefined) return { command: `${prefix}/bin/sh -c ${program}`, stdin };
  const seconds = Math.ceil(timeoutMs / 1000) + 1;
  return { command: `${prefix}/bin/sh -c 'if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL ${seconds} /bin/sh -c "$0"; else eval "$0"; fi' ${program}`, stdin };
}

/**
 * The IPVS table's fingerprint on the host: the SHA-256 of `ipvsadm -Sn`'s output, which the
 * parse layer computes from the same bytes of the observe script's output.
 */
const ipvsFingerprint = `lvsdr_fp=$(ipvsadm -Sn | sha256sum) && lvsdr_fp=\${lvsdr_fp%% *}`;

export interface ObserveRequest {
  sysctlKeys: string[];
  filePaths: string[];
  routeTargets: string[];
  ipvs: boolean;
  /**
   * How file contents come back: as digests from one `sha256sum` (and the ownership record
   * through `base64`), or as text read by shell builtins, which starts no process but suits
   * only small files (a real server's; a director's rules file can hold 10,000 lines).
   */
  readFiles: "with-tools" | "with-builtins";
  /** Links whose expected target is known: checked with the `-ef` test, so `readlink` runs only when they differ. */
  linkTargets: Record<string, string>;
  /** A director about to apply: which RIPs answer ARP on its interface, in the same round trip. */
  arpProbe?: { interface: string; targets: string[] };
}

/**
 * The observe script. Hosts can be slow to fork (the lab's director is an emulated CPU), so it
 * reads /proc with shell builtins and looks up every route in one `ip -batch`.
 */
export function renderObserveScript(req: ObserveRequest): string {
  const lines = [
    "set -u",
    PATH,
    `echo '${marker} observe 1'`,
    `echo '${marker} section tools'`,
    "for t in ip ipvsadm flock sha256sum base64 modprobe sysctl arping; do command -v \"$t\" >/dev/null 2>&1 && echo \"$t\"; done",
    `echo '${marker} section addr'`,
    "ip -j addr show",
  ];
  if (req.ipvs) {
    lines.push(
      `echo '${marker} section ipvs'`,
      "if [ ! -e /proc/net/ip_vs ]; then",
      `  echo '${marker} ipvs not-loaded'`,
      "elif ! command -v ipvsadm >/dev/null 2>&1; then",
      `  echo '${marker} ipvs no-ipvsadm'`,
      "else",
      `  echo '${marker} ipvs loaded'`,
      "  ipvsadm -Sn",
      // -S omits thresholds; the thresholds listing has them and the connection counters.
      `  echo '${marker} section ipvs-thresholds'`,
      "  ipvsadm -Ln --exact --thresholds",
      "fi",
    );
  }
  lines.push(
    `echo '${marker} section sysctl'`,
    // Every interface's ARP and reverse-path settings, so settings owned on an interface no longer in the spec are seen too.
    // dash's `read` returns 1 on /proc files even when it read the value: its status is ignored.
    "for f in /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce /proc/sys/net/ipv4/conf/*/rp_filter; do if [ -r \"$f\" ]; then v=; read -r v < \"$f\" || :; printf '%s=%s\\n' \"${f#/proc/sys/}\" \"$v\"; fi; done",
  );
  for (const key of req.sysctlKeys) {
    const path = quote(`/proc/sys/${assertSysctlKey(key)}`);
    lines.push(`if [ -r ${path} ]; then v=; read -r v < ${path} || :; printf '%s=%s\\n' ${quote(key)} "$v"; else printf '%s\\n' ${quote(`${key}!absent`)}; fi`);
  }
  // Files: a link's target; then either the ownership record whole (the planner reads it) and
  // any other file as its digest, all in one sha256sum (gathered in "$@": paths stay single
  // words), or every file as text read by builtins, each line prefixed so no line reads as a
  // marker ("|" = a line, "/" = a last line without a newline).
  lines.push("set --");
  for (const file of req.filePaths) {
    const p = quote(assertManagedPath(file));
    const expected = req.linkTargets[file];
    const link = expected
      ? `if [ ${p} -ef ${quote(assertManagedPath(expected))} ]; then echo ${quote(expected)}; else readlink ${p}; fi`
      : `readlink ${p}`;
    const present =
      req.readFiles === "with-builtins"
        ? `echo '${marker} file text '${p}; while :; do lvsdr_l=; if IFS= read -r lvsdr_l; then printf '|%s\\n' "$lvsdr_l"; else [ -z "$lvsdr_l" ] || printf '/%s\\n' "$lvsdr_l"; break; fi; done < ${p}`
        : file === hostPaths.ownership
          ? `echo '${marker} file present '${p}; base64 < ${p}`
          : `set -- "$@" ${p}`;
    lines.push(`if [ -L ${p} ]; then echo '${marker} file link '${p}; ${link}; elif [ -f ${p} ]; then ${present}; else echo '${marker} file absent '${p}; fi`);
  }
  lines.push(`if [ "$#" -gt 0 ]; then echo '${marker} section file-digests'; sha256sum "$@"; fi`);
  if (req.routeTargets.length > 0) {
    const targets = req.routeTargets.map((t) => quote(assertAddress(t))).join(" ");
    lines.push(`echo '${marker} section routes'`, `printf 'route get %s\\n' ${targets} | ip -force -j -batch - 2>/dev/null || :`);
  }
  if (req.arpProbe && req.arpProbe.targets.length > 0) lines.push(...arpProbeLines(req.arpProbe.interface, req.arpProbe.targets));
  lines.push(`echo '${marker} end'`);
  return lines.join("\n") + "\n";
}

/**
 * Live ARP probes from a director, all at once: the same-broadcast-domain check for real
 * servers about to be registered. A neighbour entry with a link-layer address already proves
 * an answer; only the others are probed. Prints `@@lvsdr arp <rip> ok|fail` per target.
 */
function arpProbeLines(iface: string, targets: string[]): string[] {
  const dev = quote(assertInterface(iface));
  const list = targets.map((t) => quote(assertAddress(t))).join(" ");
  const verdicts = [
    `  for t in $lvsdr_todo; do`,
    `    case "$lvsdr_neigh" in *"\n$t lladdr"*) echo "${marker} arp $t ok" ;; *) echo "${marker} arp $t fail" ;; esac`,
    "  done",
  ];
  return [
    `lvsdr_neigh="\n$(ip -4 neigh show dev ${dev} 2>/dev/null)"`,
    'lvsdr_todo=""',
    `for t in ${list}; do`,
    `  case "$lvsdr_neigh" in *"\n$t lladdr"*) echo "${marker} arp $t ok" ;; *) lvsdr_todo="$lvsdr_todo $t" ;; esac`,
    "done",
    'if [ -n "$lvsdr_todo" ] && [ -n "${BASH_VERSION:-}" ]; then',
    // bash sends a datagram without starting a process; the kernel resolves each RIP by ARP,
    // and the neighbour table then says who answered. One process in all, not one per RIP.
    '  for t in $lvsdr_todo; do { printf x > "/dev/udp/$t/9"; } 2>/dev/null || :; done',
    // Answers usually arrive within milliseconds: look every 0.2 s, give up after 2 s.
    "  for lvsdr_try in 1 2 3 4 5 6 7 8 9 10; do",
    "    sleep 0.2 2>/dev/null || sleep 1",
    `    lvsdr_neigh="\n$(ip -4 neigh show dev ${dev} 2>/dev/null)"`,
    "    lvsdr_pending=0",
    `    for t in $lvsdr_todo; do case "$lvsdr_neigh" in *"\n$t lladdr"*) ;; *) lvsdr_pending=1 ;; esac; done`,
    '    [ "$lvsdr_pending" = 0 ] && break',
    "  done",
    ...verdicts,
    'elif [ -n "$lvsdr_todo" ]; then',
    "  for t in $lvsdr_todo; do",
    `    ( if arping -q -c 1 -w 2 -I ${dev} "$t" >/dev/null 2>&1; then echo "${marker} arp $t ok"; else echo "${marker} arp $t fail"; fi ) &`,
    "  done",
    "  wait",
    "fi",
  ];
}

/** The ARP probes on their own, for a director already observed. */
export function renderArpProbeScript(iface: string, targets: string[]): string {
  return ["set -u", PATH, `echo '${marker} probe 1'`, ...arpProbeLines(iface, targets), `echo '${marker} end'`].join("\n") + "\n";
}

/** Shell for one step. IPVS steps are batched separately (see `renderApplyScript`). */
function stepCommand(step: Step): string {
  switch (step.op) {
    case "set-sysctl":
    case "restore-sysctl":
      return `printf '%s\\n' ${quote(assertSysctlValue(step.sysctl.value))} > ${quote(`/proc/sys/${assertSysctlKey(step.sysctl.key)}`)}`;
    case "add-address": {
      const a = step.address;
      const cidr = quote(`${assertAddress(a.address)}/${assertUint(a.prefix, 128)}`);
      const dev = quote(assertInterface(a.interface));
      // Tell neighbours at once (gratuitous ARP), in the background: nothing waits on it.
      const announce =
        a.interface !== "lo" && !a.address.includes(":")
          ? `\n(command -v arping >/dev/null 2>&1 && arping -q -U -c 1 -I ${dev} ${quote(a.address)}) </dev/null >/dev/null 2>&1 &`
          : "";
      return `ip addr replace ${cidr} dev ${dev}${announce}`;
    }
    case "remove-address": {
      const a = step.address;
      const cidr = quote(`${assertAddress(a.address)}/${assertUint(a.prefix, 128)}`);
      const dev = quote(assertInterface(a.interface));
      return `if ip -o addr show dev ${dev} to ${cidr} 2>/dev/null | grep -q .; then ip addr del ${cidr} dev ${dev}; fi`;
    }
    case "write-file": {
      // The directory exists: the apply script creates every parent directory up front.
      const f = step.file;
      const path = quote(assertManagedPath(f.path));
      if ("linkTarget" in f) return `ln -sfn ${quote(assertManagedPath(f.linkTarget))} ${path}`;
      const tmp = quote(`${f.path}.lvsdr-new`);
      // printf is a shell builtin: no process per file; the rename makes the write atomic.
      const chmod = f.mode === 0o644 ? "" : ` && chmod ${f.mode.toString(8)} ${tmp}`;
      return `printf '%s' ${quote(f.content)} > ${tmp}${chmod} && mv -f ${tmp} ${path}`;
    }
    case "remove-file":
      return `rm -f ${quote(assertManagedPath(step.path))}`;
    case "record-ownership":
      return step.record
        ? stepCommand({ op: "write-file", file: renderOwnershipFile(step.record) })
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
    default: {
      const never: never = step;
      throw new Error(`unknown step ${JSON.stringify(never)}`);
    }
  }
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

function isIpvsStep(step: Step): boolean {
  return ["add-service", "edit-service", "remove-service", "add-destination", "edit-destination", "drain-destination", "remove-destination"].includes(step.op);
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

/**
 * One host's steps for one wave as a single `set -eu` script under `flock`. Consecutive IPVS
 * steps go to one `ipvsadm -R` process, so a 10,000-entry change is one process, not 10,000.
 */
export function renderApplyScript(plan: HostWavePlan, lockWaitSeconds = 60): string {
  const dirs = new Set<string>([hostPaths.lockDir]);
  for (const step of plan.steps) {
    const path = step.op === "write-file" ? step.file.path : step.op === "record-ownership" && step.record ? hostPaths.ownership : null;
    if (path) dirs.add(path.slice(0, path.lastIndexOf("/")));
  }
  const lines = [
    "set -eu",
    PATH,
    "umask 022",
    `mkdir -p ${[...dirs].map((d) => quote(assertManagedPath(d))).join(" ")}`,
    `exec 9>>${quote(hostPaths.lock)}`,
    `if ! flock -w ${assertUint(lockWaitSeconds)} 9; then echo '${marker} error another lvs-dr run holds ${hostPaths.lock}' >&2; exit 75; fi`,
  ];
  if (plan.expectedIpvsFingerprint !== null) {
    if (!/^[0-9a-f]{64}$/.test(plan.expectedIpvsFingerprint)) throw new Error("invalid IPVS fingerprint");
    lines.push(
      `if [ -e /proc/net/ip_vs ]; then ${ipvsFingerprint}; else lvsdr_fp=none; fi`,
      `if [ "$lvsdr_fp" != ${quote(plan.expectedIpvsFingerprint)} ]; then echo '${marker} error the IPVS table changed since it was observed; run again' >&2; exit 76; fi`,
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
  lines.push(`echo '${marker} done'`);
  return lines.join("\n") + "\n";
}

export { stepCommand as renderStepCommand };
