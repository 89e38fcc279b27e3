/**
 * Parsers for ipvsadm's output: the rules form (`ipvsadm -Sn`, also what `-R` reads) for the
 * configuration, and the thresholds listing (`ipvsadm -Ln --exact --thresholds`) for the
 * thresholds and live connection counters the rules form leaves out.
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
export function parseJsonAs<T>(what: string, text: string, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }): T {
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

const forwardingBySwitch: Record<string, Forwarding> = { "-g": "dr", "-i": "tunnel", "-m": "nat" };

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
        persistence:
          timeout !== undefined
            ? { timeout: timeout === "" ? 300 : Number(timeout), netmask: mask || (sel.family === 4 ? prefixToNetmask(32) : "128") }
            : null,
      });
    } else if (tokens[0] === "-a") {
      const rs = option(tokens, "-r");
      if (!rs) throw new ParseError(what, "real server address missing");
      const { address, port } = splitHostPort(rs);
      const fwd = tokens.find((tok) => tok in forwardingBySwitch);
      destinations.push({
        service: serviceKey(sel),
        address,
        port,
        forwarding: fwd ? (forwardingBySwitch[fwd] as Forwarding) : "dr",
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

export interface DestinationThresholds extends DestinationCounters {
  upperThreshold: number;
  lowerThreshold: number;
}

/**
 * Parses `ipvsadm -Ln --exact --thresholds`: per destination key, its thresholds and
 * connection counters.
 */
export function parseIpvsThresholds(text: string): Map<string, DestinationThresholds> {
  const out = new Map<string, DestinationThresholds>();
  let service: string | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("IP Virtual Server") || line.startsWith("Prot ") || line.startsWith("-> RemoteAddress")) continue;
    const tokens = line.split(/\s+/);
    if (tokens[0] === "->") {
      if (service === null) throw new ParseError("ipvsadm thresholds listing", `destination before any service: "${line}"`);
      const { address, port } = splitHostPort(tokens[1] ?? "");
      const [upper, lower, active, inactive] = tokens.slice(2, 6).map(Number);
      out.set(destinationKey({ service, address, port }), {
        upperThreshold: upper ?? 0,
        lowerThreshold: lower ?? 0,
        activeConnections: active ?? 0,
        inactiveConnections: inactive ?? 0,
      });
      continue;
    }
    if (tokens[0] === "TCP" || tokens[0] === "UDP") {
      const { address, port } = splitHostPort(tokens[1] ?? "");
      service = serviceKey({ protocol: tokens[0] === "TCP" ? "tcp" : "udp", address, port, fwmark: 0, family: familyOf(address) ?? 4 });
    } else if (tokens[0] === "FWM") {
      service = serviceKey({ protocol: "fwmark", address: "", port: 0, fwmark: Number(tokens[1]), family: tokens[2] === "IPv6" ? 6 : 4 });
    } else {
      throw new ParseError("ipvsadm thresholds listing", `unexpected line "${line}"`);
    }
  }
  return out;
}
