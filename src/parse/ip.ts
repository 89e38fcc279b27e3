/** Parsers for iproute2's JSON output (`ip -j addr show`, `ip -j neigh show`, `ip -j route get`). */
import { z } from "zod";
import { canonicalAddress } from "../config/ip";
import type { InterfaceAddress, Neighbour, RouteLookup } from "../model/host-state";
import { ParseError, parseJsonAs } from "./ipvsadm";

const addrInfo = z.object({ family: z.string(), local: z.string().optional(), prefixlen: z.number().optional() }).loose();
const link = z.object({ ifname: z.string(), address: z.string().optional(), mtu: z.number().optional(), addr_info: z.array(addrInfo).default([]) }).loose();
const addrShow = z.array(link);

export interface InterfaceInfo {
  name: string;
  mac: string | null;
  mtu: number | null;
}

export function parseIpAddr(text: string): { addresses: InterfaceAddress[]; interfaces: InterfaceInfo[] } {
  const links = parseJsonAs("ip -j addr show", text, addrShow);
  const addresses: InterfaceAddress[] = [];
  const interfaces: InterfaceInfo[] = [];
  for (const l of links) {
    interfaces.push({ name: l.ifname, mac: l.address?.toLowerCase() ?? null, mtu: l.mtu ?? null });
    for (const a of l.addr_info) {
      if ((a.family !== "inet" && a.family !== "inet6") || a.local === undefined || a.prefixlen === undefined) continue;
      addresses.push({ interface: l.ifname, address: canonicalAddress(a.local), prefix: a.prefixlen });
    }
  }
  return { addresses, interfaces };
}

const neighbourEntry = z.object({ dst: z.string(), dev: z.string(), lladdr: z.string().optional(), state: z.array(z.string()).default([]) }).loose();
/** The kernel's NUD_VALID states: a link-layer address it uses without asking again first. */
const resolvedStates = new Set(["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"]);

/** `ip -j neigh show`: every entry, with whether it is resolved (INCOMPLETE and FAILED are not). */
export function parseNeighbours(text: string): Neighbour[] {
  return parseJsonAs("ip -j neigh show", text, z.array(neighbourEntry)).map((n) => ({
    address: canonicalAddress(n.dst),
    device: n.dev,
    resolved: n.state.some((s) => resolvedStates.has(s)),
  }));
}

const routeEntry = z.object({ dst: z.string(), dev: z.string().optional(), gateway: z.string().optional(), prefsrc: z.string().optional() }).loose();

/** `ip -j route get X`; an error message from ip (unreachable) gives a lookup with no device. */
export function parseRouteGet(target: string, text: string): RouteLookup {
  const trimmed = text.trim();
  if (!trimmed.startsWith("[")) return { destination: canonicalAddress(target), device: null, gateway: null, source: null };
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch (err) {
    throw new ParseError(`ip -j route get ${target}`, (err as Error).message);
  }
  const parsed = z.array(routeEntry).safeParse(json);
  const first = parsed.success ? parsed.data[0] : undefined;
  if (!first) throw new ParseError(`ip -j route get ${target}`, "no route entry");
  return {
    destination: canonicalAddress(first.dst),
    device: first.dev ?? null,
    gateway: first.gateway ? canonicalAddress(first.gateway) : null,
    source: first.prefsrc ? canonicalAddress(first.prefsrc) : null,
  };
}

/** `ip -force -j -batch -` over `route get` lines: one JSON array per line; unreachable targets print nothing. */
export function parseRouteBatch(text: string): RouteLookup[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("["))
    .map((line) => {
      const first = (JSON.parse(line) as { dst?: string }[])[0];
      return parseRouteGet(first?.dst ?? "", line);
    });
}

const defaultRoute = z.object({ dst: z.string(), dev: z.string().optional(), gateway: z.string().optional() }).loose();

/** `ip -j route show default`: every default route (`[]` when there is none). */
export function parseDefaultRoutes(text: string): { device: string | null; gateway: string | null }[] {
  return parseJsonAs("ip -j route show default", text, z.array(defaultRoute)).map((r) => ({
    device: r.dev ?? null,
    gateway: r.gateway ? canonicalAddress(r.gateway) : null,
  }));
}
