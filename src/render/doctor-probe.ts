/**
 * The doctor's probe, run on a director, changing nothing: who on the segment answers for each
 * VIP (ARP through Habets' arping, neighbour discovery through ndisc6), and for each real server
 * whether it accepts a packet sent the way IPVS-DR sends one: to the VIP, at the server's MAC
 * (arping's MAC ping: an ICMP echo with destination IP = VIP, destination MAC = the server's).
 * One round trip: every probe runs at once (at most 32 at a time), each printing its block in one
 * write. Output is parsed by parse/doctor.ts `parseDoctorProbe`.
 */
import { marker } from "../model/script-protocol";
import { PATH } from "./script-common";
import { assertAddress, assertInterface, quote, RenderError } from "./shell";

export interface DoctorProbeRequest {
  /** The director's NIC on the shared segment. */
  interface: string;
  /** Its IPv4 DIP: the source of the DR-path probes (null: no IPv4 DIP, no such probe). */
  dip: string | null;
  /** The VIPs to ask the segment about. */
  vips: string[];
  /** The DR-path probes: a real server's MAC and a VIP it serves (IPv4 only: arping's MAC ping is). */
  paths: { vip: string; mac: string }[];
  /**
   * Requests per VIP, a second apart: the doctor asks twice (a lost packet does not hide a host);
   * apply's preflight once, since it holds up the change.
   */
  fluxRequests?: 1 | 2;
}

/** A MAC as `ip -j` prints it. */
export function assertMac(value: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(value)) throw new RenderError(`refusing to render "${value}": not a MAC address`);
  return value;
}

/** Probes at once: each is a process that mostly waits, but a director may have hundreds of real servers. */
const parallel = 32;

export function renderDoctorProbeScript(req: DoctorProbeRequest): string {
  const dev = quote(assertInterface(req.interface));
  const tries = req.fluxRequests ?? 2;
  const lines = [
    "set -u",
    PATH,
    `echo '${marker} doctor-probe 1'`,
    "lvsdr_arping=; command -v arping >/dev/null 2>&1 && lvsdr_arping=1",
    "lvsdr_ndisc=; command -v ndisc6 >/dev/null 2>&1 && lvsdr_ndisc=1",
    // Each job writes its block (header, exit code, output) to a file of its own, printed after
    // the last one ends: jobs printing at once interleaved their lines (seen in the lab, where a
    // shell wrote one printf in more than one write).
    "lvsdr_d=$(mktemp -d) || exit 1",
    `trap 'rm -rf "$lvsdr_d"' EXIT`,
    'lvsdr_run() { lvsdr_f=$lvsdr_d/$1 lvsdr_h=$2; shift 2; lvsdr_o=$("$@" 2>&1); lvsdr_c=$?; printf \'%s %s\\n%s\\n\' "$lvsdr_h" "$lvsdr_c" "$lvsdr_o" > "$lvsdr_f"; }',
    "lvsdr_n=0",
    "lvsdr_next() { lvsdr_n=$((lvsdr_n + 1)); [ $((lvsdr_n % " + String(parallel) + ")) -eq 0 ] && wait; :; }",
  ];
  for (const vip of req.vips) {
    const v = assertAddress(vip);
    if (v.includes(":")) {
      // ndisc6 -m lists every answer, not the first only; -n: numeric.
      lines.push(
        `if [ -n "$lvsdr_ndisc" ]; then lvsdr_run $lvsdr_n '${marker} flux6 ${v}' ndisc6 -m -n -r ${tries} -w 1000 ${v} ${dev} & lvsdr_next; else echo '${marker} missing ndisc6 flux6 ${v}'; fi`,
      );
    } else {
      // The director's kernel does not answer its own request: every reply is another host's.
      lines.push(
        `if [ -n "$lvsdr_arping" ]; then lvsdr_run $lvsdr_n '${marker} flux4 ${v}' arping -i ${dev} -c ${tries} -w ${tries} ${v} & lvsdr_next; else echo '${marker} missing arping flux4 ${v}'; fi`,
      );
    }
  }
  if (req.paths.length) {
    if (req.dip === null || req.dip.includes(":")) throw new RenderError("refusing to render DR-path probes without an IPv4 DIP to send them from");
    const dip = assertAddress(req.dip);
    for (const p of req.paths) {
      const vip = assertAddress(p.vip);
      if (vip.includes(":")) throw new RenderError(`refusing to render a DR-path probe to ${vip}: arping's MAC ping is IPv4 only`);
      const mac = assertMac(p.mac);
      // -C 1: done at the first reply; -w 2: at most 2 s without one.
      lines.push(
        `if [ -n "$lvsdr_arping" ]; then lvsdr_run $lvsdr_n '${marker} path ${vip} ${mac}' arping -i ${dev} -S ${dip} -T ${vip} -c 2 -C 1 -w 2 ${mac} & lvsdr_next; else echo '${marker} missing arping path ${vip} ${mac}'; fi`,
      );
    }
  }
  lines.push("wait", 'cat "$lvsdr_d"/* 2>/dev/null', `echo '${marker} end'`);
  return lines.join("\n") + "\n";
}
