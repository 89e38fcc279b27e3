/**
 * Parsers of what only the doctor reads: the kernel's socket tables (/proc/net/tcp and
 * friends), `ethtool -k`, and the output of the director's doctor probe script
 * (render/doctor-probe.ts): who answered ARP or neighbour solicitations for each VIP, and which
 * real servers answered an ICMP echo sent to the VIP at their MAC (the DR path).
 */
import { canonicalAddress } from "../config/ip";
import type { ListeningSocket } from "../model/host-state";
import { marker } from "../model/script-protocol";
import { ParseError } from "./ipvsadm";
import { hostRecord } from "./records";

/** The address words of /proc/net/tcp: each 32-bit word in host byte order (little-endian here: x86, arm64). */
function procAddress(hex: string): { family: 4 | 6; address: string } | null {
  const word = (w: string) => [6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16));
  if (hex.length === 8) return { family: 4, address: word(hex).join(".") };
  if (hex.length !== 32) return null;
  const bytes = [0, 8, 16, 24].flatMap((i) => word(hex.slice(i, i + 8)));
  // An IPv4-mapped address (::ffff:a.b.c.d) is an IPv6 socket bound to an IPv4 address.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return { family: 6, address: bytes.slice(12).join(".") };
  const groups = [0, 2, 4, 6, 8, 10, 12, 14].map((i) => ((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return { family: 6, address: canonicalAddress(groups.join(":")) };
}

/**
 * `grep -H` over /proc/net/{tcp,tcp6,udp,udp6}: TCP sockets in LISTEN (0A), UDP sockets bound
 * and unconnected (07). Other lines (headers, other states) are skipped.
 */
export function parseProcNetSockets(text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split("\n")) {
    const m = /^\/proc\/net\/(tcp|udp)(6?): *\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:[0-9A-F]+ ([0-9A-F]{2}) /.exec(line);
    if (!m) continue;
    const protocol = m[1] as "tcp" | "udp";
    if (m[5] !== (protocol === "tcp" ? "0A" : "07")) continue;
    const local = procAddress(m[3]!);
    if (!local) continue;
    const family = m[2] === "6" ? 6 : 4;
    const socket: ListeningSocket = { protocol, family, address: local.address, port: parseInt(m[4]!, 16) };
    if (!out.some((s) => s.protocol === socket.protocol && s.family === socket.family && s.address === socket.address && s.port === socket.port)) out.push(socket);
  }
  return out;
}

/** `ethtool -k IFACE`: feature -> "on", "off", "on [fixed]", "off [fixed]" (nested features included). */
export function parseEthtoolFeatures(text: string): Record<string, string> {
  const features = hostRecord<string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([a-z0-9-]+): (on|off)( \[fixed\]| \[requested on\]| \[requested off\])?\s*$/.exec(line);
    if (m) features[m[1]!] = `${m[2]}${m[3] ?? ""}`;
  }
  return features;
}

/** One VIP asked on the segment: the MACs that answered (lower case), or why it could not be asked. */
export interface FluxProbe {
  vip: string;
  family: 4 | 6;
  answers: string[];
  /** null: asked; otherwise why not (the tool is missing, or it failed). */
  error: string | null;
}

/** One real server's DR path for one VIP: an ICMP echo to the VIP at the server's MAC. */
export interface PathProbe {
  vip: string;
  mac: string;
  answered: boolean;
  error: string | null;
}

export interface DoctorProbeResult {
  flux: FluxProbe[];
  paths: PathProbe[];
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The doctor probe script's output: blocks headed `@@lvsdr flux4 VIP CODE`, `flux6 VIP CODE`,
 * `path VIP MAC CODE`, or `missing TOOL KIND ARGS`, each followed by the command's own output.
 */
export function parseDoctorProbe(host: string, text: string): DoctorProbeResult {
  const what = `doctor probe from ${host}`;
  const lines = text.split("\n");
  if (lines[0] !== `${marker} doctor-probe 1`) throw new ParseError(what, "the output does not start with the doctor-probe marker");
  if (!lines.some((l) => l === `${marker} end`)) throw new ParseError(what, "the output was cut short (no end marker)");
  const result: DoctorProbeResult = { flux: [], paths: [] };
  let body: string[] = [];
  let header: string[] | null = null;
  const close = () => {
    if (!header) return;
    const [kind, ...args] = header;
    const out = body.join("\n");
    if (kind === "flux4" || kind === "flux6") {
      const [vip, code] = args;
      result.flux.push(fluxOf(kind === "flux4" ? 4 : 6, vip ?? "", Number(code), out));
    } else if (kind === "path") {
      const [vip, mac, code] = args;
      const answered = Number(code) === 0 && /^\d+ bytes from /m.test(out);
      const timedOut = /^Timeout$/m.test(out);
      result.paths.push({ vip: vip ?? "", mac: mac ?? "", answered, error: answered || timedOut ? null : firstLine(out) });
    } else if (kind === "missing") {
      const [tool, probe, ...rest] = args;
      const error = `${tool} is not installed on the director`;
      if (probe === "flux4" || probe === "flux6") result.flux.push({ vip: rest[0] ?? "", family: probe === "flux4" ? 4 : 6, answers: [], error });
      else if (probe === "path") result.paths.push({ vip: rest[0] ?? "", mac: rest[1] ?? "", answered: false, error });
    }
    header = null;
    body = [];
  };
  for (const line of lines.slice(1)) {
    if (line.startsWith(`${marker} `)) {
      close();
      header = line.slice(marker.length + 1).split(" ");
    } else body.push(line);
  }
  close();
  return result;
}

/**
 * Habets arping: `42 bytes from MAC (VIP): index=0 ...` per reply, exit 0 with replies, 1 on
 * none (`Timeout` lines). ndisc6 -m: `Target link-layer address: MAC` per answer, exit 0, or 2
 * with `No response.`. Anything else is a probe that did not run.
 */
function fluxOf(family: 4 | 6, vip: string, code: number, out: string): FluxProbe {
  const answers = new Set<string>();
  if (family === 4) for (const m of out.matchAll(/^\d+ bytes from ([0-9a-fA-F:]{17}) \(/gm)) answers.add(m[1]!.toLowerCase());
  else for (const m of out.matchAll(/^Target link-layer address: ([0-9A-Fa-f:]{17})\s*$/gm)) answers.add(m[1]!.toLowerCase());
  const quiet = family === 4 ? code === 1 && /^Timeout$/m.test(out) : code === 2 && /^No response\.$/m.test(out);
  const ok = (code === 0 && answers.size > 0) || quiet;
  return { vip, family, answers: [...answers].filter((a) => macPattern.test(a)), error: ok ? null : `${family === 4 ? "arping" : "ndisc6"} exited ${code}: ${firstLine(out)}` };
}

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !/^(ARPING|Soliciting) /.test(l))[0] ?? "no output"
  ).slice(0, 200);
}
