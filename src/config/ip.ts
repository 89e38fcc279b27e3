/**
 * IP address arithmetic for validation and comparison. Pure: no DNS, no I/O.
 * Addresses are compared in canonical form (IPv4 dotted quad, IPv6 RFC 5952), which is
 * also how `ip -j` and `ipvsadm -n` print them, so observed and desired state line up.
 */
import { isIPv4, isIPv6 } from "node:net";

export type Family = 4 | 6;

export interface ParsedAddress {
  family: Family;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
  /** Canonical text form. */
  text: string;
}

export interface ParsedCidr {
  address: ParsedAddress;
  prefix: number;
}

export function familyOf(text: string): Family | undefined {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  return undefined;
}

/**
 * Parses each text once. Clusters repeat a few addresses thousands of times (a VIP per service,
 * a RIP per destination, a DIP per destination its director serves): validating and planning
 * 10,000 entries stays fast. Results are frozen, since callers share them.
 */
function memoized<T extends object>(parse: (text: string) => T | undefined): (text: string) => T | undefined {
  const seen = new Map<string, T | undefined>();
  return (text) => {
    if (seen.has(text)) return seen.get(text);
    if (seen.size > 65536) seen.clear();
    const parsed = parse(text);
    if (parsed) Object.freeze(parsed);
    seen.set(text, parsed);
    return parsed;
  };
}

export const parseAddress: (text: string) => ParsedAddress | undefined = memoized(parseAddressUncached);

function parseAddressUncached(text: string): ParsedAddress | undefined {
  if (isIPv4(text)) {
    const value = text.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value, text: formatV4(value) };
  }
  if (isIPv6(text) && !text.includes("%")) {
    const value = parseV6(text);
    return { family: 6, value, text: formatV6(value) };
  }
  return undefined;
}

export function canonicalAddress(text: string): string {
  return parseAddress(text)?.text ?? text;
}

export const parseCidr: (text: string) => ParsedCidr | undefined = memoized(parseCidrUncached);

function parseCidrUncached(text: string): ParsedCidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseAddress(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  // iproute2 reads a prefix with a leading zero as octal (/024 is /20): only the plain form is one.
  if (!address || !/^(?:0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits(address.family)) return undefined;
  return { address, prefix };
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

function mask(family: Family, prefix: number): bigint {
  const width = BigInt(bits(family));
  const all = (1n << width) - 1n;
  return all ^ ((1n << (width - BigInt(prefix))) - 1n);
}

/** True when `address` lies inside `cidr` (same family, same network bits). */
export function cidrContains(cidr: ParsedCidr, address: ParsedAddress): boolean {
  if (cidr.address.family !== address.family) return false;
  const m = mask(cidr.address.family, cidr.prefix);
  return (cidr.address.value & m) === (address.value & m);
}

export function networkAddress(cidr: ParsedCidr): ParsedAddress {
  const value = cidr.address.value & mask(cidr.address.family, cidr.prefix);
  return { family: cidr.address.family, value, text: format(cidr.address.family, value) };
}

export function broadcastAddress(cidr: ParsedCidr): ParsedAddress {
  const family = cidr.address.family;
  const value = cidr.address.value | (((1n << BigInt(bits(family))) - 1n) ^ mask(family, cidr.prefix));
  return { family, value, text: format(family, value) };
}

/** Dotted netmask for an IPv4 prefix length, as ipvsadm prints persistence masks. */
export function prefixToNetmask(prefix: number): string {
  return formatV4(mask(4, prefix));
}

/** Prefix length of a contiguous IPv4 dotted netmask, or undefined if not contiguous. */
export function netmaskToPrefix(netmask: string): number | undefined {
  const parsed = parseAddress(netmask);
  if (!parsed || parsed.family !== 4) return undefined;
  for (let prefix = 0; prefix <= 32; prefix++) {
    if (mask(4, prefix) === parsed.value) return prefix;
  }
  return undefined;
}

function format(family: Family, value: bigint): string {
  return family === 4 ? formatV4(value) : formatV6(value);
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => ((value >> shift) & 255n).toString()).join(".");
}

function parseV6(text: string): bigint {
  let head = text;
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tailV4 = text
      .slice(lastColon + 1)
      .split(".")
      .map(Number);
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const [left, right] = head.includes("::") ? head.split("::") : [head, undefined];
  const leftGroups = left ? left.split(":").filter((g) => g !== "") : [];
  const rightGroups = right ? right.split(":").filter((g) => g !== "") : [];
  const fill = right === undefined ? [] : new Array(8 - leftGroups.length - rightGroups.length).fill("0");
  const groups = [...leftGroups, ...fill, ...rightGroups].map((g) => BigInt(parseInt(g, 16)));
  let value = groups.reduce((acc, g) => (acc << 16n) | g, 0n);
  if (tailV4.length === 4) {
    value = (value & ~0xffffffffn) | tailV4.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
  }
  return value;
}

function formatV6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Ranges no host on a DR segment can be reached at, with the reason each is refused. */
const unusableRanges: { family: Family; text: string; prefix: number; what: string }[] = [
  { family: 4, text: "0.0.0.0", prefix: 8, what: 'in 0.0.0.0/8 ("this network": no host has it)' },
  { family: 4, text: "127.0.0.0", prefix: 8, what: "a loopback address (127.0.0.0/8)" },
  { family: 4, text: "224.0.0.0", prefix: 4, what: "a multicast address (224.0.0.0/4)" },
  { family: 4, text: "240.0.0.0", prefix: 4, what: "in the reserved range 240.0.0.0/4" },
  { family: 6, text: "::", prefix: 128, what: "the unspecified address (::)" },
  { family: 6, text: "::1", prefix: 128, what: "the loopback address (::1)" },
  { family: 6, text: "ff00::", prefix: 8, what: "a multicast address (ff00::/8)" },
  { family: 6, text: "::ffff:0:0", prefix: 96, what: "an IPv4-mapped IPv6 address (::ffff:0:0/96): write the IPv4 address itself" },
];

/**
 * Why an address cannot be a host's address (VIP, RIP, DIP, gateway), or undefined when it can.
 * 255.255.255.255 lies in 240.0.0.0/4 but gets its own words, as the limited broadcast.
 */
export function unusableAddress(address: ParsedAddress): string | undefined {
  if (address.family === 4 && address.value === 0xffffffffn) return "the limited broadcast address (255.255.255.255)";
  for (const range of unusableRanges) {
    if (range.family !== address.family) continue;
    const cidr = { address: parseAddress(range.text)!, prefix: range.prefix };
    if (cidrContains(cidr, address)) return range.what;
  }
  return undefined;
}
