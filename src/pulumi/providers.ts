/**
 * The dynamic providers and their resources.
 *
 * Pulumi serializes a dynamic provider's code into the state and runs it in a separate
 * process (`pulumi-dynamic-provider`), started in the project directory. Anything a method refers
 * to is captured by value, so the methods refer to nothing but `require` (never captured),
 * `process` and `loadProviderCode`. That function finds the real code the way the project's own
 * program would: the package `lvs-dr` as seen from the project directory, which is this package
 * itself in its own checkout (its `exports` name it) or `node_modules/lvs-dr` in a project that
 * depends on it. No path fixed at `pulumi up` time is saved, so a stack applied from one checkout
 * refreshes, updates and destroys from another, and no module, transport or secret ends up in the
 * serialized text.
 *
 * Dynamic resources always have the type `pulumi-nodejs:dynamic/<module>:<type>`; ours are
 * `pulumi-nodejs:dynamic/lvsdr:RealServer`, `...:Director` and `...:RealServerRelease`.
 */
import * as pulumi from "@pulumi/pulumi";
import type * as Impl from "./impl";
import type { ClusterConnections, DestinationFields, HostResourceInputs, HostResourceKind, ServiceFields } from "./state";
import type { ClusterInput } from "../config/schema";
import type { HostRole } from "../model/host-state";

/**
 * `lvs-dr/pulumi-provider` (dist/src/pulumi/impl.js), resolved from the working directory. It is
 * serialized with the providers, so it may use only `require` and globals.
 */
function loadProviderCode(): typeof Impl {
  const { createRequire } = require("node:module") as typeof import("node:module");
  const { join } = require("node:path") as typeof import("node:path");
  const fromProject = createRequire(join(process.cwd(), "Pulumi.yaml"));
  let path: string;
  try {
    path = fromProject.resolve("lvs-dr/pulumi-provider");
  } catch (e) {
    throw new Error(
      `lvs-dr: the provider code (package lvs-dr, lvs-dr/pulumi-provider) cannot be found from ${process.cwd()}, where Pulumi runs this stack's providers. ` +
        "Run pulumi in the project that uses lvs-dr, with lvs-dr installed there (npm install lvs-dr, or npm ci and npm run build in a checkout of lvs-dr). " +
        `(${(e as Error).message.split("\n")[0]})`,
    );
  }
  return fromProject(path) as typeof Impl;
}

type Provider = pulumi.dynamic.ResourceProvider<HostResourceInputs, Impl.ResourceOutputs>;

/**
 * One provider per kind of resource. The methods capture only `kind` and `loadProviderCode`, so
 * what Pulumi serializes stays that small.
 */
function providerFor(kind: HostResourceKind): Provider {
  return {
    check: (olds, news) => loadProviderCode().check(kind, olds, news),
    diff: (id, olds, news) => loadProviderCode().diff(kind, id, olds, news),
    create: (inputs) => loadProviderCode().create(kind, inputs),
    read: (id, props) => loadProviderCode().read(kind, id, props as Impl.ResourceOutputs),
    update: (id, olds, news) => loadProviderCode().update(kind, id, olds, news),
    delete: (id, props) => loadProviderCode().remove(kind, id, props),
  };
}

export const realServerProvider: Provider = providerFor("real-server");
export const directorProvider: Provider = providerFor("director");
export const realServerReleaseProvider: Provider = providerFor("real-server-release");

/** Inputs of one host's resource, as a component passes them. */
export interface HostResourceArgs {
  /** The cluster spec without connection blocks. */
  cluster: pulumi.Input<ClusterInput>;
  /** Every connection block of the spec; made secret here whatever the caller passed. */
  connections: pulumi.Input<ClusterConnections>;
  /** The director's or real server's name. */
  host: pulumi.Input<string>;
  baseDir?: pulumi.Input<string>;
}

/** Secret whatever the caller passed, and secret again in the outputs. */
function hostProps(args: HostResourceArgs, outputs: readonly string[]): pulumi.Inputs {
  const props: pulumi.Inputs = { cluster: args.cluster, connections: pulumi.secret(args.connections), host: args.host, baseDir: args.baseDir };
  for (const key of outputs) props[key] = undefined;
  return props;
}

function secretOpts(opts: pulumi.CustomResourceOptions | undefined): pulumi.CustomResourceOptions {
  return pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connections"] });
}

const stateOutputs = ["role", "interface", "primaryAddress", "addresses", "sysctls", "services", "destinations", "files", "keepalived"] as const;

/** Shared output fields of a host resource (see HostStateFields). */
abstract class HostResource extends pulumi.dynamic.Resource {
  declare readonly host: pulumi.Output<string>;
  declare readonly role: pulumi.Output<HostRole>;
  declare readonly interface: pulumi.Output<string>;
  declare readonly primaryAddress: pulumi.Output<string>;
  /** `<interface>/<address>/<prefix>` of every VIP the host holds. */
  declare readonly addresses: pulumi.Output<string[]>;
  declare readonly sysctls: pulumi.Output<Record<string, string>>;
  declare readonly services: pulumi.Output<Record<string, ServiceFields>>;
  declare readonly destinations: pulumi.Output<Record<string, DestinationFields>>;
  declare readonly files: pulumi.Output<Record<string, string>>;
  /** A director in keepalived mode: keepalived running and enabled at boot; null otherwise. */
  declare readonly keepalived: pulumi.Output<{ running: boolean; enabled: boolean } | null>;
}

/** A real server made ready: ARP suppression, then the VIPs on `lo`, then the boot files. Deleting it withdraws the tool from the host. */
export class RealServer extends HostResource {
  constructor(name: string, args: HostResourceArgs, opts?: pulumi.CustomResourceOptions) {
    super(realServerProvider, name, hostProps(args, stateOutputs), secretOpts(opts), "lvsdr", "RealServer");
  }
}

/** A director: IPVS services and destinations, then the VIPs on its NIC. Deleting it lets go of both. */
export class Director extends HostResource {
  constructor(name: string, args: HostResourceArgs, opts?: pulumi.CustomResourceOptions) {
    super(directorProvider, name, hostProps(args, stateOutputs), secretOpts(opts), "lvsdr", "Director");
  }
}

/** Removes from a real server the VIPs no longer served, once the directors have drained and deleted it. */
export class RealServerRelease extends pulumi.dynamic.Resource {
  declare readonly host: pulumi.Output<string>;
  /** The VIPs the real server keeps on `lo`. */
  declare readonly addresses: pulumi.Output<string[]>;
  constructor(name: string, args: HostResourceArgs, opts?: pulumi.CustomResourceOptions) {
    super(realServerReleaseProvider, name, hostProps(args, ["addresses"]), secretOpts(opts), "lvsdr", "RealServerRelease");
  }
}
