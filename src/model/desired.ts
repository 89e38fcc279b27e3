/**
 * Spec -> desired host state. Pure: the validated cluster becomes, for every host, the exact
 * addresses, IPVS entries, sysctls and persisted files it must hold.
 */
import { resolveConnection, type Connection } from "../config/connection";
import { netmaskToPrefix, parseAddress, parseCidr, prefixToNetmask, type Family } from "../config/ip";
import type { Cluster, Director, RealServer, VirtualService } from "../config/schema";
import type {
  DesiredHostState,
  DestinationState,
  InterfaceAddress,
  PersistedFile,
  SysctlSetting,
  VirtualServiceState,
} from "./host-state";
import { serviceKey } from "./keys";
import { hostPaths } from "./paths";

/** ARP suppression on a real server: answer ARP only for addresses on the receiving NIC, and never source ARP from the VIP. */
export const realServerArpSysctls = { arp_ignore: "1", arp_announce: "2" } as const;

export interface HostTarget {
  name: string;
  role: DesiredHostState["role"];
  connection: Connection;
}

export interface DesiredClusterState {
  cluster: string;
  /** Directors first, then real servers, each in spec order. */
  hosts: DesiredHostState[];
  targets: HostTarget[];
}

export function desiredClusterState(cluster: Cluster): DesiredClusterState {
  const hosts: DesiredHostState[] = [];
  const targets: HostTarget[] = [];
  for (const director of cluster.directors) {
    hosts.push(desiredDirectorState(cluster, director));
    const dip = parseCidr(director.dip);
    targets.push({ name: director.name, role: "director", connection: resolveConnection(director.connection, cluster.connectionDefaults, dip?.address.text ?? director.dip) });
  }
  for (const rs of cluster.realServers) {
    hosts.push(desiredRealServerState(cluster, rs));
    targets.push({ name: rs.name, role: "real-server", connection: resolveConnection(rs.connection, cluster.connectionDefaults, parseAddress(rs.rip)?.text ?? rs.rip) });
  }
  return { cluster: cluster.name, hosts, targets };
}

function servicesOf(cluster: Cluster, director: Director): VirtualService[] {
  return cluster.virtualServices.filter((svc) => (svc.director ?? cluster.directors[0]?.name) === director.name);
}

function hostPrefix(family: Family): number {
  return family === 4 ? 32 : 128;
}

export function virtualServiceState(svc: VirtualService): VirtualServiceState {
  const vip = parseAddress(svc.vip);
  if (!vip) throw new Error(`virtual service ${svc.name}: invalid VIP ${svc.vip}`);
  const persistence = svc.persistence
    ? { timeout: svc.persistence.timeout, netmask: persistenceNetmask(vip.family, svc.persistence.netmask) }
    : null;
  const base = { family: vip.family, scheduler: svc.scheduler, flags: [...svc.schedulerFlags].sort(), persistence };
  if (svc.fwmark !== undefined) return { ...base, protocol: "fwmark", address: "", port: 0, fwmark: svc.fwmark };
  return { ...base, protocol: svc.protocol ?? "tcp", address: vip.text, port: svc.port ?? 0, fwmark: 0 };
}

/** ipvsadm prints IPv4 masks dotted and IPv6 ones as a prefix length; default is one client per entry. */
function persistenceNetmask(family: Family, netmask: string | number | undefined): string {
  if (family === 6) return String(typeof netmask === "number" ? netmask : 128);
  if (typeof netmask === "string") return prefixToNetmask(netmaskToPrefix(netmask) ?? 32);
  return prefixToNetmask(32);
}

export function desiredDirectorState(cluster: Cluster, director: Director): DesiredHostState {
  const dip = parseCidr(director.dip);
  const realServers = new Map(cluster.realServers.map((rs) => [rs.name, rs]));
  const services: VirtualServiceState[] = [];
  const destinations: DestinationState[] = [];
  const addresses = new Map<string, InterfaceAddress>();
  const onLinkPeers = new Set<string>();
  for (const svc of servicesOf(cluster, director)) {
    const state = virtualServiceState(svc);
    const key = serviceKey(state);
    services.push(state);
    const vip = parseAddress(svc.vip);
    if (vip) addresses.set(vip.text, { interface: director.interface, address: vip.text, prefix: hostPrefix(vip.family) });
    for (const dest of svc.realServers) {
      const rs = realServers.get(dest.name);
      const rip = rs ? parseAddress(rs.rip) : undefined;
      if (!rip) continue;
      onLinkPeers.add(rip.text);
      destinations.push({
        service: key,
        address: rip.text,
        port: state.port,
        forwarding: "dr",
        weight: dest.weight,
        upperThreshold: dest.upperThreshold,
        lowerThreshold: dest.lowerThreshold,
      });
    }
  }
  const addressList = [...addresses.values()];
  const files: PersistedFile[] = [
    { path: hostPaths.ipvsRules, content: { kind: "ipvs-rules", services, destinations } },
    { path: hostPaths.bootScript, content: { kind: "boot-script", role: "director", sysctlFile: null, rulesFile: hostPaths.ipvsRules, addresses: addressList } },
    ...systemdFiles(),
  ];
  return {
    host: director.name,
    role: "director",
    interface: director.interface,
    primaryAddress: dip?.address.text ?? director.dip,
    primaryPrefix: dip?.prefix ?? null,
    addresses: addressList,
    services,
    destinations,
    sysctls: [],
    files,
    onLinkPeers: [...onLinkPeers],
    drain: cluster.drain,
    cluster: cluster.name,
  };
}

export function realServerSysctls(nic: string): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  for (const iface of ["all", "lo", nic]) {
    for (const [name, value] of Object.entries(realServerArpSysctls)) out.push({ key: `net/ipv4/conf/${iface}/${name}`, value });
  }
  return out;
}

export function desiredRealServerState(cluster: Cluster, rs: RealServer): DesiredHostState {
  const vips = new Map<string, InterfaceAddress>();
  for (const svc of cluster.virtualServices) {
    if (!svc.realServers.some((d) => d.name === rs.name)) continue;
    const vip = parseAddress(svc.vip);
    if (vip) vips.set(vip.text, { interface: "lo", address: vip.text, prefix: hostPrefix(vip.family) });
  }
  const addresses = [...vips.values()];
  const sysctls = realServerSysctls(rs.interface);
  const files: PersistedFile[] = [
    { path: hostPaths.sysctlConf, content: { kind: "sysctl-conf", sysctls } },
    { path: hostPaths.bootScript, content: { kind: "boot-script", role: "real-server", sysctlFile: hostPaths.sysctlConf, rulesFile: null, addresses } },
    ...systemdFiles(),
  ];
  return {
    host: rs.name,
    role: "real-server",
    interface: rs.interface,
    primaryAddress: parseAddress(rs.rip)?.text ?? rs.rip,
    primaryPrefix: null,
    addresses,
    services: [],
    destinations: [],
    sysctls,
    files,
    onLinkPeers: [],
    drain: cluster.drain,
    cluster: cluster.name,
  };
}

function systemdFiles(): PersistedFile[] {
  return [
    { path: hostPaths.systemdUnit, content: { kind: "systemd-unit", scriptPath: hostPaths.bootScript } },
    { path: hostPaths.systemdUnitLink, content: { kind: "link", target: hostPaths.systemdUnit } },
  ];
}

/** The state a host returns to when the tool lets go of it entirely (destroy). */
export function releasedHostState(host: DesiredHostState): DesiredHostState {
  return { ...host, addresses: [], services: [], destinations: [], sysctls: [], files: [], onLinkPeers: [] };
}
