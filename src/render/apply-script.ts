/**
 * The apply script: one host's steps for one wave in one batch, under the host's lock, refusing
 * (changing nothing) when the host is no longer as the plan observed it. Output lines starting
 * with `@@lvsdr` are markers the engine reads (model/script-protocol.ts).
 */
import type { DestinationState, HostStateCheck, InterfaceAddress, RenderedFile, VirtualServiceState } from "../model/host-state";
import { hostPort, serviceKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { marker, refusalCodes } from "../model/script-protocol";
import { isIpvsStep, type HostWavePlan, type Step } from "../model/steps";
import { describeStep } from "./describe";
import { renderOwnershipFile } from "./files";
import { ipvsLine, serviceSelectorFromKey } from "./ipvsadm";
import { addAddressCommand, PATH } from "./script-common";
import { assertAddress, assertInterface, assertManagedPath, assertSysctlKey, assertSysctlValue, assertUint, heredoc, quote } from "./shell";

/**
 * The IPVS table as the check sees it: the kernel's own listing with each destination's two
 * connection counters cut off (they move with traffic). One awk reads it; an `ipvsadm -Sn`
 * costs half a second on a 10,000-entry table on the lab's director. The parse layer computes
 * the same text from the observe script's read of the same file (`kernelTableListing`).
 */
const kernelTable = `awk '$1 == "->" { print $1, $2, $3, $4; next } { print }' /proc/net/ip_vs`;

/**
 * Exits 78, changing nothing, unless the host is as `check` says it was observed: the same
 * addresses on the scope's interfaces (in any order; lifetimes, which count down, and other
 * interfaces, which come and go on container hosts, do not count), and the same digest of the
 * scope's files and kernel settings, which the parse layer computed from the observe script's
 * read of them (`hostStateCheck` in parse/observe.ts): one `ip`, one `grep`, one `sha256sum`.
 */
function hostStateCheck(check: HostStateCheck): string {
  if (!/^[0-9a-f]{64}$/.test(check.sha256)) throw new Error("invalid host state digest");
  const refuse = `{ echo '${marker} error this host changed since the plan was made (its addresses, kernel settings or the tool files); nothing was changed on it' >&2; exit ${refusalCodes.hostChanged}; }`;
  const interfaces = check.interfaces.map((i) => quote(assertInterface(i))).join("|");
  const expected = check.addresses.map((a) => {
    const [iface, cidr] = a.split(" ");
    return quote(`${assertInterface(iface ?? "")} ${assertAddress((cidr ?? "").split("/")[0] ?? "")}/${assertUint(Number((cidr ?? "").split("/")[1]))}`);
  });
  const files = check.files.map((f) => quote(assertManagedPath(f))).join(" ");
  const keys = check.sysctlKeys.map((k) => quote(`/proc/sys/${assertSysctlKey(k)}`)).join(" ");
  return [
    "lvsdr_n=0 lvsdr_odd=",
    "while read -r _ lvsdr_dev _ lvsdr_cidr _; do",
    `  case "\${lvsdr_dev%%@*}" in ${interfaces || "''"}) ;; *) continue ;; esac`,
    `  case "\${lvsdr_dev%%@*} $lvsdr_cidr" in ${expected.join("|") || "''"}) lvsdr_n=$((lvsdr_n + 1)) ;; *) lvsdr_odd=1 ;; esac`,
    "done <<LVSDR_ADDR",
    "$(ip -o addr show 2>/dev/null)",
    "LVSDR_ADDR",
    `if [ -n "$lvsdr_odd" ] || [ "$lvsdr_n" -ne ${expected.length} ]; then ${refuse}; fi`,
    // Positions, not paths, in what is hashed: the parse layer hashes the same bytes.
    "lvsdr_read= lvsdr_i=0",
    `for lvsdr_f in ${files || "''"}; do if [ -L "$lvsdr_f" ]; then lvsdr_seen="\${lvsdr_seen-}link $lvsdr_i\\n"; elif [ -f "$lvsdr_f" ]; then lvsdr_seen="\${lvsdr_seen-}file $lvsdr_i\\n" lvsdr_read="$lvsdr_read $lvsdr_f"; fi; lvsdr_i=$((lvsdr_i + 1)); done`,
    "lvsdr_i=0",
    `for lvsdr_f in ${keys || "''"}; do if [ -e "$lvsdr_f" ]; then lvsdr_seen="\${lvsdr_seen-}key $lvsdr_i\\n"; fi; lvsdr_i=$((lvsdr_i + 1)); done`,
    `lvsdr_state=$({ printf '%b' "\${lvsdr_seen-}"; LC_ALL=C grep -z -s -h '' /dev/null ${keys} $lvsdr_read || :; } | sha256sum)`,
    `if [ "\${lvsdr_state%% *}" != ${check.sha256} ]; then ${refuse}; fi`,
  ].join("\n");
}

/**
 * Opens the host lock on fd 9, refusing (changing nothing) unless only root can reach it. Any
 * user who can open a file can `flock` it, even read-only, and hold every apply off: so the
 * lock lives in a directory only root can enter (0700, created so) and is itself 0600. The
 * script runs as root (logged in as root, or through `sudo -n /bin/sh`), so "root's" is the
 * builtin `-O` (owned by the user running it). One `stat` reads both file types and modes
 * (`%f`, hex; not following links), a line each; the lock may not exist yet. A directory or lock of root's
 * that others may only read (0755 and 0644: how the tool made them before, and how a host's own
 * setup may) is tightened; one that another user owns or may write, or that is not a directory
 * or a regular file (a link, say), is refused.
 */
function hostLock(): string {
  const dir = quote(assertManagedPath(hostPaths.lockDir));
  const lock = quote(assertManagedPath(hostPaths.lock));
  return [
    // Everything below needs root; a user without it would only be told the lock is not its own.
    `[ "$(id -u)" -eq 0 ] || { printf '%s\\n' "${marker} error this script must run as root and runs as uid $(id -u): connect as root, or set sudo: true on its connection (passwordless sudo); nothing was changed on this host" >&2; exit 1; }`,
    // lvsdr_unsafe PATH WHAT UID HEXMODE
    `lvsdr_unsafe() { printf '%s\\n' "${marker} error refusing to take the host lock: $1 must be $2 owned by root that no other user can write (it is owned by uid \${3:-?}, mode $(printf %o $((0x\${4:-0} & 07777))); this script runs as uid $(id -u)); nothing was changed on this host" >&2; exit ${refusalCodes.lockUnsafe}; }`,
    `[ -d ${dir} ] || mkdir -m 0700 ${dir}`,
    "lvsdr_du= lvsdr_dm= lvsdr_lu= lvsdr_lm=",
    "{ read -r lvsdr_du lvsdr_dm || :; read -r lvsdr_lu lvsdr_lm || :; } <<LVSDR_LOCK",
    `$(stat -c '%u %f' ${dir} ${lock} 2>/dev/null || :)`,
    "LVSDR_LOCK",
    // 0170022: the file type, and write for group and others.
    `if [ ! -O ${dir} ] || [ $((0x\${lvsdr_dm:-0} & 0170022)) -ne $((040000)) ]; then lvsdr_unsafe ${dir} 'a directory' "$lvsdr_du" "$lvsdr_dm"; fi`,
    `[ $((0x$lvsdr_dm & 077)) -eq 0 ] || chmod 0700 ${dir}`,
    `if [ -n "$lvsdr_lm" ]; then`,
    `  if [ ! -O ${lock} ] || [ $((0x$lvsdr_lm & 0170022)) -ne $((0100000)) ]; then lvsdr_unsafe ${lock} 'a regular file' "$lvsdr_lu" "$lvsdr_lm"; fi`,
    `  [ $((0x$lvsdr_lm & 077)) -eq 0 ] || chmod 0600 ${lock}`,
    "fi",
    `umask 077; exec 9>>${lock}; umask 022`,
  ].join("\n");
}

/** Its SHA-256, for a table too large to carry in the script. */
const ipvsFingerprint = `lvsdr_fp=$(${kernelTable} | sha256sum) && lvsdr_fp=\${lvsdr_fp%% *}`;

/**
 * A table listed in at most this many bytes is checked against the text observed, in the apply
 * script itself: no sha256sum process. A larger one is checked by its fingerprint, so that the
 * script does not carry the table twice.
 */
const wholeListingLimit = 16 * 1024;

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
    case "add-address":
      return addAddressCommand(step.address);
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
  // -T: a directory where the file goes is an error, not a place to put the file in.
  if ("linkTarget" in f) return `ln -sfnT ${quote(assertManagedPath(f.linkTarget))} ${path}`;
  const tmp = quote(`${f.path}.lvsdr-new`);
  const chmod = (target: string) => (f.mode === 0o644 ? "" : ` && chmod ${f.mode.toString(8)} ${target}`);
  // A write that fails takes back what it wrote (the new file beside the old one, or the new
  // file where there was none), so a failed step leaves no stray file behind.
  if (rename === "always") return `{ printf '%s' ${quote(f.content)} > ${tmp}${chmod(tmp)} && mv -fT ${tmp} ${path}; } || { rm -f ${tmp}; exit 1; }`;
  return [
    `lvsdr_to=${tmp}; [ -e ${path} ] || [ -L ${path} ] || lvsdr_to=${path}`,
    `{ printf '%s' ${quote(f.content)} > "$lvsdr_to"${chmod('"$lvsdr_to"')} && { [ "$lvsdr_to" = ${path} ] || mv -fT ${tmp} ${path}; }; } || { rm -f "$lvsdr_to"; exit 1; }`,
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
    `mv -fT ${tmp} ${path} || { rm -f ${tmp}; exit 1; }`,
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
      : // A plain failure, reported at its step: 78 would say the host changed since the plan, which it did not.
        `echo '${marker} error keepalived did not let go of its services in ${assertUint(timeoutSeconds)}s' >&2; exit 1`;
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

/**
 * `sync` of the files the steps wrote and of the directories whose entries they changed (coreutils
 * fsyncs each one it is given): not the whole host's page cache, which on a busy host can take
 * seconds (the lab's 100 real servers share one disk, and each global `sync` waited for all).
 */
function syncCommand(steps: readonly Step[]): string | null {
  const written = new Set<string>();
  const dirs = new Set<string>();
  for (const step of steps) {
    let path: string;
    if (step.op === "write-file" || step.op === "write-keepalived-config") written.add((path = step.file.path));
    else if (step.op === "record-ownership") {
      path = hostPaths.ownership;
      if (step.record) written.add(path);
    } else if (step.op === "remove-file") path = step.path;
    else continue;
    dirs.add(path.slice(0, path.lastIndexOf("/")));
  }
  if (!dirs.size) return null;
  // A directory the steps removed (a destroy removes the tool's own) fails the targeted sync: then all of it.
  return `sync -- ${[...written, ...dirs].map((p) => quote(assertManagedPath(p))).join(" ")} 2>/dev/null || sync`;
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
  const dirs = new Set<string>();
  for (const step of plan.steps) {
    const path = step.op === "write-file" ? step.file.path : step.op === "record-ownership" && step.record ? hostPaths.ownership : null;
    if (path) dirs.add(path.slice(0, path.lastIndexOf("/")));
  }
  const lines = [
    "set -eu",
    PATH,
    "umask 022",
    // `mkdir` only when a directory is missing: a test is a builtin, mkdir a process.
    ...(dirs.size
      ? [`${[...dirs].map((d) => `[ -d ${quote(assertManagedPath(d))} ]`).join(" && ")} || mkdir -p ${[...dirs].map((d) => quote(assertManagedPath(d))).join(" ")}`]
      : []),
    hostLock(),
    `if ! flock -w ${assertUint(lockWaitSeconds)} 9; then echo '${marker} error another lvs-dr run holds ${hostPaths.lock}' >&2; exit ${refusalCodes.lockHeld}; fi`,
  ];
  if (plan.expectedIpvsFingerprint !== null) {
    if (!/^[0-9a-f]{64}$/.test(plan.expectedIpvsFingerprint)) throw new Error("invalid IPVS fingerprint");
    const changed = `echo '${marker} error the IPVS table changed since it was observed; run again' >&2; exit ${refusalCodes.ipvsChanged}`;
    const listing = plan.expectedIpvsListing;
    if (listing !== null && listing.replace(/\n+$/, "").split("\n").length <= 3) {
      // Observed empty (a first apply): the kernel's own listing still has nothing after its
      // three header lines. Read with builtins: no process at all (ipvsadm costs about 100 ms on
      // the lab's emulated director, grep 30, where this check runs while the real servers get
      // ready and can outlast them).
      lines.push(
        `lvsdr_line=; if [ ! -e /proc/net/ip_vs ] || { read -r _; read -r _; read -r _; read -r lvsdr_line || [ -n "$lvsdr_line" ]; } < /proc/net/ip_vs; then ${changed}; fi`,
      );
    } else if (listing !== null && Buffer.byteLength(listing) <= wholeListingLimit) {
      // `$(...)` drops trailing newlines: so does the expected text.
      lines.push(`if [ ! -e /proc/net/ip_vs ] || [ "$(${kernelTable})" != ${quote(listing.replace(/\n+$/, ""))} ]; then ${changed}; fi`);
    } else {
      lines.push(`if [ -e /proc/net/ip_vs ]; then ${ipvsFingerprint}; else lvsdr_fp=none; fi`, `if [ "$lvsdr_fp" != ${quote(plan.expectedIpvsFingerprint)} ]; then ${changed}; fi`);
    }
  }
  if (plan.expectedState) {
    if (!/^[0-9a-f]{64}$/.test(plan.expectedState.sha256)) throw new Error("invalid host state digest");
    lines.push(hostStateCheck(plan.expectedState));
  }
  if (options.held) {
    lines.push(`echo '${marker} ready'`, "lvsdr_go=; read -r lvsdr_go || :", `if [ "$lvsdr_go" != go ]; then echo '${marker} held back'; exit 0; fi`);
  }
  const steps = plan.steps;
  for (let i = 0; i < steps.length;) {
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
  const flush = syncCommand(steps);
  if (flush) lines.push(flush);
  for (const step of steps) {
    const announce = step.op === "add-address" ? announceCommand(step.address) : null;
    if (announce) lines.push(announce);
  }
  lines.push(`echo '${marker} done'`);
  return lines.join("\n") + "\n";
}

export { stepCommand as renderStepCommand };
