/**
 * Spec -> desired host state. Pure: the validated cluster becomes, for every host, the exact
 * addresses, IPVS entries, sysctls and persisted files it must hold.
 */
import { resolveConnection, type Connection } from "../config/connection";
import { prefixToNetmask, type Family } from "../config/ip";
import { serviceDirectors } from "../config/rules";
import type { Cluster, Director, HealthCheck, IpvsSettings, RealServer, VirtualService } from "../config/schema";
import type {
  DesiredHostState,
  DestinationState,
  HealthCheckState,
  InterfaceAddress,
  KeepalivedState,
  KeepalivedVirtualServer,
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
    const dip = cluster.addresses.dip(director);
    targets.push({ name: director.name, role: "director", connection: resolveConnection(director.connection, cluster.connectionDefaults, dip.address.text) });
  }
  for (const rs of cluster.realServers) {
    hosts.push(desiredRealServerState(cluster, rs));
    targets.push({ name: rs.name, role: "real-server", connection: resolveConnection(rs.connection, cluster.connectionDefaults, cluster.addresses.rip(rs).text) });
  }
  return { cluster: cluster.name, hosts, targets };
}

function servicesOf(cluster: Cluster, director: Director): VirtualService[] {
  return cluster.virtualServices.filter((svc) => serviceDirectors(cluster, svc).includes(director.name));
}

/** keepalived owns a service's IPVS entries when it checks its real servers or moves its VIP. */
export function managedByKeepalived(svc: VirtualService): boolean {
  return svc.healthCheck !== undefined || svc.failoverGroup !== undefined;
}

/** The check of one real server, with the port and the command's placeholders filled in. */
function healthCheckState(check: HealthCheck, rip: string, servicePort: number): HealthCheckState {
  const port = check.port ?? servicePort;
  const http = check.type === "http" || check.type === "https";
  return {
    type: check.type,
    port: check.type === "command" && check.port === undefined ? 0 : port,
    intervalSeconds: check.intervalSeconds,
    connectTimeoutSeconds: check.connectTimeoutSeconds,
    retries: check.retries,
    retryDelaySeconds: check.retryDelaySeconds,
    path: http ? check.path : null,
    statusCodes: http ? [...check.statusCodes].sort((a, b) => a - b) : [],
    host: http ? (check.host ?? null) : null,
    command: check.type === "command" ? [check.path, ...check.args.map((a) => a.replaceAll("{rip}", rip).replaceAll("{port}", String(port)))] : null,
  };
}

function hostPrefix(family: Family): number {
  return family === 4 ? 32 : 128;
}

export function virtualServiceState(cluster: Cluster, svc: VirtualService): VirtualServiceState {
  const vip = cluster.addresses.vip(svc);
  const persistence = svc.persistence ? { timeout: svc.persistence.timeout, netmask: persistenceNetmask(vip.family, cluster.addresses.persistencePrefix(svc)) } : null;
  const base = { family: vip.family, scheduler: svc.scheduler, flags: [...svc.schedulerFlags].sort(), persistence };
  if (svc.fwmark !== undefined) return { ...base, protocol: "fwmark", address: "", port: 0, fwmark: svc.fwmark };
  return { ...base, protocol: svc.protocol ?? "tcp", address: vip.text, port: svc.port ?? 0, fwmark: 0 };
}

/** ipvsadm prints IPv4 masks dotted and IPv6 ones as a prefix length. */
function persistenceNetmask(family: Family, prefix: number): string {
  return family === 6 ? String(prefix) : prefixToNetmask(prefix);
}

export function desiredDirectorState(cluster: Cluster, director: Director): DesiredHostState {
  const dip = cluster.addresses.dip(director);
  const realServers = new Map(cluster.realServers.map((rs) => [rs.name, rs]));
  const services: VirtualServiceState[] = [];
  const destinations: DestinationState[] = [];
  const staticServices: VirtualServiceState[] = [];
  const staticDestinations: DestinationState[] = [];
  const virtualServers: KeepalivedVirtualServer[] = [];
  const addresses = new Map<string, InterfaceAddress>();
  const groupVips = new Map<string, InterfaceAddress>();
  const onLinkPeers = new Set<string>();
  for (const svc of servicesOf(cluster, director)) {
    const state = virtualServiceState(cluster, svc);
    const key = serviceKey(state);
    const keepalived = managedByKeepalived(svc);
    services.push(state);
    if (!keepalived) staticServices.push(state);
    const vip = cluster.addresses.vip(svc);
    const address = { interface: director.interface, address: vip.text, prefix: hostPrefix(vip.family) };
    // A failover group's VIP is VRRP's to add and remove; the tool never adds it by hand.
    if (svc.failoverGroup !== undefined) groupVips.set(vip.text, address);
    else addresses.set(vip.text, address);
    const serviceDestinations: DestinationState[] = [];
    const checks: Record<string, HealthCheckState> = {};
    for (const dest of svc.realServers) {
      const rs = realServers.get(dest.name);
      if (!rs) continue;
      // A dual-stack real server is registered by its RIP in the service's family.
      const rip = cluster.addresses.ripIn(rs, vip.family);
      onLinkPeers.add(rip.text);
      const destination: DestinationState = {
        service: key,
        address: rip.text,
        port: state.port,
        forwarding: "dr",
        weight: dest.weight,
        upperThreshold: dest.upperThreshold,
        lowerThreshold: dest.lowerThreshold,
      };
      destinations.push(destination);
      serviceDestinations.push(destination);
      if (!keepalived) staticDestinations.push(destination);
      if (svc.healthCheck) checks[rip.text] = healthCheckState(svc.healthCheck, rip.text, state.port);
    }
    if (keepalived) {
      const sorry = svc.sorryServer !== undefined ? realServers.get(svc.sorryServer) : undefined;
      const sorryRip = sorry ? cluster.addresses.ripIn(sorry, vip.family) : undefined;
      if (sorryRip) onLinkPeers.add(sorryRip.text);
      virtualServers.push({
        service: state,
        destinations: serviceDestinations,
        checks,
        onFailure: svc.healthCheck?.onFailure ?? "quiesce",
        sorryServer: sorryRip ? { address: sorryRip.text, port: state.port } : null,
        quorum: svc.quorum ? { weight: svc.quorum.weight, hysteresis: svc.quorum.hysteresis } : null,
      });
    }
  }
  const group = cluster.failoverGroups.find((g) => g.directors.some((d) => d.name === director.name));
  const keepalived: KeepalivedState | null =
    virtualServers.length > 0 || group
      ? {
          cluster: cluster.name,
          host: director.name,
          virtualServers,
          vrrp: group
            ? {
                group: group.name,
                interface: director.interface,
                virtualRouterId: group.virtualRouterId,
                priority: group.directors.find((d) => d.name === director.name)?.priority ?? 100,
                advertIntervalSeconds: group.advertIntervalSeconds,
                preempt: group.preempt,
                authSecret: group.authSecret ?? null,
                vips: [...groupVips.values()],
                connectionSync: group.connectionSync,
                peers: group.directors.map((d) => d.name).filter((n) => n !== director.name),
              }
            : null,
        }
      : null;
  const addressList = [...addresses.values()];
  const ipvs = director.ipvs;
  const sysctls = directorIpvsSysctls(ipvs);
  const ipvsTimeouts = { tcp: ipvs.timeouts.tcp, tcpFin: ipvs.timeouts.tcpFin, udp: ipvs.timeouts.udp };
  const bootScript: PersistedFile["content"] = {
    kind: "boot-script",
    role: "director",
    sysctlFile: null,
    rulesFile: hostPaths.ipvsRules,
    addresses: addressList,
    ipvsSysctlFile: hostPaths.ipvsSysctlConf,
    ipvsTimeouts,
  };
  const files: PersistedFile[] = [
    { path: hostPaths.ipvsRules, content: { kind: "ipvs-rules", services: staticServices, destinations: staticDestinations } },
    { path: hostPaths.ipvsSysctlConf, content: { kind: "sysctl-conf", sysctls } },
    { path: hostPaths.bootScript, content: bootScript },
    ...systemdFiles(),
    ...(keepalived
      ? [
          { path: hostPaths.keepalivedConf, content: { kind: "keepalived-conf" as const, keepalived } },
          { path: hostPaths.keepalivedDropIn, content: { kind: "keepalived-drop-in" as const } },
        ]
      : []),
  ];
  return {
    host: director.name,
    role: "director",
    interface: director.interface,
    primaryAddress: dip.address.text,
    primaryPrefix: dip.prefix,
    ownAddresses: cluster.addresses.dipsOf(director).map((d) => ({ address: d.address.text, prefix: d.prefix })),
    addresses: addressList,
    services,
    destinations,
    sysctls,
    files,
    onLinkPeers: [...onLinkPeers],
    drain: cluster.drain,
    cluster: cluster.name,
    keepalived,
    ipvsTimeouts,
  };
}

/**
 * The values a freshly loaded ip_vs module gives its parameters. Before ip_vs is loaded they do
 * not exist, and these are what they were "before the tool set them".
 */
export const ipvsSysctlDefaults: Readonly<Record<string, string>> = {
  "net/ipv4/vs/expire_nodest_conn": "0",
  "net/ipv4/vs/expire_quiescent_template": "0",
  "net/ipv4/vs/conn_reuse_mode": "1",
  "net/ipv4/vs/conntrack": "0",
};

/** A director's IPVS kernel parameters (net.ipv4.vs.*), from its `ipvs` block. */
export function directorIpvsSysctls(ipvs: IpvsSettings): SysctlSetting[] {
  const flag = (on: boolean) => (on ? "1" : "0");
  return [
    { key: "net/ipv4/vs/expire_nodest_conn", value: flag(ipvs.expireNodestConn) },
    { key: "net/ipv4/vs/expire_quiescent_template", value: flag(ipvs.expireQuiescentTemplate) },
    { key: "net/ipv4/vs/conn_reuse_mode", value: String(ipvs.connReuseMode) },
    { key: "net/ipv4/vs/conntrack", value: flag(ipvs.conntrack) },
  ];
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
    // A sorry server is prepared like the others: it takes the VIP's traffic when none is healthy.
    if (!svc.realServers.some((d) => d.name === rs.name) && svc.sorryServer !== rs.name) continue;
    const vip = cluster.addresses.vip(svc);
    vips.set(vip.text, { interface: "lo", address: vip.text, prefix: hostPrefix(vip.family) });
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
    primaryAddress: cluster.addresses.rip(rs).text,
    primaryPrefix: null,
    ownAddresses: cluster.addresses.ripsOf(rs).map((rip) => ({ address: rip.text, prefix: null })),
    addresses,
    services: [],
    destinations: [],
    sysctls,
    files,
    onLinkPeers: [],
    drain: cluster.drain,
    cluster: cluster.name,
    keepalived: null,
    ipvsTimeouts: null,
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
  return { ...host, addresses: [], services: [], destinations: [], sysctls: [], files: [], onLinkPeers: [], keepalived: null, ipvsTimeouts: null };
}
