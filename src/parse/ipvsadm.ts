/**
 * Parsers for the IPVS table as listed: ipvsadm's listing (`ipvsadm -Ln --exact --thresholds`)
 * for services, thresholds and counters, the kernel's own (`/proc/net/ip_vs`) for weights and
 * forwarding, and the rules form (`ipvsadm -Sn`, what `-R` reads) for the persisted rules file.
 */
import { canonicalAddress, familyOf, prefixToNetmask } from "../config/ip";
import type { DestinationCounters, DestinationState, Forwarding, VirtualServiceState } from "../model/host-state";
import { destinationKey, serviceKey } from "../model/keys";

export class ParseError extends Error {
  constructor(
    readonly what: string,
    message: string,
  ) {
    super(`cannot parse ${what}: ${message}`);
    this.name = "ParseError";
  }
}

/** JSON text checked against a schema; both failures say what was being read. */
export function parseJsonAs<T>(
  what: string,
  text: string,
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } },
): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ParseError(what, (err as Error).message);
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ParseError(what, `${issue?.path.map(String).join(".") || "(root)"}: ${issue?.message ?? "unexpected shape"}`);
  }
  return result.data;
}

interface Selector {
  protocol: "tcp" | "udp" | "fwmark";
  address: string;
  port: number;
  fwmark: number;
  family: 4 | 6;
}

/** `198.51.100.5:80` or `[2001:db8::5]:80` or a bare address (port 0). */
export function splitHostPort(text: string): { address: string; port: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { address: canonicalAddress(v6[1] as string), port: Number(v6[2] ?? 0) };
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(text);
  if (v4) return { address: canonicalAddress(v4[1] as string), port: Number(v4[2] ?? 0) };
  throw new ParseError("ipvsadm address", `"${text}" is not address:port`);
}

function readSelector(tokens: string[], what: string): Selector {
  const t = tokens.indexOf("-t");
  const u = tokens.indexOf("-u");
  const f = tokens.indexOf("-f");
  if (t >= 0 || u >= 0) {
    const value = tokens[(t >= 0 ? t : u) + 1];
    if (!value) throw new ParseError(what, "service address missing");
    const { address, port } = splitHostPort(value);
    return { protocol: t >= 0 ? "tcp" : "udp", address, port, fwmark: 0, family: familyOf(address) ?? 4 };
  }
  if (f >= 0) {
    const mark = Number(tokens[f + 1]);
    if (!Number.isInteger(mark)) throw new ParseError(what, "fwmark missing");
    return { protocol: "fwmark", address: "", port: 0, fwmark: mark, family: tokens.includes("-6") ? 6 : 4 };
  }
  throw new ParseError(what, "no -t, -u or -f");
}

function option(tokens: string[], flag: string): string | undefined {
  const i = tokens.indexOf(flag);
  if (i < 0) return undefined;
  const value = tokens[i + 1];
  return value !== undefined && !value.startsWith("-") ? value : "";
}

// Maps, not object literals: a token such as `constructor` must not find Object's own.
const forwardingBySwitch = new Map<string, Forwarding>([
  ["-g", "dr"],
  ["-i", "tunnel"],
  ["-m", "nat"],
]);

export interface IpvsTable {
  services: VirtualServiceState[];
  destinations: DestinationState[];
}

/** Parses `ipvsadm -Sn` output (one `-A`/`-a` rule per line). */
export function parseIpvsRules(text: string): IpvsTable {
  const services: VirtualServiceState[] = [];
  const destinations: DestinationState[] = [];
  text.split("\n").forEach((raw, n) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const tokens = line.split(/\s+/);
    const what = `ipvsadm rules line ${n + 1} "${line}"`;
    const sel = readSelector(tokens, what);
    if (tokens[0] === "-A") {
      const timeout = option(tokens, "-p");
      const mask = option(tokens, "-M");
      const flags = option(tokens, "-b");
      services.push({
        ...sel,
        scheduler: option(tokens, "-s") || "wlc",
        flags: flags ? flags.split(",").sort() : [],
        persistence: timeout !== undefined ? { timeout: timeout === "" ? 300 : Number(timeout), netmask: mask || (sel.family === 4 ? prefixToNetmask(32) : "128") } : null,
      });
    } else if (tokens[0] === "-a") {
      const rs = option(tokens, "-r");
      if (!rs) throw new ParseError(what, "real server address missing");
      const { address, port } = splitHostPort(rs);
      const fwd = tokens.find((tok) => forwardingBySwitch.has(tok));
      destinations.push({
        service: serviceKey(sel),
        address,
        port,
        forwarding: (fwd && forwardingBySwitch.get(fwd)) || "dr",
        weight: Number(option(tokens, "-w") ?? 1),
        upperThreshold: Number(option(tokens, "-x") ?? 0),
        lowerThreshold: Number(option(tokens, "-y") ?? 0),
      });
    } else {
      throw new ParseError(what, `unexpected command ${tokens[0]}`);
    }
  });
  return { services, destinations };
}

/** The lines of an IPVS listing (ipvsadm's or the kernel's) after its headers, trimmed and split. */
function* tableLines(text: string): Generator<{ line: string; tokens: string[] }> {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("IP Virtual Server") || line.startsWith("Prot ") || line.startsWith("-> RemoteAddress")) continue;
    yield { line, tokens: line.split(/\s+/) };
  }
}

/** A destination as listed: its thresholds and counters, without what the listing leaves out (weight, forwarding). */
export type ListedDestination = Omit<DestinationState, "weight" | "forwarding"> & DestinationCounters;

/**
 * Parses `ipvsadm -Ln --exact --thresholds`: every service with its scheduler, flags and
 * persistence, and every destination with its thresholds and counters. The listing leaves out
 * weights and forwarding: the kernel's own listing has them (`parseKernelTable`).
 */
export function parseIpvsListing(text: string): { services: VirtualServiceState[]; destinations: ListedDestination[] } {
  const services: VirtualServiceState[] = [];
  const destinations: ListedDestination[] = [];
  let service: string | null = null;
  for (const { line, tokens } of tableLines(text)) {
    if (tokens[0] === "->") {
      if (service === null) throw new ParseError("ipvsadm listing", `destination before any service: "${line}"`);
      const { address, port } = splitHostPort(tokens[1] ?? "");
      const [upper, lower, active, inactive] = tokens.slice(2, 6).map(Number);
      destinations.push({ service, address, port, upperThreshold: upper ?? 0, lowerThreshold: lower ?? 0, activeConnections: active ?? 0, inactiveConnections: inactive ?? 0 });
      continue;
    }
    let selector: Selector;
    let rest: string[];
    if (tokens[0] === "TCP" || tokens[0] === "UDP") {
      const { address, port } = splitHostPort(tokens[1] ?? "");
      selector = { protocol: tokens[0] === "TCP" ? "tcp" : "udp", address, port, fwmark: 0, family: familyOf(address) ?? 4 };
      rest = tokens.slice(2);
    } else if (tokens[0] === "FWM") {
      const v6 = tokens[2] === "IPv6";
      selector = { protocol: "fwmark", address: "", port: 0, fwmark: Number(tokens[1]), family: v6 ? 6 : 4 };
      rest = tokens.slice(v6 ? 3 : 2);
    } else {
      throw new ParseError("ipvsadm listing", `unexpected line "${line}"`);
    }
    // `rr`, `mh (mh-port)`, `wrr persistent 300 mask 255.255.255.0`, maybe `ops`.
    const flags = rest[1]?.startsWith("(") ? rest[1].slice(1, -1).split(",").filter(Boolean).sort() : [];
    const at = rest.indexOf("persistent");
    const mask = rest.indexOf("mask");
    services.push({
      ...selector,
      scheduler: rest[0] ?? "wlc",
      flags,
      persistence: at >= 0 ? { timeout: Number(rest[at + 1]), netmask: mask >= 0 ? rest[mask + 1]! : selector.family === 4 ? prefixToNetmask(32) : "128" } : null,
    });
    service = serviceKey(selector);
  }
  return { services, destinations };
}

const forwardingByName = new Map<string, Forwarding>([
  ["Route", "dr"],
  ["Tunnel", "tunnel"],
  ["Masq", "nat"],
  ["Local", "local"],
]);

/**
 * The kernel's own listing, `/proc/net/ip_vs`, as the apply script's table check sees it: every
 * line as it is, but a destination line cut to its address, forwarding and weight (its two
 * connection counters move with traffic). The apply script computes the same text with
 * `awk '$1 == "->" { print $1, $2, $3, $4; next } { print }'`.
 */
export function kernelTableListing(procText: string): string {
  const lines = procText.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) return "";
  return (
    lines
      .map((line) => {
        const fields = line.trim().split(/\s+/);
        return fields[0] === "->" ? fields.slice(0, 4).join(" ") : line;
      })
      .join("\n") + "\n"
  );
}

/** `C633640A:0050` or `[2001:0db8:...:0005]:0050`, as the kernel lists addresses and ports in hex. */
function kernelHostPort(text: string): { address: string; port: number } {
  const v6 = /^\[([0-9a-fA-F:]+)\]:([0-9A-F]{4})$/.exec(text);
  if (v6) return { address: canonicalAddress(v6[1]!), port: parseInt(v6[2]!, 16) };
  const v4 = /^([0-9A-F]{8}):([0-9A-F]{4})$/.exec(text);
  if (!v4) throw new ParseError("/proc/net/ip_vs", `"${text}" is not an address and port`);
  const n = parseInt(v4[1]!, 16);
  return { address: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join("."), port: parseInt(v4[2]!, 16) };
}

/**
 * Each destination's forwarding method, weight and live connection counters, by destination key, from
 * `/proc/net/ip_vs`. The kernel does not say a firewall-mark service's family: a destination's
 * address does.
 */
export function parseKernelTable(procText: string): Map<string, DestinationCounters & { weight: number; forwarding: Forwarding }> {
  const out = new Map<string, DestinationCounters & { weight: number; forwarding: Forwarding }>();
  let service: ((destinationFamily: 4 | 6) => string) | null = null;
  for (const { line, tokens } of tableLines(procText)) {
    if (tokens[0] === "->") {
      if (service === null) throw new ParseError("/proc/net/ip_vs", `destination before any service: "${line}"`);
      const { address, port } = kernelHostPort(tokens[1] ?? "");
      const [weight, active, inactive] = tokens.slice(3, 6).map(Number);
      const forwarding = forwardingByName.get(tokens[2] ?? "");
      if (!forwarding) throw new ParseError("/proc/net/ip_vs", `unknown forwarding method in "${line}"`);
      out.set(destinationKey({ service: service(address.includes(":") ? 6 : 4), address, port }), {
        forwarding,
        weight: weight ?? 0,
        activeConnections: active ?? 0,
        inactiveConnections: inactive ?? 0,
      });
    } else if (tokens[0] === "TCP" || tokens[0] === "UDP") {
      const protocol = tokens[0] === "TCP" ? "tcp" : "udp";
      const { address, port } = kernelHostPort(tokens[1] ?? "");
      const key = serviceKey({ protocol, address, port, fwmark: 0, family: address.includes(":") ? 6 : 4 });
      service = () => key;
    } else if (tokens[0] === "FWM") {
      const fwmark = parseInt(tokens[1] ?? "", 16);
      service = (family) => serviceKey({ protocol: "fwmark", address: "", port: 0, fwmark, family });
    } else {
      // SCTP and other protocols the tool does not manage: their destinations are not ours to count.
      service = () => `other:${line}`;
    }
  }
  return out;
}
