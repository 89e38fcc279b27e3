/**
 * The spec's addresses, parsed once by validation. The model reads VIPs, RIPs, DIPs and
 * persistence masks from here as parsed values (family, canonical text, prefix) and never
 * parses address text itself; a name that validation did not see is a programming error.
 */
import { netmaskToPrefix, parseAddress, parseCidr, type Family, type ParsedAddress, type ParsedCidr } from "./ip";
import type { ClusterSpec } from "./schema";

export class ClusterAddresses {
  private constructor(
    private readonly vips: ReadonlyMap<string, ParsedAddress>,
    private readonly rips: ReadonlyMap<string, ParsedAddress>,
    private readonly dips: ReadonlyMap<string, ParsedCidr>,
    /** Dual stack: the second family's RIP and DIP (`rip6`, `dip6`), by host name. */
    private readonly rips6: ReadonlyMap<string, ParsedAddress>,
    private readonly dips6: ReadonlyMap<string, ParsedCidr>,
    private readonly persistencePrefixes: ReadonlyMap<string, number>,
  ) {}

  /** Only for a spec that passed validation: every address in it parses. */
  static of(spec: ClusterSpec): ClusterAddresses {
    const vips = new Map<string, ParsedAddress>();
    const prefixes = new Map<string, number>();
    for (const svc of spec.virtualServices) {
      const vip = must(parseAddress(svc.vip), `virtualServices ${svc.name}.vip`, svc.vip);
      vips.set(svc.name, vip);
      const netmask = svc.persistence?.netmask;
      // ipvsadm's default persistence mask is one client per entry.
      const prefix = vip.family === 4 ? (typeof netmask === "string" ? netmaskToPrefix(netmask) : 32) : typeof netmask === "number" ? netmask : 128;
      prefixes.set(svc.name, must(prefix, `virtualServices ${svc.name}.persistence.netmask`, String(netmask)));
    }
    const rips = new Map(spec.realServers.map((rs) => [rs.name, must(parseAddress(rs.rip), `realServers ${rs.name}.rip`, rs.rip)]));
    const dips = new Map(spec.directors.map((d) => [d.name, must(parseCidr(d.dip), `directors ${d.name}.dip`, d.dip)]));
    const rips6 = new Map(
      spec.realServers.flatMap((rs) => (rs.rip6 === undefined ? [] : [[rs.name, must(parseAddress(rs.rip6), `realServers ${rs.name}.rip6`, rs.rip6)] as const])),
    );
    const dips6 = new Map(spec.directors.flatMap((d) => (d.dip6 === undefined ? [] : [[d.name, must(parseCidr(d.dip6), `directors ${d.name}.dip6`, d.dip6)] as const])));
    return new ClusterAddresses(vips, rips, dips, rips6, dips6, prefixes);
  }

  vip(service: { name: string }): ParsedAddress {
    return found(this.vips.get(service.name), "virtual service", service.name);
  }

  rip(realServer: { name: string }): ParsedAddress {
    return found(this.rips.get(realServer.name), "real server", realServer.name);
  }

  dip(director: { name: string }): ParsedCidr {
    return found(this.dips.get(director.name), "director", director.name);
  }

  /** The real server's RIP in a family (`rip`, or `rip6` beside it); validation made sure each service's real servers have one. */
  ripIn(realServer: { name: string }, family: Family): ParsedAddress {
    const rip = this.rip(realServer);
    return rip.family === family ? rip : found(this.rips6.get(realServer.name), `real server with an IPv${family} RIP`, realServer.name);
  }

  /** Every RIP of the real server: `rip`, then `rip6` when given. */
  ripsOf(realServer: { name: string }): ParsedAddress[] {
    const second = this.rips6.get(realServer.name);
    return second ? [this.rip(realServer), second] : [this.rip(realServer)];
  }

  /** Every DIP of the director: `dip`, then `dip6` when given. */
  dipsOf(director: { name: string }): ParsedCidr[] {
    const second = this.dips6.get(director.name);
    return second ? [this.dip(director), second] : [this.dip(director)];
  }

  /** The persistence mask as a prefix length, in the VIP's family. */
  persistencePrefix(service: { name: string }): number {
    return found(this.persistencePrefixes.get(service.name), "virtual service", service.name);
  }

  /** Nothing to show: the spec holds these addresses as text, and JSON of a cluster is its spec. */
  toJSON(): undefined {
    return undefined;
  }
}

function must<T>(value: T | undefined, field: string, text: string): T {
  if (value === undefined) throw new Error(`${field}: "${text}" did not pass validation`);
  return value;
}

function found<T>(value: T | undefined, kind: string, name: string): T {
  if (value === undefined) throw new Error(`${kind} "${name}" is not in the validated spec`);
  return value;
}
