/**
 * What the dynamic providers do, loaded by them at run time (see providers.ts for why they
 * `require` this file by path instead of importing it). Each operation works on one host through
 * the engine, restricted to that host and to the resource's wave.
 */
import type { Wave } from "../model/steps";
import { ClusterRun } from "../ops/engine";
import { SshTransport } from "../transport/ssh";
import {
  checkInputs,
  desiredOf,
  diffInputs,
  fieldsFromDesired,
  fieldsFromObserved,
  type CheckFailure,
  type DiffResult,
  type HostResourceInputs,
  type HostResourceKind,
  type HostResourceOutputs,
  type ReleaseResourceOutputs,
} from "./state";

export type ResourceOutputs = HostResourceOutputs | ReleaseResourceOutputs;

const waveOf: Record<HostResourceKind, Wave> = {
  "real-server": "prepare-real-servers",
  director: "directors",
  "real-server-release": "release-real-servers",
};

/** The inputs only, so outputs never grow stale copies of old state fields. */
function inputsOf(props: HostResourceInputs): HostResourceInputs {
  return { cluster: props.cluster, connections: props.connections, host: props.host, ...(props.baseDir !== undefined ? { baseDir: props.baseDir } : {}) };
}

/** The spec parsed and its desired state computed once per operation, then handed on. */
type HostContext = ReturnType<typeof desiredOf>;

async function withRun<T>(inputs: HostResourceInputs, { desired }: HostContext, fn: (run: ClusterRun) => Promise<T>): Promise<T> {
  const run = new ClusterRun(desired, {
    transport: new SshTransport(),
    hosts: [inputs.host],
    connectOptions: {
      ...(inputs.baseDir !== undefined ? { baseDir: inputs.baseDir } : {}),
      // The provider's stderr is shown by pulumi (a dynamic provider has no engine to log to).
      onTrust: (host, fp, recordedIn) => console.warn(`warning: lvs-dr: ${host}: trusted on first use: host key ${fp}, recorded in ${recordedIn}`),
      onWarning: (host, message) => console.warn(`warning: lvs-dr: ${host}: ${message}`),
    },
  });
  try {
    return await fn(run);
  } finally {
    await run.close();
  }
}

function outputsFor(kind: HostResourceKind, inputs: HostResourceInputs, { host }: HostContext): ResourceOutputs {
  const fields = fieldsFromDesired(host);
  if (kind === "real-server-release") return { ...inputsOf(inputs), addresses: fields.addresses };
  return { ...inputsOf(inputs), ...fields };
}

export function resourceId(inputs: HostResourceInputs, context: HostContext = desiredOf(inputs)): string {
  return `${context.cluster.name}/${inputs.host}`;
}

export async function check(kind: HostResourceKind, _olds: unknown, news: HostResourceInputs): Promise<{ inputs: HostResourceInputs; failures: CheckFailure[] }> {
  return checkInputs(kind, news);
}

export async function diff(kind: HostResourceKind, _id: string, olds: Partial<HostResourceOutputs>, news: HostResourceInputs): Promise<DiffResult> {
  return diffInputs(kind, olds, news);
}

/** Runs this resource's wave on its host; a real server's is ARP suppression, then the VIPs, then files. */
export async function create(kind: HostResourceKind, inputs: HostResourceInputs): Promise<{ id: string; outs: ResourceOutputs }> {
  const context = desiredOf(inputs);
  await withRun(inputs, context, (run) => run.apply({ waves: [waveOf[kind]] }));
  return { id: resourceId(inputs, context), outs: outputsFor(kind, inputs, context) };
}

export async function update(kind: HostResourceKind, _id: string, _olds: unknown, news: HostResourceInputs): Promise<{ outs: ResourceOutputs }> {
  const context = desiredOf(news);
  await withRun(news, context, (run) => run.apply({ waves: [waveOf[kind]] }));
  return { outs: outputsFor(kind, news, context) };
}

/**
 * Observes the host and reports the same fields as create, so refresh shows the drift field
 * by field. A release resource holds no state of its own (the real server resource reports
 * the host), so it reads back as recorded.
 */
export async function read(kind: HostResourceKind, id: string, props: ResourceOutputs): Promise<{ id: string; props: ResourceOutputs }> {
  if (kind === "real-server-release") return { id, props };
  const inputs = inputsOf(props);
  const context = desiredOf(inputs);
  const observed = await withRun(inputs, context, (run) => run.observe());
  const seen = observed.get(inputs.host);
  if (!seen) throw new Error(`${inputs.host}: not observed`);
  return { id, props: { ...inputs, ...fieldsFromObserved(context.host, seen) } };
}

/** A director lets go of its IPVS entries and VIPs; a real server is withdrawn from entirely; a release is a no-op. */
export async function remove(kind: HostResourceKind, _id: string, props: ResourceOutputs): Promise<void> {
  if (kind === "real-server-release") return;
  const inputs = inputsOf(props);
  await withRun(inputs, desiredOf(inputs), (run) => run.apply({ destroy: true }));
}
