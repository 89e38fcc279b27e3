/**
 * The dynamic providers and their resources.
 *
 * Pulumi serializes a dynamic provider's code into the state and runs it in a separate
 * process (`pulumi-dynamic-provider`). Anything a method refers to is captured by value, so
 * the methods refer to nothing but `require` (never captured) and `implModule`, a plain string
 * fixed when this module loads: the absolute path of ./impl beside this file (dist/src/pulumi
 * in a built package). The provider process loads the real code from there, so no module,
 * transport or secret ends up in the serialized text.
 *
 * Dynamic resources always have the type `pulumi-nodejs:dynamic/<module>:<type>`; ours are
 * `pulumi-nodejs:dynamic/lvsdr:RealServer`, `...:Director` and `...:RealServerRelease`.
 */
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type * as Impl from "./impl";
import type { ClusterConnections, DestinationFields, HostResourceInputs, HostResourceKind, ServiceFields } from "./state";
import type { ClusterInput } from "../config/schema";
import type { HostRole } from "../model/host-state";

/** Without an extension: `impl.js` once built, `impl.ts` under ts-jest. */
const implModule: string = join(__dirname, "impl");

type Provider = pulumi.dynamic.ResourceProvider<HostResourceInputs, Impl.ResourceOutputs>;

/**
 * One provider per kind of resource. The methods capture only `kind` and `implModule`, two
 * strings, so what Pulumi serializes stays that small.
 */
function providerFor(kind: HostResourceKind): Provider {
  return {
    check: (olds, news) => (require(implModule) as typeof Impl).check(kind, olds, news),
    diff: (id, olds, news) => (require(implModule) as typeof Impl).diff(kind, id, olds, news),
    create: (inputs) => (require(implModule) as typeof Impl).create(kind, inputs),
    read: (id, props) => (require(implModule) as typeof Impl).read(kind, id, props as Impl.ResourceOutputs),
    update: (id, olds, news) => (require(implModule) as typeof Impl).update(kind, id, olds, news),
    delete: (id, props) => (require(implModule) as typeof Impl).remove(kind, id, props),
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
