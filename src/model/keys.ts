/**
 * One key function per kind of item, used everywhere: desired state, parsed state, ownership
 * records, drift reports. Keys name identity only; `same*` functions compare configuration and
 * never live counters.
 */
import type { DestinationState, InterfaceAddress, VirtualServiceState } from "./host-state";

/** `198.51.100.5:80` or `[2001:db8::5]:80`, as ipvsadm writes service and server addresses. */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** `tcp:198.51.100.5:80`, `udp:[2001:db8::5]:53`, `fwmark:7` (IPv4) or `fwmark6:7`. */
export function serviceKey(svc: Pick<VirtualServiceState, "protocol" | "address" | "port" | "fwmark" | "family">): string {
  if (svc.protocol === "fwmark") return svc.family === 6 ? `fwmark6:${svc.fwmark}` : `fwmark:${svc.fwmark}`;
  return `${svc.protocol}:${hostPort(svc.address, svc.port)}`;
}

/** `<service key>/<rip>:<port>`. */
export function destinationKey(dest: Pick<DestinationState, "service" | "address" | "port">): string {
  return `${dest.service}/${hostPort(dest.address, dest.port)}`;
}

/** `<interface>/<address>/<prefix>`. */
export function addressKey(addr: InterfaceAddress): string {
  return `${addr.interface}/${addr.address}/${addr.prefix}`;
}

/** The address an `addressKey` names; null for text of another shape (a record is read from a host). */
export function addressFromKey(key: string): InterfaceAddress | null {
  const [iface, address, prefix, ...rest] = key.split("/");
  return iface && address && prefix && rest.length === 0 && /^\d+$/.test(prefix) ? { interface: iface, address, prefix: Number(prefix) } : null;
}

export function sameService(a: VirtualServiceState, b: VirtualServiceState): boolean {
  return serviceDifferences(a, b).length === 0;
}

export interface FieldDifference {
  field: string;
  expected: string;
  actual: string;
}

const noDifferences: FieldDifference[] = [];

export function serviceDifferences(expected: VirtualServiceState, actual: VirtualServiceState): FieldDifference[] {
  const diffs: FieldDifference[] = [];
  const persistence = (s: VirtualServiceState) => (s.persistence ? `${s.persistence.timeout}s mask ${s.persistence.netmask}` : "off");
  if (expected.scheduler !== actual.scheduler) diffs.push({ field: "scheduler", expected: expected.scheduler, actual: actual.scheduler });
  if (expected.flags.join(",") !== actual.flags.join(",")) {
    diffs.push({ field: "schedulerFlags", expected: expected.flags.join(",") || "none", actual: actual.flags.join(",") || "none" });
  }
  if (persistence(expected) !== persistence(actual)) diffs.push({ field: "persistence", expected: persistence(expected), actual: persistence(actual) });
  return diffs;
}

export function destinationDifferences(expected: DestinationState, actual: DestinationState): FieldDifference[] {
  if (
    expected.forwarding === actual.forwarding &&
    expected.weight === actual.weight &&
    expected.upperThreshold === actual.upperThreshold &&
    expected.lowerThreshold === actual.lowerThreshold
  ) {
    return noDifferences;
  }
  const diffs: FieldDifference[] = [];
  for (const field of ["forwarding", "weight", "upperThreshold", "lowerThreshold"] as const) {
    if (expected[field] !== actual[field]) diffs.push({ field, expected: String(expected[field]), actual: String(actual[field]) });
  }
  return diffs;
}
