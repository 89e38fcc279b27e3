/**
 * The data the dynamic resources carry, and the pure functions behind check and diff. Nothing
 * here contacts a host, so `pulumi preview` (check + diff) never does either.
 *
 * A resource's inputs are the whole cluster spec with the connection blocks taken out into one
 * top-level `connections` property: Pulumi marks secrets per top-level property
 * (`additionalSecretOutputs`), so keeping every credential under one name keeps all of them
 * secret in state while the VIPs, services and weights stay readable in diffs.
 */
import type { ConnectionInput } from "../config/connection";
import { parseCluster, type SpecIssue } from "../config/load";
import type { Cluster, ClusterInput } from "../config/schema";
import { desiredClusterState, type DesiredClusterState } from "../model/desired";
import { textSha256, type DesiredHostState, type Forwarding, type HostRole, type ObservedHostState } from "../model/host-state";
import { addressKey, destinationKey, serviceKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { renderFile } from "../render/files";

/** Which dynamic resource: a real server's preparation, a director, or a real server's release. */
export type HostResourceKind = "real-server" | "director" | "real-server-release";

/** Every connection block of the spec, by where it came from. */
export interface ClusterConnections {
  defaults?: ConnectionInput;
  /** By host name: the host's own `connection` block. */
  hosts: Record<string, ConnectionInput>;
  /** By failover group name: its VRRP `authSecret`, kept with the other secrets. */
  vrrpSecrets?: Record<string, string>;
}

/** The inputs of every lvs-dr dynamic resource. */
export interface HostResourceInputs {
  /** The cluster spec without its connection blocks. */
  cluster: ClusterInput;
  /** The connection blocks (secret). */
  connections: ClusterConnections;
  /** The host this resource manages. */
  host: string;
  /** Where relative privateKeyPath / knownHostsFile are resolved from. */
  baseDir?: string;
}

export interface ServiceFields {
  scheduler: string;
  flags: string[];
  persistence: { timeout: number; netmask: string } | null;
}

export interface DestinationFields {
  forwarding: Forwarding;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
}

/**
 * A host's state as flat, keyed fields, so `pulumi refresh` names the exact item that drifted,
 * e.g. `sysctls["net/ipv4/conf/all/arp_ignore"]: "1" => "0"`. Built from the desired state on
 * create/update and from the observed state on read, in the same shape.
 */
export interface HostStateFields {
  role: HostRole;
  interface: string;
  primaryAddress: string;
  /** `<interface>/<address>/<prefix>`, sorted. */
  addresses: string[];
  /** By /proc/sys path. */
  sysctls: Record<string, string>;
  /** By service key (`tcp:198.51.100.5:80`); directors only. */
  services: Record<string, ServiceFields>;
  /** By destination key (`tcp:198.51.100.5:80/198.51.100.10:80`); directors only. */
  destinations: Record<string, DestinationFields>;
  /** By path: `sha256:<hex>` of the content, or `link:<target>`. */
  files: Record<string, string>;
  /** A director in keepalived mode: keepalived running and enabled at boot. Null otherwise. */
  keepalived: { running: boolean; enabled: boolean } | null;
}

export type HostResourceOutputs = HostResourceInputs & HostStateFields;

/** A release resource records only which VIPs the real server keeps on `lo` once released. */
export type ReleaseResourceOutputs = HostResourceInputs & { addresses: string[] };

/** Splits a raw (not yet validated) spec into the spec without connections and the connection blocks. */
export function splitConnections(spec: ClusterInput): { cluster: ClusterInput; connections: ClusterConnections } {
  const { connectionDefaults, ...rest } = spec;
  const hosts: Record<string, ConnectionInput> = {};
  const strip = <T extends { name: string; connection?: ConnectionInput | undefined }>(host: T): Omit<T, "connection"> => {
    const { connection, ...own } = host;
    if (connection !== undefined) hosts[host.name] = connection;
    return own;
  };
  const vrrpSecrets: Record<string, string> = {};
  const cluster: ClusterInput = {
    ...rest,
    directors: (spec.directors ?? []).map(strip),
    ...(spec.realServers ? { realServers: spec.realServers.map(strip) } : {}),
    ...(spec.failoverGroups
      ? {
          failoverGroups: spec.failoverGroups.map((g) => {
            const { authSecret, ...group } = g;
            if (authSecret !== undefined) vrrpSecrets[g.name] = authSecret;
            return group;
          }),
        }
      : {}),
  };
  return {
    cluster,
    connections: { ...(connectionDefaults ? { defaults: connectionDefaults } : {}), hosts, ...(Object.keys(vrrpSecrets).length ? { vrrpSecrets } : {}) },
  };
}

/** The spec as the user wrote it, connection blocks put back. */
export function joinConnections(cluster: ClusterInput, connections: ClusterConnections | undefined): ClusterInput {
  const hosts = connections?.hosts ?? {};
  const withConn = <T extends { name: string }>(host: T): T => (hosts[host.name] !== undefined ? { ...host, connection: hosts[host.name] } : host);
  return {
    ...cluster,
    ...(connections?.defaults !== undefined ? { connectionDefaults: connections.defaults } : {}),
    directors: (cluster.directors ?? []).map(withConn),
    ...(cluster.realServers ? { realServers: cluster.realServers.map(withConn) } : {}),
    ...(cluster.failoverGroups
      ? {
          failoverGroups: cluster.failoverGroups.map((g) => {
            const secret = connections?.vrrpSecrets?.[g.name];
            return secret !== undefined ? { ...g, authSecret: secret } : g;
          }),
        }
      : {}),
  };
}

export interface CheckFailure {
  property: string;
  reason: string;
}

function roleOfKind(kind: HostResourceKind): HostRole {
  return kind === "director" ? "director" : "real-server";
}

/** Issue paths point into the spec as written (`cluster.virtualServices[0].port`). */
export function checkInputs(kind: HostResourceKind, news: HostResourceInputs): { inputs: HostResourceInputs; failures: CheckFailure[] } {
  const parsed = parseCluster(joinConnections(news.cluster, news.connections));
  if (!parsed.ok) return { inputs: news, failures: parsed.issues.map((i: SpecIssue) => ({ property: `cluster.${i.path}`, reason: i.message })) };
  const role = roleOfKind(kind);
  const names = role === "director" ? parsed.cluster.directors.map((d) => d.name) : parsed.cluster.realServers.map((r) => r.name);
  if (!names.includes(news.host)) {
    const list = role === "director" ? "directors" : "realServers";
    return { inputs: news, failures: [{ property: "host", reason: `must name one of cluster.${list} (${names.join(", ") || "none"}); got "${news.host}"` }] };
  }
  // Defaults written out, so a spec that spells a default and one that leaves it out diff alike.
  const { addresses: _parsed, ...spec } = parsed.cluster;
  const { cluster } = splitConnections(spec);
  return { inputs: { ...news, cluster }, failures: [] };
}

/** Validates and computes desired state; throws naming every problem (check should have caught them). */
export function desiredOf(inputs: HostResourceInputs): { cluster: Cluster; desired: DesiredClusterState; host: DesiredHostState } {
  const parsed = parseCluster(joinConnections(inputs.cluster, inputs.connections));
  if (!parsed.ok) throw new Error(`invalid cluster spec:\n${parsed.issues.map((i) => `  cluster.${i.path}: ${i.message}`).join("\n")}`);
  const desired = desiredClusterState(parsed.cluster);
  const host = desired.hosts.find((h) => h.host === inputs.host);
  if (!host) throw new Error(`host: "${inputs.host}" is not a director or real server of cluster ${parsed.cluster.name}`);
  return { cluster: parsed.cluster, desired, host };
}

/**
 * A file's digest in state. keepalived's file may hold the VRRP secret, which is short: the
 * digest of the whole file would let anyone who reads the state guess it offline, so its
 * digest leaves the secret out (a hand edit of only the secret is still drift for `lvsdr drift`).
 */
function fileDigest(path: string, text: string): string {
  const shown = path === hostPaths.keepalivedConf ? text.replace(/^(\s*auth_pass )\S+$/gm, "$1(secret)") : text;
  return `sha256:${textSha256(shown)}`;
}

function serviceFields(s: { scheduler: string; flags: string[]; persistence: { timeout: number; netmask: string } | null }): ServiceFields {
  return { scheduler: s.scheduler, flags: [...s.flags], persistence: s.persistence ? { ...s.persistence } : null };
}

function destinationFields(d: DestinationFields): DestinationFields {
  return { forwarding: d.forwarding, weight: d.weight, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold };
}

export function fieldsFromDesired(host: DesiredHostState): HostStateFields {
  const files: Record<string, string> = {};
  for (const f of host.files.map(renderFile)) files[f.path] = "linkTarget" in f ? `link:${f.linkTarget}` : fileDigest(f.path, f.content);
  return {
    role: host.role,
    interface: host.interface,
    primaryAddress: host.primaryAddress,
    addresses: host.addresses.map(addressKey).sort(),
    sysctls: Object.fromEntries(host.sysctls.map((s) => [s.key, s.value])),
    services: Object.fromEntries(host.services.map((s) => [serviceKey(s), serviceFields(s)])),
    destinations: Object.fromEntries(host.destinations.map((d) => [destinationKey(d), destinationFields(d)])),
    files,
    keepalived: host.keepalived ? { running: true, enabled: true } : null,
  };
}

/**
 * The same fields from what the host was seen to hold: every item the spec wants or the host's
 * ownership record lists, nothing else (unmanaged IPVS services and the host's own addresses
 * are not this resource's to report). A missing item is left out, so it shows as removed.
 */
export function fieldsFromObserved(host: DesiredHostState, observed: ObservedHostState): HostStateFields {
  const owned = observed.ownership;
  const wantAddr = new Set([...host.addresses.map(addressKey), ...(owned?.addresses ?? [])]);
  const wantAddrAt = new Set(host.addresses.map((a) => `${a.interface}/${a.address}`));
  const addresses = observed.addresses.filter((a) => wantAddr.has(addressKey(a)) || wantAddrAt.has(`${a.interface}/${a.address}`)).map(addressKey);

  const sysctls: Record<string, string> = {};
  for (const key of [...host.sysctls.map((s) => s.key), ...Object.keys(owned?.sysctls ?? {})]) {
    const value = observed.sysctls[key];
    if (value !== null && value !== undefined) sysctls[key] = value;
  }
  // A sysctl the tool set and no longer wants reads back at its original value once released.
  for (const [key, original] of Object.entries(owned?.sysctls ?? {})) {
    if (!host.sysctls.some((s) => s.key === key) && sysctls[key] === original) delete sysctls[key];
  }

  const wantSvc = new Set([...host.services.map(serviceKey), ...(owned?.services ?? [])]);
  const services = Object.fromEntries(observed.ipvs.services.filter((s) => wantSvc.has(serviceKey(s))).map((s) => [serviceKey(s), serviceFields(s)]));
  const wantDest = new Set([...host.destinations.map(destinationKey), ...(owned?.destinations ?? [])]);
  const destinations: Record<string, DestinationFields> = Object.fromEntries(
    observed.ipvs.destinations.filter((d) => wantDest.has(destinationKey(d))).map((d) => [destinationKey(d), destinationFields(d)]),
  );
  // A real server keepalived took out because its check fails (weight 0, or removed) is health,
  // not drift: refresh reads it as configured, so `pulumi up` never "repairs" it.
  const byKeepalived = new Set((host.keepalived?.virtualServers ?? []).map((v) => serviceKey(v.service)));
  for (const d of host.destinations) {
    if (!byKeepalived.has(d.service) || d.weight === 0) continue;
    const key = destinationKey(d);
    const seen = destinations[key];
    if (!seen || seen.weight === 0) destinations[key] = destinationFields(seen ? { ...seen, weight: d.weight } : d);
  }

  const files: Record<string, string> = {};
  for (const path of new Set([...host.files.map((f) => f.path), ...(owned?.files ?? [])])) {
    const seen = observed.files[path];
    if (seen) files[path] = seen.isLink ? `link:${seen.target}` : fileDigest(path, seen.content);
  }
  const daemon = observed.keepalived;
  const keepalived = host.keepalived || owned?.files.includes(hostPaths.keepalivedConf) ? (daemon ? { running: daemon.running, enabled: daemon.enabled } : null) : null;
  return {
    role: host.role,
    interface: host.interface,
    primaryAddress: host.primaryAddress,
    addresses: [...new Set(addresses)].sort(),
    sysctls,
    services,
    destinations,
    files,
    keepalived,
  };
}

/** Only the state fields of a resource's outputs (no spec, no secrets). */
export function stateFields(outs: Partial<HostStateFields>): HostStateFields {
  return {
    role: outs.role ?? "real-server",
    interface: outs.interface ?? "",
    primaryAddress: outs.primaryAddress ?? "",
    addresses: outs.addresses ?? [],
    sysctls: outs.sysctls ?? {},
    services: outs.services ?? {},
    destinations: outs.destinations ?? {},
    files: outs.files ?? {},
    keepalived: outs.keepalived ?? null,
  };
}

/** Stable JSON (sorted keys) so field order never reads as a change. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

/** Where a resource's host is reached: a different machine means replace, not update. */
function targetOf(inputs: HostResourceInputs): string | null {
  try {
    const { desired } = desiredOf(inputs);
    const t = desired.targets.find((x) => x.name === inputs.host);
    return t ? `${t.connection.user}@${t.connection.host}:${t.connection.port}` : null;
  } catch {
    return null;
  }
}

/**
 * Contacts no host. Compares what the new spec wants on this host with what the state says it
 * holds (after `pulumi refresh`, what was observed), so drift found by refresh is repaired by
 * the next `pulumi up`. A different host, cluster or connection target is a replacement; the
 * old one is released first because it may be the same machine under another address.
 */
export function diffInputs(kind: HostResourceKind, olds: Partial<HostResourceOutputs>, news: HostResourceInputs): DiffResult {
  const replaces: string[] = [];
  if (olds.host !== news.host) replaces.push("host");
  if (olds.cluster?.name !== news.cluster.name) replaces.push("cluster");
  if (olds.cluster && olds.connections && targetOf(olds as HostResourceInputs) !== targetOf(news)) replaces.push("connections");
  if (replaces.length) return { changes: true, replaces, deleteBeforeReplace: true };
  const { host } = desiredOf(news);
  const want = fieldsFromDesired(host);
  const changed = kind === "real-server-release" ? canonical(want.addresses) !== canonical(olds.addresses ?? []) : canonical(want) !== canonical(stateFields(olds));
  return { changes: changed, replaces: [], deleteBeforeReplace: false };
}
