/**
 * What a user writes: `new LvsDrCluster("lab", { cluster })`. Thin components: they split the
 * spec into per-host resources and wire the order that keeps traffic safe as real
 * dependencies; validation happens in the providers' `check`, host work in their create/update.
 *
 *   RealServer (every real server ready) -> Director (registers them) -> RealServerRelease
 *
 * On destroy Pulumi deletes in reverse: releases (no-op), directors (let go first), then the
 * real servers (withdrawn last). Resource names come from host names, never list positions,
 * so reordering a list recreates nothing.
 */
import "./stack-frames";
import * as pulumi from "@pulumi/pulumi";
import { issueLines, parseCluster } from "../config/load";
import { serviceDirectors } from "../config/rules";
import type { Cluster, ClusterInput } from "../config/schema";
import { virtualServiceState } from "../model/desired";
import type { HostRole } from "../model/host-state";
import { Director, RealServer, RealServerRelease } from "./providers";
import { splitConnections, type ClusterConnections, type DestinationFields, type ServiceFields } from "./state";

export interface LvsDrClusterArgs {
  /**
   * The cluster spec (the `lvs-dr:cluster` stack config value). A plain value, not an Input:
   * host names decide which resources exist and their names, and Pulumi needs the graph when
   * the program runs, also in preview. Connection blocks are stored as secrets whatever you
   * pass; keep keys out of the program with privateKeyPath, an ssh-agent, or `secure:` config.
   */
  cluster: ClusterInput;
  /**
   * Where relative privateKeyPath / knownHostsFile are resolved from. By default, the directory
   * Pulumi runs the providers in: the project directory. Left unset, nothing in the state names a
   * directory, so the stack can be refreshed and destroyed from another clone; a value given here
   * is saved and must hold the files wherever the stack is run.
   */
  baseDir?: pulumi.Input<string>;
}

/** Per host, the state the tool applied (or, after refresh, observed). */
export interface AppliedHostState {
  role: HostRole;
  primaryAddress: string;
  addresses: string[];
  sysctls: Record<string, string>;
  services: Record<string, ServiceFields>;
  destinations: Record<string, DestinationFields>;
}

/** A virtual service as the cluster serves it. */
export interface VirtualServiceSummary {
  name: string;
  /** The director that serves it, or the first of its failover group (all in `directors`). */
  director: string;
  directors: string[];
  vip: string;
  protocol: "tcp" | "udp" | "fwmark";
  port: number | null;
  fwmark: number | null;
  scheduler: string;
  realServers: { name: string; weight: number }[];
}

interface SplitSpec {
  cluster: ClusterInput;
  connections: pulumi.Output<ClusterConnections>;
}

/** The host names in a list of the spec as written (a group made on its own has no parsed spec). */
function names(list: unknown, path: string, parent: pulumi.Resource): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new pulumi.ResourceError(`cluster.${path}: must be a list`, parent);
  return list.map((item: unknown, i) => {
    const name = (item as { name?: unknown } | null)?.name;
    // Names become resource names; the full rule is checked by the providers' check.
    if (typeof name !== "string" || name === "") throw new pulumi.ResourceError(`cluster.${path}[${i}].name: is required (it names the resource)`, parent);
    return name;
  });
}

export interface RealServerGroupArgs {
  /** The spec without connection blocks (see splitConnections). */
  cluster: ClusterInput;
  connections: pulumi.Input<ClusterConnections>;
  baseDir?: pulumi.Input<string>;
  /** The releases wait for these (the directors), which may be created after this group. */
  releaseAfter?: pulumi.Input<pulumi.Resource[]>;
}

/** Every real server: a RealServer (prepare) and a RealServerRelease (release) per host. */
export class RealServerGroup extends pulumi.ComponentResource {
  readonly realServers: Record<string, RealServer> = {};
  readonly releases: Record<string, RealServerRelease> = {};
  /** Per real server, the VIPs (`lo/<vip>/<prefix>`) it holds. */
  readonly addresses: pulumi.Output<Record<string, string[]>>;

  constructor(name: string, args: RealServerGroupArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("lvsdr:index:RealServerGroup", name, {}, opts);
    for (const host of names(args.cluster.realServers, "realServers", this)) {
      const common = { cluster: args.cluster, connections: args.connections, host, ...(args.baseDir !== undefined ? { baseDir: args.baseDir } : {}) };
      const rs = new RealServer(host, common, { parent: this });
      this.realServers[host] = rs;
      this.releases[host] = new RealServerRelease(`${host}-release`, common, {
        parent: this,
        dependsOn: args.releaseAfter ? pulumi.output(args.releaseAfter).apply((r) => [rs, ...r]) : [rs],
      });
    }
    this.addresses = recordOf(this.releases, (r) => r.addresses);
    this.registerOutputs({ addresses: this.addresses });
  }
}

export interface LvsDirectorArgs {
  cluster: ClusterInput;
  connections: pulumi.Input<ClusterConnections>;
  baseDir?: pulumi.Input<string>;
  /** The director's name in `cluster.directors`. */
  director: string;
}

/** One director: DIP checks, VIPs on its NIC, IPVS DR services and their real servers. */
export class LvsDirector extends pulumi.ComponentResource {
  readonly director: Director;
  readonly services: pulumi.Output<Record<string, ServiceFields>>;
  readonly destinations: pulumi.Output<Record<string, DestinationFields>>;
  readonly addresses: pulumi.Output<string[]>;
  /** keepalived running and enabled, when its services have health checks or it is in a failover group. */
  readonly keepalived: pulumi.Output<{ running: boolean; enabled: boolean } | null>;

  constructor(name: string, args: LvsDirectorArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("lvsdr:index:LvsDirector", name, {}, opts);
    // Pulumi does not pass a component's dependsOn to its children: the director itself must wait.
    const after = opts.dependsOn !== undefined ? { dependsOn: opts.dependsOn } : {};
    this.director = new Director(
      args.director,
      { cluster: args.cluster, connections: args.connections, host: args.director, ...(args.baseDir !== undefined ? { baseDir: args.baseDir } : {}) },
      { parent: this, ...after },
    );
    this.services = this.director.services;
    this.destinations = this.director.destinations;
    this.addresses = this.director.addresses;
    this.keepalived = this.director.keepalived;
    this.registerOutputs({ services: this.services, destinations: this.destinations, addresses: this.addresses, keepalived: this.keepalived });
  }
}

/** A whole LVS-DR cluster from one spec. */
export class LvsDrCluster extends pulumi.ComponentResource {
  readonly realServers: RealServerGroup;
  readonly directors: Record<string, LvsDirector> = {};
  /** Per host (directors and real servers), the applied state. */
  readonly hosts: pulumi.Output<Record<string, AppliedHostState>>;
  /** Every VIP, sorted. */
  readonly vips: pulumi.Output<string[]>;
  readonly virtualServices: pulumi.Output<VirtualServiceSummary[]>;

  constructor(name: string, args: LvsDrClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("lvsdr:index:LvsDrCluster", name, {}, opts);
    // Parsed once here, for the names and the summaries; the providers check the spec per host.
    const { input: spec, parsed } = plainSpec(args.cluster, this);
    const { cluster, connections } = splitSpec(spec);
    const baseDir = args.baseDir;

    // The releases need the directors, which need the real servers: hand the group a promise of them.
    let directorsCreated: (d: pulumi.Resource[]) => void = () => undefined;
    const releaseAfter = new Promise<pulumi.Resource[]>((resolve) => (directorsCreated = resolve));
    this.realServers = new RealServerGroup(`${name}-real-servers`, { cluster, connections, ...(baseDir !== undefined ? { baseDir } : {}), releaseAfter }, { parent: this });
    const realServers = Object.values(this.realServers.realServers);
    for (const host of parsed.directors.map((d) => d.name)) {
      this.directors[host] = new LvsDirector(
        host,
        { cluster, connections, ...(baseDir !== undefined ? { baseDir } : {}), director: host },
        { parent: this, dependsOn: realServers },
      );
    }
    directorsCreated(Object.values(this.directors).map((d) => d.director));

    const hostResources: Record<string, RealServer | Director> = { ...this.realServers.realServers };
    for (const [host, d] of Object.entries(this.directors)) hostResources[host] = d.director;
    this.hosts = recordOf(hostResources, (r) =>
      pulumi.all([r.role, r.primaryAddress, r.addresses, r.sysctls, r.services, r.destinations]).apply(([role, primaryAddress, addresses, sysctls, services, destinations]) => ({
        role,
        primaryAddress,
        addresses,
        sysctls,
        services,
        destinations,
      })),
    );
    // Known from the spec, but reported once the directors that serve them are applied.
    const applied = pulumi.all(Object.values(this.directors).map((d) => d.director.id));
    this.vips = applied.apply(() => [...new Set(parsed.virtualServices.map((s) => s.vip))].sort());
    this.virtualServices = applied.apply(() => summaries(parsed));
    this.registerOutputs({ hosts: this.hosts, vips: this.vips, virtualServices: this.virtualServices });
  }
}

function plainSpec(input: unknown, parent: pulumi.Resource): { input: ClusterInput; parsed: Cluster } {
  // JavaScript callers can pass anything; an Output would hide the host names the graph needs.
  if (pulumi.Output.isInstance(input) || input instanceof Promise) {
    throw new pulumi.ResourceError("cluster: must be a plain object when the program runs (host names name the resources); read it with config.requireObject", parent);
  }
  if (input === null || typeof input !== "object") throw new pulumi.ResourceError("cluster: must be an object (the cluster spec)", parent);
  // Every problem at once, before any resource exists (the providers' check says it again per host).
  const parsed = parseCluster(input);
  if (!parsed.ok) throw new pulumi.ResourceError(`cluster is not a valid cluster spec:\n${issueLines(parsed.issues)}`, parent, true);
  return { input: input as ClusterInput, parsed: parsed.cluster };
}

function splitSpec(spec: ClusterInput): SplitSpec {
  const { cluster, connections } = splitConnections(spec);
  return { cluster, connections: pulumi.secret(connections) };
}

function recordOf<R, T>(resources: Record<string, R>, pick: (r: R) => pulumi.Input<T>): pulumi.Output<Record<string, T>> {
  const keys = Object.keys(resources);
  return pulumi.all(keys.map((k) => pick(resources[k]!))).apply((values) => Object.fromEntries(keys.map((k, i) => [k, values[i] as T])));
}

/** From the parsed spec and the model, so every default is the one the hosts get. */
function summaries(cluster: Cluster): VirtualServiceSummary[] {
  return cluster.virtualServices.map((s) => {
    const state = virtualServiceState(cluster, s);
    const directors = serviceDirectors(cluster, s);
    return {
      name: s.name,
      director: directors[0] ?? "",
      directors,
      vip: s.vip,
      protocol: state.protocol,
      port: state.protocol === "fwmark" ? null : state.port,
      fwmark: state.protocol === "fwmark" ? state.fwmark : null,
      scheduler: state.scheduler,
      realServers: s.realServers.map((d) => ({ name: d.name, weight: d.weight })),
    };
  });
}
