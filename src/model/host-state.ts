/**
 * Host state as plain data, in the domain's words. The same types describe what a host must
 * reach (desired) and what it was seen to hold (observed), so the plan is a diff of two values.
 * Identity (the key functions) is kept apart from attributes and from live counters.
 */
import { createHash } from "node:crypto";
import type { Family } from "../config/ip";

export type HostRole = "director" | "real-server";

/** An address on an interface: a VIP on the director's NIC or on a real server's `lo`. */
export interface InterfaceAddress {
  interface: string;
  address: string;
  prefix: number;
}

export type ServiceProtocol = "tcp" | "udp" | "fwmark";

/** An IPVS virtual service, as `ipvsadm -A` describes it. */
export interface VirtualServiceState {
  protocol: ServiceProtocol;
  family: Family;
  /** VIP for tcp/udp; "" for fwmark services. */
  address: string;
  /** 0 for fwmark services. */
  port: number;
  /** 0 for tcp/udp services. */
  fwmark: number;
  scheduler: string;
  /** Sorted scheduler flags (`-b`). */
  flags: string[];
  persistence: { timeout: number; netmask: string } | null;
}

/** How IPVS forwards to a destination: DR is `-g` (ipvsadm prints "Route"). */
export type Forwarding = "dr" | "tunnel" | "nat" | "local";

/** A real server registered under a virtual service (`ipvsadm -a`). */
export interface DestinationState {
  /** Key of the virtual service it belongs to. */
  service: string;
  address: string;
  /** Equals the service port in DR mode; 0 under fwmark services. */
  port: number;
  forwarding: Forwarding;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
}

/** Live connection counters; observed only, never desired. */
export interface DestinationCounters {
  activeConnections: number;
  inactiveConnections: number;
}

/** A kernel parameter by its /proc/sys path (slashes, so dotted interface names survive). */
export interface SysctlSetting {
  key: string;
  value: string;
}

/** IPVS connection timeouts in seconds, as `ipvsadm --set tcp tcpfin udp` takes them. */
export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

/** A health check as keepalived runs it against one real server. */
export interface HealthCheckState {
  type: "tcp" | "http" | "https" | "command";
  /** The port probed on the RIP (0 for a command check: the command decides). */
  port: number;
  intervalSeconds: number;
  connectTimeoutSeconds: number;
  retries: number;
  retryDelaySeconds: number;
  /** HTTP(S) only. */
  path: string | null;
  statusCodes: number[];
  host: string | null;
  /** Command only: the program and its arguments, `{rip}` and `{port}` already replaced. */
  command: string[] | null;
}

/** A virtual service keepalived owns: its IPVS entry, its real servers and how they are checked. */
export interface KeepalivedVirtualServer {
  service: VirtualServiceState;
  /** Its real servers with their configured weights (keepalived sets 0, or removes them, while a check fails). */
  destinations: DestinationState[];
  /** One check per real server, or none: every real server is then taken as healthy. */
  checks: Record<string, HealthCheckState>;
  onFailure: "quiesce" | "remove";
  sorryServer: { address: string; port: number } | null;
  quorum: { weight: number; hysteresis: number } | null;
}

/** A director's VRRP instance: the failover group it belongs to. */
export interface VrrpInstance {
  group: string;
  interface: string;
  virtualRouterId: number;
  priority: number;
  advertIntervalSeconds: number;
  preempt: boolean;
  authSecret: string | null;
  /** The group's VIPs: held by whichever director is master, never added by hand. */
  vips: InterfaceAddress[];
  connectionSync: boolean;
  /** The other directors of the group, by name, for reports. */
  peers: string[];
}

/** What keepalived runs on a director in keepalived mode. */
export interface KeepalivedState {
  cluster: string;
  host: string;
  virtualServers: KeepalivedVirtualServer[];
  vrrp: VrrpInstance | null;
}

/** What a persisted file must say, as data; the render layer turns it into text. */
export type PersistedFileContent =
  | { kind: "keepalived-conf"; keepalived: KeepalivedState }
  | { kind: "keepalived-drop-in" }
  | { kind: "sysctl-conf"; sysctls: SysctlSetting[] }
  | { kind: "ipvs-rules"; services: VirtualServiceState[]; destinations: DestinationState[] }
  | {
      kind: "boot-script";
      role: HostRole;
      sysctlFile: string | null;
      rulesFile: string | null;
      addresses: InterfaceAddress[];
      /** A director's IPVS settings: kernel parameters (loaded once ip_vs is) and timeouts. */
      ipvsSysctlFile?: string | null;
      ipvsTimeouts?: IpvsTimeouts | null;
    }
  | { kind: "systemd-unit"; scriptPath: string }
  | { kind: "link"; target: string };

export interface PersistedFile {
  path: string;
  content: PersistedFileContent;
}

/** A file as the tool writes it: text and mode, or a symbolic link. */
export type RenderedFile = { path: string; content: string; mode: number } | { path: string; linkTarget: string };

/** What the tool created on a host, recorded there so it never touches anything else. */
export interface OwnershipRecord {
  version: 1;
  cluster: string;
  host: string;
  addresses: string[];
  services: string[];
  destinations: string[];
  /** Sysctls the tool set, with the value each had before, so destroy can put it back. */
  sysctls: Record<string, string>;
  files: string[];
  /** Virtual services handed to keepalived: it owns their IPVS entries, the tool its configuration. */
  keepalivedServices?: string[];
  /**
   * The VIPs of its failover group (`<interface>/<address>/<prefix>`): VRRP's to add and remove,
   * recorded so that a stop which leaves one behind (a backup that became master as the other
   * director stopped) can be cleaned up.
   */
  vrrpAddresses?: string[];
  /** The IPVS timeouts a director had before the tool set them, to put back on release. */
  ipvsTimeouts?: IpvsTimeouts;
}

export interface DesiredHostState {
  host: string;
  role: HostRole;
  /** The NIC holding the DIP or RIP. */
  interface: string;
  /** The DIP (director) or RIP (real server) with its prefix when known. */
  primaryAddress: string;
  primaryPrefix: number | null;
  /**
   * Every address of the host's own on its interface: the primary one first, then on a dual-stack
   * host the other family's (`dip6`, `rip6`). A destination names a real server by any of them.
   */
  ownAddresses: { address: string; prefix: number | null }[];
  addresses: InterfaceAddress[];
  services: VirtualServiceState[];
  destinations: DestinationState[];
  sysctls: SysctlSetting[];
  files: PersistedFile[];
  /** RIPs the director must reach on-link (live same-broadcast-domain check). */
  onLinkPeers: string[];
  drain: { timeoutSeconds: number; pollSeconds: number };
  cluster: string;
  /** A director in keepalived mode: what keepalived must run. Null: no keepalived configuration of ours. */
  keepalived: KeepalivedState | null;
  /** A director's IPVS timeouts; null: left as they are. */
  ipvsTimeouts: IpvsTimeouts | null;
}

export interface RouteLookup {
  destination: string;
  device: string | null;
  gateway: string | null;
  source: string | null;
}

/** An entry of a host's neighbour table (ARP, or IPv6 neighbour discovery). */
export interface Neighbour {
  address: string;
  device: string;
  /** The kernel holds a link-layer address it trusts (reachable, stale, delay, probe, permanent, noarp). */
  resolved: boolean;
}

/** A network interface as `ip -j addr show` lists it: its MAC (null for links without one) and MTU. */
export interface LinkInfo {
  name: string;
  mac: string | null;
  mtu: number | null;
}

/** A socket bound for a service (TCP listening, UDP bound), from /proc/net/{tcp,udp}{,6}. */
export interface ListeningSocket {
  protocol: "tcp" | "udp";
  family: Family;
  /** Canonical address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is given as IPv4 with family 6. */
  address: string;
  port: number;
}

/**
 * What only the doctor reads (observe request `doctor`): the sockets bound for the services a
 * real server must answer, and a director's NIC offloads (`ethtool -k`; null: ethtool missing).
 */
export interface DoctorObservation {
  listeners: ListeningSocket[] | null;
  offloads: { interface: string; features: Record<string, string> | null } | null;
}

/**
 * A file as observed: a symbolic link's target, or a regular file's text and its SHA-256 (hex),
 * which drift compares with the desired file's.
 */
export type ObservedFile = { isLink: true; target: string } | { isLink: false; sha256: string; content: string };

/** The SHA-256 (hex) of a text as a host stores it (UTF-8), to compare with an observed file. */
export function textSha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * What a host's state digest covers: the addresses on these interfaces, these /proc/sys values
 * and these files. What a plan for the host depends on, and nothing that churns on its own
 * (other interfaces come and go on container hosts; address lifetimes count down).
 */
export interface HostStateScope {
  interfaces: string[];
  sysctlKeys: string[];
  files: string[];
}

/**
 * What a plan's first script on a host checks before it changes anything: the addresses on the
 * scope's interfaces (`lo 198.51.100.5/32`), and the SHA-256 of which of the scope's files are
 * links or regular files followed by the kernel settings' and files' text as `grep -z` prints
 * them. Computed from the observation a plan is made from, at no cost on the host.
 */
export interface HostStateCheck extends HostStateScope {
  addresses: string[];
  sha256: string;
}

export interface ObservedHostState {
  host: string;
  addresses: InterfaceAddress[];
  /** Interface names present on the host. */
  interfaces: string[];
  /** Commands found on the host's PATH (of those the tool uses); empty unless observed for preflight. */
  tools: string[];
  ipvs: {
    /** `not-loaded`: no ip_vs module, so an empty table; `not-observed`: not asked (real servers). */
    status: "loaded" | "not-loaded" | "no-ipvsadm" | "not-observed";
    /** sha256 of the kernel's listing without its counters (`kernelTableListing`), to refuse applying a plan made from a stale view. */
    fingerprint: string | null;
    /** That listing, when observed: a small table is compared whole. */
    listing: string | null;
    services: VirtualServiceState[];
    destinations: (DestinationState & DestinationCounters)[];
    /** `ipvsadm -L --timeout`, when listed. */
    timeouts: IpvsTimeouts | null;
  };
  sysctls: Record<string, string | null>;
  files: Record<string, ObservedFile | null>;
  ownership: OwnershipRecord | null;
  /** Route lookups to a director's RIPs; empty unless observed for preflight. */
  routes: RouteLookup[];
  /** A director's neighbour table; empty unless observed for preflight. */
  neighbours: Neighbour[];
  /** Whether the RIPs a director is about to register answer ARP, by RIP (true = answered); empty unless judged. */
  arpReplies: Record<string, boolean>;
  /** keepalived on a director: installed, running (its pid alive), enabled at boot. Null: not observed. */
  keepalived: { installed: boolean; running: boolean; enabled: boolean } | null;
  /** The state digest, when observed for a plan: a plan's first script on the host refuses if it changed. */
  state?: HostStateCheck;
  /** Every interface's MAC and MTU, from the same `ip -j addr show` as the addresses (no extra cost). */
  links?: LinkInfo[];
  /** The IPv4 default routes (`ip route show default`), when asked (preflight of a real server, the doctor). */
  defaultRoutes?: { device: string | null; gateway: string | null }[];
  /** What only the doctor reads. */
  doctor?: DoctorObservation;
}
