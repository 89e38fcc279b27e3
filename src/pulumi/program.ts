/**
 * The Pulumi program (Pulumi.yaml `main:`): the cluster from the stack config key
 * `lvs-dr:cluster`, the same value the `lvsdr` CLI reads from stacks/Pulumi.<stack>.yaml,
 * validated with the same schema before any resource is declared.
 */
import "./stack-frames";
import * as pulumi from "@pulumi/pulumi";
import { issueLines, parseCluster, projectName } from "../config/load";
import type { ClusterInput } from "../config/schema";
import { LvsDrCluster } from "./components";

const config = new pulumi.Config(projectName);
const raw = config.requireObject<ClusterInput>("cluster");
const parsed = parseCluster(raw);
if (!parsed.ok) {
  // Thrown before any resource exists, so `pulumi preview` stops here with every problem listed;
  // a RunError is reported by its message alone, without a stack.
  throw new pulumi.RunError(`stack config ${projectName}:cluster is not a valid cluster spec:\n${issueLines(parsed.issues)}`);
}

// The raw value goes in (defaults are filled in by the providers' check). Relative key and
// known_hosts paths resolve where the providers run, the project directory, so no absolute
// path of this checkout is saved in the state.
const cluster = new LvsDrCluster(parsed.cluster.name, { cluster: raw });

export const vips = cluster.vips;
export const virtualServices = cluster.virtualServices;
export const hosts = cluster.hosts;
