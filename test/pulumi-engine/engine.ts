/**
 * A test-only stand-in for the Pulumi engine (the Go `pulumi` CLI cannot be installed here).
 *
 * It runs a stack the way `pulumi preview | up | refresh | destroy` does, with the two real
 * Node.js halves that ship in @pulumi/pulumi, resolved from the project directory:
 *   - the language entry point `@pulumi/pulumi/cmd/run` runs the program, which registers its
 *     resources with this engine's ResourceMonitor over gRPC;
 *   - the dynamic-provider host `@pulumi/pulumi/cmd/dynamic-provider` deserializes the providers
 *     saved in the inputs (and in the state) and serves Check/Diff/Create/Read/Update/Delete.
 * Config comes from `<stackConfigDir>/Pulumi.<stack>.yaml`, `secure:` values decrypted with the
 * passphrase secrets provider; the state is a checkpoint file (state.ts) whose secrets are
 * encrypted the same way.
 *
 * The engine behaviour copied from Pulumi (see ../shared/reference/pulumi-runtime-facts.md):
 * RegisterResource is answered when its step is done, so the SDK orders dependents itself;
 * secrets are unwrapped for the provider (it does not accept them) and outputs are made secret
 * again where the input was secret or `additionalSecretOutputs` says so; DIFF_UNKNOWN falls back
 * to comparing inputs; preview calls Check and Diff only, with checked inputs standing in for
 * outputs and unknowns for the rest; resources the program no longer registers are deleted after
 * it exits, dependents first; on a failed step the error is reported, pending calls are answered
 * UNAVAILABLE and the program is interrupted.
 *
 * Not implemented: provider resources other than the default dynamic one (any other custom
 * resource fails), Invoke/Call/ReadResource, aliases, imports, protect, ignoreChanges,
 * replaceOnChanges, retainOnDelete, transforms and hooks, targets, stack references, policy packs,
 * plugins, the service backend, pending operations (a killed run loses what it was doing), and
 * resource references and output values on the wire (the SDK is told these features are off).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { parse as parseYaml } from "yaml";
import { newEncryptionSalt, passphraseCrypter, type Crypter } from "./secrets";
import { isWireSecret, readState, statePath, unwrapSecrets, wireSecret, writeState, type Props, type ResourceState } from "./state";

import * as enginerpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engineproto from "@pulumi/pulumi/proto/engine_pb";
import * as provrpc from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";
import * as resrpc from "@pulumi/pulumi/proto/resource_grpc_pb";
import * as resproto from "@pulumi/pulumi/proto/resource_pb";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";

export type Operation = "preview" | "up" | "refresh" | "destroy";
export type StepOp = "create" | "update" | "same" | "replace" | "delete" | "refresh";

/** One property that differs, `path` written as Pulumi's property paths are. */
export interface PropertyChange {
  path: string;
  old: unknown;
  new: unknown;
}

export interface Step {
  op: StepOp;
  urn: string;
  type: string;
  /** The resource's name (the last part of its URN): for our resources, the host. */
  name: string;
  /** Output properties that changed (refresh) or differ from the state (update). */
  changes: PropertyChange[];
  error?: string;
}

export interface RunOptions {
  /** The directory holding Pulumi.yaml. */
  projectDir: string;
  stack: string;
  /** Where `.pulumi/stacks/<project>/<stack>.json` lives; default: the project directory. */
  backendDir?: string;
  passphrase: string;
  /** Added to the environment of the program and the provider host. */
  env?: NodeJS.ProcessEnv;
  parallel?: number;
  /** The Node.js binary that runs the program and the provider host; default: this one. */
  node?: string;
  /** Called with each line the engine would print (steps, diagnostics). */
  onLine?: (line: string) => void;
}

export interface Timings {
  totalMs: number;
  /** Process start of `cmd/run` until its first RegisterResource. */
  programStartMs?: number;
  /** Process start of `cmd/run` until it exited. */
  programMs?: number;
  /** Process start of `cmd/dynamic-provider` until it printed its port. */
  providerStartMs?: number;
  /** Wall time inside provider calls, by method, summed over resources. */
  providerCallsMs: Record<string, number>;
  /** Provider calls, by method. */
  providerCalls: Record<string, number>;
}

export interface RunResult {
  ok: boolean;
  operation: Operation;
  steps: Step[];
  /** Errors as the engine reports them: `<urn or "program">: <message>`. */
  errors: string[];
  /** Every message logged by the program and the providers. */
  diagnostics: string[];
  /** The stack's outputs (preview and up). */
  outputs: Props;
  /** URNs the program registered, components included, in registration order (preview and up). */
  registered: string[];
  timings: Timings;
}

const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const DYNAMIC_TYPE = /^pulumi-nodejs:dynamic\//;

interface Project {
  name: string;
  main: string;
  stackConfigDir: string;
}

function readProject(dir: string): Project {
  const file = join(dir, "Pulumi.yaml");
  if (!existsSync(file)) throw new Error(`no Pulumi.yaml in ${dir}`);
  const doc = parseYaml(readFileSync(file, "utf8")) as { name?: string; main?: string; stackConfigDir?: string };
  if (!doc.name) throw new Error(`${file}: no project name`);
  return { name: doc.name, main: doc.main ?? ".", stackConfigDir: doc.stackConfigDir ?? "." };
}

/** Stack config as the language host hands it over: `ns:config:key` -> string (objects as JSON). */
interface StackConfig {
  values: Record<string, string>;
  secretKeys: string[];
  salt: string | null;
}

function decryptSecure(value: unknown, crypter: () => Crypter, found: { secret: boolean }): unknown {
  if (Array.isArray(value)) return value.map((v) => decryptSecure(v, crypter, found));
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === "secure" && typeof entries[0]![1] === "string") {
      found.secret = true;
      return crypter().decrypt(entries[0]![1]);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, decryptSecure(v, crypter, found)]));
  }
  return value;
}

function readStackConfig(project: Project, projectDir: string, stack: string, crypterFor: (salt: string) => Crypter): StackConfig {
  const file = resolve(projectDir, project.stackConfigDir, `Pulumi.${stack}.yaml`);
  if (!existsSync(file)) return { values: {}, secretKeys: [], salt: null };
  const doc = (parseYaml(readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown>; encryptionsalt?: string };
  const salt = doc.encryptionsalt ?? null;
  const crypter = (): Crypter => {
    if (!salt) throw new Error(`${file}: a secure value but no encryptionsalt`);
    return crypterFor(salt);
  };
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, raw] of Object.entries(doc.config ?? {})) {
    const [ns, name] = key.includes(":") ? [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)] : [project.name, key];
    const found = { secret: false };
    const value = decryptSecure(raw, crypter, found);
    const full = `${ns}:config:${name}`;
    values[full] = typeof value === "string" ? value : JSON.stringify(value);
    if (found.secret) secretKeys.push(full);
  }
  return { values, secretKeys, salt };
}

function toStruct(value: Props): structproto.Struct {
  return structproto.Struct.fromJavaScript(JSON.parse(JSON.stringify(value)) as Record<string, structproto.JavaScriptValue>);
}

function fromStruct(struct: { toJavaScript(): unknown } | undefined): Props {
  return struct ? (struct.toJavaScript() as Props) : {};
}

function nameOf(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Props)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "undefined";
}

/** Every leaf that differs, with paths as `a.b["c/d"]`. */
export function propertyChanges(olds: unknown, news: unknown, path = ""): PropertyChange[] {
  const isMap = (v: unknown): v is Props => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isMap(olds) && isMap(news)) {
    const keys = [...new Set([...Object.keys(olds), ...Object.keys(news)])].sort();
    return keys.flatMap((k) => propertyChanges(olds[k], news[k], /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? (path ? `${path}.${k}` : k) : `${path}[${JSON.stringify(k)}]`));
  }
  return canonical(olds) === canonical(news) ? [] : [{ path, old: olds, new: news }];
}

/** Secret values are never shown, as `pulumi` prints `[secret]`. */
function hideSecrets(changes: PropertyChange[], secretKeys: Set<string>): PropertyChange[] {
  return changes.map((c) => (secretKeys.has(c.path.split(/[.[]/)[0]!) ? { ...c, old: "[secret]", new: "[secret]" } : c));
}

function grpcError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

function unary<T>(client: grpc.Client, method: string, request: unknown): Promise<T> {
  return new Promise((ok, fail) => {
    (client as unknown as Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: T) => void) => void>)[method]!(request, (err, res) => (err ? fail(err) : ok(res)));
  });
}

/** The dynamic-provider host: one process per run, started on first use. */
class ProviderHost {
  private proc: ChildProcess | null = null;
  private client: grpc.Client | null = null;
  private starting: Promise<grpc.Client> | null = null;
  readonly calls: Record<string, number> = {};
  readonly callsMs: Record<string, number> = {};
  startMs?: number;

  constructor(
    private readonly projectDir: string,
    private readonly project: string,
    private readonly engineAddr: string,
    private readonly config: StackConfig,
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: (line: string) => void,
    private readonly node: string,
  ) {}

  private async start(): Promise<grpc.Client> {
    const started = Date.now();
    const entry = require.resolve("@pulumi/pulumi/cmd/dynamic-provider", { paths: [this.projectDir] });
    const proc = spawn(this.node, [entry, this.engineAddr], {
      cwd: this.projectDir,
      env: { ...process.env, ...this.env, PULUMI_NODEJS_PROJECT: this.project },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    createInterface({ input: proc.stderr! }).on("line", (l) => this.log(`provider: ${l}`));
    const lines = createInterface({ input: proc.stdout! });
    const port = await new Promise<string>((ok, fail) => {
      lines.once("line", ok);
      proc.once("exit", (code) => fail(new Error(`the dynamic-provider host exited (${code}) before it printed its port`)));
    });
    lines.on("line", (l) => this.log(`provider: ${l}`));
    const Client = grpc.makeGenericClientConstructor(provrpc.ResourceProviderService, "ResourceProvider");
    const client = new Client(`127.0.0.1:${port.trim()}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 400 * 1024 * 1024 });
    const configure = new provproto.ConfigureRequest();
    const variables = configure.getVariablesMap();
    for (const [k, v] of Object.entries(this.config.values)) variables.set(k.replace(":config:", ":"), v);
    configure.setArgs(toStruct(Object.fromEntries(Object.entries(this.config.values).map(([k, v]) => [k.replace(":config:", ":"), v]))));
    configure.setAcceptsecrets(true);
    await unary(client, "configure", configure);
    this.startMs = Date.now() - started;
    this.client = client;
    return client;
  }

  async call<T>(method: string, request: unknown): Promise<T> {
    this.starting ??= this.start();
    const client = await this.starting;
    const t0 = Date.now();
    try {
      return await unary<T>(client, method, request);
    } finally {
      this.calls[method] = (this.calls[method] ?? 0) + 1;
      this.callsMs[method] = (this.callsMs[method] ?? 0) + Date.now() - t0;
    }
  }

  close(): void {
    this.client?.close();
    this.proc?.kill("SIGTERM");
  }
}

interface ProviderRequestBase {
  setUrn(v: string): void;
  setName(v: string): void;
  setType(v: string): void;
}

function request<T extends ProviderRequestBase>(Ctor: new () => T, r: { urn: string; type: string }): T {
  const req = new Ctor();
  req.setUrn(r.urn);
  req.setName(nameOf(r.urn));
  req.setType(r.type);
  return req;
}

/** Top-level keys whose value is a secret on the wire. */
function secretKeysOf(props: Props): Set<string> {
  return new Set(
    Object.entries(props)
      .filter(([, v]) => isWireSecret(v))
      .map(([k]) => k),
  );
}

function resecret(outputs: Props, secretKeys: Iterable<string>): Props {
  const out = { ...outputs };
  for (const k of secretKeys) if (k in out && out[k] !== undefined) out[k] = wireSecret(out[k]);
  return out;
}

export class StandInEngine {
  private readonly project: Project;
  private readonly crypters = new Map<string, Crypter>();
  private readonly log: (line: string) => void;
  private readonly diagnostics: string[] = [];
  private readonly errors: string[] = [];
  private readonly steps: Step[] = [];

  constructor(private readonly options: RunOptions) {
    this.project = readProject(options.projectDir);
    this.log = (line) => {
      this.diagnostics.push(line);
      options.onLine?.(line);
    };
  }

  private crypterFor = (salt: string): Crypter => {
    let c = this.crypters.get(salt);
    if (!c) {
      c = passphraseCrypter(this.options.passphrase, salt);
      this.crypters.set(salt, c);
    }
    return c;
  };

  private get statePath(): string {
    return statePath(this.options.backendDir ?? this.options.projectDir, this.project.name, this.options.stack);
  }

  private fail(where: string, message: string): void {
    const line = `error: ${where}: ${message}`;
    this.errors.push(line);
    this.log(line);
  }

  private record(step: Step): void {
    this.steps.push(step);
    const sign = { create: "+", update: "~", same: " ", replace: "+-", delete: "-", refresh: "~" }[step.op];
    if (step.op !== "same" || step.changes.length) this.log(`${sign} ${step.op} ${step.urn}`);
    for (const c of step.changes) this.log(`    ${c.path}: ${JSON.stringify(c.old)} => ${JSON.stringify(c.new)}`);
  }

  async run(operation: Operation): Promise<RunResult> {
    const started = Date.now();
    const config = readStackConfig(this.project, this.options.projectDir, this.options.stack, this.crypterFor);
    const previous = readState(this.statePath, this.crypterFor);
    // `pulumi stack init` writes a new salt into the stack file; the stand-in keeps it in the state.
    const salt = previous?.salt ?? config.salt ?? newEncryptionSalt(this.options.passphrase);

    const server = new grpc.Server();
    const monitor = new Monitor(this, operation, previous?.resources ?? [], this.options.stack, this.project.name);
    server.addService(resrpc.ResourceMonitorService, monitor.handlers());
    server.addService(enginerpc.EngineService, {
      log: (call: grpc.ServerUnaryCall<{ getSeverity(): number; getMessage(): string; getUrn(): string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const sev = ["debug", "info", "warning", "error"][call.request.getSeverity()] ?? "info";
        if (sev !== "debug") this.log(`${sev}: ${call.request.getUrn() ? `${call.request.getUrn()}: ` : ""}${call.request.getMessage().trimEnd()}`);
        if (sev === "error") this.errors.push(`${call.request.getUrn() || "program"}: ${call.request.getMessage().trim()}`);
        cb(null, new emptyproto.Empty());
      },
      getRootResource: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        const res = new engineproto.GetRootResourceResponse();
        res.setUrn(monitor.rootUrn ?? "");
        cb(null, res);
      },
      setRootResource: (call: grpc.ServerUnaryCall<{ getUrn(): string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        monitor.rootUrn = call.request.getUrn();
        cb(null, new engineproto.SetRootResourceResponse());
      },
    });
    const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))));
    const addr = `127.0.0.1:${port}`;
    const env = { ...this.options.env, PULUMI_CONFIG: JSON.stringify(config.values), PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(config.secretKeys) };
    const provider = new ProviderHost(this.options.projectDir, this.project.name, addr, config, env, this.log, this.options.node ?? process.execPath);
    monitor.provider = provider;

    let outputs: Props = {};
    let resources: ResourceState[] = previous?.resources ?? [];
    try {
      if (operation === "preview" || operation === "up") {
        const program = await this.runProgram(addr, operation === "preview", env, monitor);
        outputs = monitor.stackOutputs;
        if (program.exitCode !== 0 && !this.errors.length) this.fail("program", `exited with ${program.exitCode}`);
        if (operation === "preview") resources = monitor.nextState();
        // After a failure, nothing is deleted: what the run did not reach stays as it was.
        else if (this.errors.length) resources = monitor.nextStateAfterFailure();
        // A delete that fails leaves its resource, and what it holds up, in the state.
        else resources = await this.deleteAll(provider, [...monitor.nextState(), ...monitor.unregistered()], monitor.unregistered());
      } else if (operation === "refresh") {
        resources = await this.refreshAll(provider, resources);
      } else {
        resources = await this.deleteAll(provider, resources, resources);
      }
    } finally {
      provider.close();
      server.forceShutdown();
    }
    if (operation !== "preview") writeState(this.statePath, this.options.stack, { salt, resources }, this.crypterFor(salt));
    return {
      ok: this.errors.length === 0,
      operation,
      steps: this.steps,
      errors: this.errors,
      diagnostics: this.diagnostics,
      outputs,
      registered: monitor.nextState().map((r) => r.urn),
      timings: {
        totalMs: Date.now() - started,
        ...(monitor.programStartMs !== undefined ? { programStartMs: monitor.programStartMs } : {}),
        ...(monitor.programMs !== undefined ? { programMs: monitor.programMs } : {}),
        ...(provider.startMs !== undefined ? { providerStartMs: provider.startMs } : {}),
        providerCalls: provider.calls,
        providerCallsMs: provider.callsMs,
      },
    };
  }

  private async runProgram(addr: string, dryRun: boolean, env: NodeJS.ProcessEnv, monitor: Monitor): Promise<{ exitCode: number | null }> {
    const dir = this.options.projectDir;
    const entry = require.resolve("@pulumi/pulumi/cmd/run", { paths: [dir] });
    const args = [
      entry,
      "--monitor",
      addr,
      "--engine",
      addr,
      "--organization",
      "organization",
      "--project",
      this.project.name,
      "--root-directory",
      dir,
      "--stack",
      this.options.stack,
      "--pwd",
      dir,
    ];
    if (dryRun) args.push("--dry-run");
    args.push("--parallel", String(this.options.parallel ?? 16), this.project.main);
    monitor.programSpawnedAt = Date.now();
    const proc = spawn(this.options.node ?? process.execPath, args, {
      cwd: dir,
      env: { ...process.env, ...env, PULUMI_NODEJS_TYPESCRIPT: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    monitor.program = proc;
    createInterface({ input: proc.stdout! }).on("line", (l) => this.log(l));
    createInterface({ input: proc.stderr! }).on("line", (l) => this.log(l));
    const exitCode = await new Promise<number | null>((ok) => proc.once("exit", (code) => ok(code)));
    monitor.programMs = Date.now() - monitor.programSpawnedAt;
    await monitor.settled();
    return { exitCode };
  }

  /** Deletes `doomed` (a subset of `all`), dependents and children first, independent ones at once. */
  private async deleteAll(provider: ProviderHost, all: ResourceState[], doomed: ResourceState[]): Promise<ResourceState[]> {
    const left = new Map(doomed.map((r) => [r.urn, r]));
    const gone = new Set<ResourceState>();
    const blockedBy = (r: ResourceState): boolean => [...left.values()].some((o) => o !== r && (o.parent === r.urn || o.dependencies.includes(r.urn)));
    while (left.size) {
      const ready = [...left.values()].filter((r) => !blockedBy(r));
      const results = await Promise.all(
        ready.map(async (r) => {
          left.delete(r.urn);
          if (r.custom) {
            try {
              const req = request(provproto.DeleteRequest, r);
              req.setId(r.id ?? "");
              req.setProperties(toStruct(unwrapSecrets(r.outputs) as Props));
              req.setOldInputs(toStruct(unwrapSecrets(r.inputs) as Props));
              await provider.call("delete", req);
            } catch (e) {
              this.fail(r.urn, (e as grpc.ServiceError).details ?? (e as Error).message);
              return false;
            }
          }
          gone.add(r);
          this.record({ op: "delete", urn: r.urn, type: r.type, name: nameOf(r.urn), changes: [] });
          return true;
        }),
      );
      // A failed delete leaves it, and everything it holds up, in the state.
      if (results.includes(false)) break;
    }
    return all.filter((r) => !gone.has(r));
  }

  /** Reads every custom resource from its host; the outputs that changed are the drift. */
  private async refreshAll(provider: ProviderHost, resources: ResourceState[]): Promise<ResourceState[]> {
    const read = await Promise.all(
      resources.map(async (r): Promise<ResourceState | null> => {
        if (!r.custom) return r;
        try {
          const req = request(provproto.ReadRequest, r);
          req.setId(r.id ?? "");
          req.setProperties(toStruct(unwrapSecrets(r.outputs) as Props));
          req.setInputs(toStruct(unwrapSecrets(r.inputs) as Props));
          const res = await provider.call<{ getId(): string; getProperties(): { toJavaScript(): Props } | undefined; getInputs(): { toJavaScript(): Props } | undefined }>(
            "read",
            req,
          );
          if (!res.getId()) {
            this.record({ op: "delete", urn: r.urn, type: r.type, name: nameOf(r.urn), changes: [] });
            return null;
          }
          const secret = new Set([...secretKeysOf(r.outputs), ...(r.additionalSecretOutputs ?? [])]);
          const outputs = resecret(fromStruct(res.getProperties()), secret);
          const inputs = res.getInputs() ? resecret(fromStruct(res.getInputs()), secretKeysOf(r.inputs)) : r.inputs;
          const changes = hideSecrets(propertyChanges(unwrapSecrets(r.outputs), unwrapSecrets(outputs)), secret);
          this.record({ op: changes.length ? "refresh" : "same", urn: r.urn, type: r.type, name: nameOf(r.urn), changes });
          return { ...r, id: res.getId(), inputs, outputs };
        } catch (e) {
          this.fail(r.urn, (e as grpc.ServiceError).details ?? (e as Error).message);
          return r;
        }
      }),
    );
    return read.filter((r): r is ResourceState => r !== null);
  }

  /** Used by the monitor. */
  report(step: Step): void {
    this.record(step);
  }

  reportError(where: string, message: string): void {
    this.fail(where, message);
  }

  get failed(): boolean {
    return this.errors.length > 0;
  }
}

/** The ResourceMonitor the program talks to during preview and up. */
class Monitor {
  provider!: ProviderHost;
  program: ChildProcess | null = null;
  programSpawnedAt = 0;
  programStartMs?: number;
  programMs?: number;
  rootUrn: string | undefined;
  stackOutputs: Props = {};
  private readonly old: Map<string, ResourceState>;
  private readonly registered = new Map<string, ResourceState>();
  private readonly order: string[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private readonly replacedLater: ResourceState[] = [];
  private shuttingDown = false;

  constructor(
    private readonly engine: StandInEngine,
    private readonly operation: Operation,
    private readonly previous: ResourceState[],
    private readonly stack: string,
    private readonly projectName: string,
  ) {
    this.old = new Map(previous.map((r) => [r.urn, r]));
  }

  /** The new state: what was registered, in registration order. */
  nextState(): ResourceState[] {
    return this.order.map((u) => this.registered.get(u)!);
  }

  /** After a failure: what was registered, then what the old state had that this run did not reach. */
  nextStateAfterFailure(): ResourceState[] {
    return [...this.nextState(), ...this.previous.filter((r) => !this.registered.has(r.urn))];
  }

  /** Old resources the program did not register, and old halves of create-before-delete replacements. */
  unregistered(): ResourceState[] {
    return [...this.previous.filter((r) => !this.registered.has(r.urn)), ...this.replacedLater];
  }

  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private urnOf(type: string, name: string, parent: string): string {
    let qualified = type;
    const parentRes = parent ? this.registered.get(parent) : undefined;
    if (parentRes && parentRes.type !== "pulumi:pulumi:Stack") {
      const parentQualified = parent.split("::")[2]!;
      qualified = `${parentQualified}$${type}`;
    }
    return `urn:pulumi:${this.stack}::${this.projectName}::${qualified}::${name}`;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const track = <T>(p: Promise<T>): Promise<T> => {
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
      return p;
    };
    return {
      supportsFeature: (call: grpc.ServerUnaryCall<{ getId(): string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const res = new resproto.SupportsFeatureResponse();
        res.setHassupport(call.request.getId() === "secrets");
        cb(null, res);
      },
      registerResource: (call: grpc.ServerUnaryCall<RegisterRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.programStartMs ??= Date.now() - this.programSpawnedAt;
        if (this.shuttingDown || this.engine.failed) return cb(grpcError(grpc.status.UNAVAILABLE, "resource monitor shut down"));
        void track(
          this.register(call.request).then(
            (res) => cb(null, res),
            (e: Error) => {
              this.engine.reportError(e.name === "StepError" ? (e as StepError).urn : "engine", e.message);
              this.interrupt();
              cb(grpcError(grpc.status.UNAVAILABLE, "resource monitor shut down"));
            },
          ),
        );
      },
      registerResourceOutputs: (
        call: grpc.ServerUnaryCall<{ getUrn(): string; getOutputs(): { toJavaScript(): Props } | undefined }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const urn = call.request.getUrn();
        const outputs = fromStruct(call.request.getOutputs());
        const r = this.registered.get(urn);
        if (r) r.outputs = outputs;
        if (r?.type === "pulumi:pulumi:Stack") this.stackOutputs = outputs;
        cb(null, new emptyproto.Empty());
      },
      signalAndWaitForShutdown: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        void this.settled().then(() => cb(null, new emptyproto.Empty()));
      },
      invoke: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(grpcError(grpc.status.UNIMPLEMENTED, "the stand-in engine does not implement Invoke")),
      readResource: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(grpcError(grpc.status.UNIMPLEMENTED, "the stand-in engine does not implement ReadResource")),
    };
  }

  /** As the engine does on a failed step: no new work, and the program is told to stop. */
  private interrupt(): void {
    this.shuttingDown = true;
    this.program?.kill("SIGINT");
  }

  private async register(req: RegisterRequest): Promise<unknown> {
    const type = req.getType();
    const name = req.getName();
    const parent = req.getParent();
    const urn = this.urnOf(type, name, parent);
    const news = fromStruct(req.getObject());
    const base = { urn, type, custom: req.getCustom(), ...(parent ? { parent } : {}), dependencies: req.getDependenciesList() };
    const res = new resproto.RegisterResourceResponse();
    res.setUrn(urn);
    if (!req.getCustom()) {
      const state: ResourceState = { ...base, inputs: {}, outputs: this.old.get(urn)?.outputs ?? {} };
      this.keep(state);
      res.setObject(toStruct({}));
      return res;
    }
    if (!DYNAMIC_TYPE.test(type)) throw new StepError(urn, `the stand-in engine runs dynamic resources only, not ${type}`);
    const step = await this.step(urn, type, news, req, base);
    this.keep(step.state);
    res.setId(step.state.id ?? "");
    res.setObject(toStruct(step.state.outputs));
    return res;
  }

  private keep(state: ResourceState): void {
    if (!this.registered.has(state.urn)) this.order.push(state.urn);
    this.registered.set(state.urn, state);
  }

  /** Check, then create, or diff and update/replace, or nothing. */
  private async step(urn: string, type: string, wireNews: Props, req: RegisterRequest, base: Omit<ResourceState, "inputs" | "outputs">): Promise<{ state: ResourceState }> {
    const preview = this.operation === "preview";
    const secretInputs = secretKeysOf(wireNews);
    const secretOutputs = new Set([...secretInputs, ...req.getAdditionalsecretoutputsList()]);
    const old = this.old.get(urn);
    const r = { urn, type };

    const check = request(provproto.CheckRequest, r);
    check.setOlds(toStruct(old ? (unwrapSecrets(old.inputs) as Props) : {}));
    check.setNews(toStruct(unwrapSecrets(wireNews) as Props));
    const checked = await this.call<{ getInputs(): { toJavaScript(): Props } | undefined; getFailuresList(): { getProperty(): string; getReason(): string }[] }>(
      urn,
      "check",
      check,
    );
    const failures = checked.getFailuresList();
    if (failures.length) throw new StepError(urn, failures.map((f) => `${f.getProperty() ? `${f.getProperty()}: ` : ""}${f.getReason()}`).join("; "));
    const inputs = fromStruct(checked.getInputs());
    const stateOf = (id: string | undefined, outputs: Props): { state: ResourceState } => ({
      state: {
        ...base,
        ...(id !== undefined ? { id } : {}),
        inputs: resecret(inputs, secretInputs),
        outputs: resecret(outputs, secretOutputs),
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        ...(req.getDeletebeforereplacedefined() ? { deleteBeforeReplace: req.getDeletebeforereplace() } : {}),
      },
    });

    const create = async (): Promise<{ state: ResourceState }> => {
      if (preview) return stateOf(undefined, inputs);
      const c = request(provproto.CreateRequest, r);
      c.setProperties(toStruct(inputs));
      const created = await this.call<{ getId(): string; getProperties(): { toJavaScript(): Props } | undefined }>(urn, "create", c);
      return stateOf(created.getId(), fromStruct(created.getProperties()));
    };

    if (!old) {
      const made = await create();
      this.engine.report({ op: "create", urn, type, name: nameOf(urn), changes: [] });
      return made;
    }

    const oldOutputs = unwrapSecrets(old.outputs) as Props;
    const diff = request(provproto.DiffRequest, r);
    diff.setId(old.id ?? "");
    diff.setOlds(toStruct(oldOutputs));
    diff.setNews(toStruct(inputs));
    diff.setOldInputs(toStruct(unwrapSecrets(old.inputs) as Props));
    const d = await this.call<{ getChanges(): number; getReplacesList(): string[]; getDeletebeforereplace(): boolean }>(urn, "diff", diff);
    const DIFF_NONE = 1;
    const DIFF_SOME = 2;
    const changed = d.getChanges() === DIFF_SOME || (d.getChanges() !== DIFF_NONE && canonical(unwrapSecrets(old.inputs)) !== canonical(inputs));
    if (!changed) {
      this.engine.report({ op: "same", urn, type, name: nameOf(urn), changes: [] });
      return { state: { ...stateOf(old.id, oldOutputs).state, inputs: old.inputs, outputs: old.outputs } };
    }
    // What the inputs change; an update reports what it changed on the host instead.
    const changes = hideSecrets(propertyChanges(oldOutputs, { ...oldOutputs, ...inputs }), secretOutputs);
    if (d.getReplacesList().length) {
      const deleteFirst = d.getDeletebeforereplace() || req.getDeletebeforereplace();
      if (deleteFirst && !preview) {
        const del = request(provproto.DeleteRequest, r);
        del.setId(old.id ?? "");
        del.setProperties(toStruct(oldOutputs));
        del.setOldInputs(toStruct(unwrapSecrets(old.inputs) as Props));
        await this.call(urn, "delete", del);
      } else if (!deleteFirst) {
        this.replacedLater.push(old);
      }
      const made = await create();
      this.engine.report({ op: "replace", urn, type, name: nameOf(urn), changes });
      return made;
    }
    if (preview) {
      this.engine.report({ op: "update", urn, type, name: nameOf(urn), changes });
      const outputs = Object.fromEntries(Object.keys(oldOutputs).map((k) => [k, k in inputs ? inputs[k] : UNKNOWN]));
      return stateOf(old.id, outputs);
    }
    const u = request(provproto.UpdateRequest, r);
    u.setId(old.id ?? "");
    u.setOlds(toStruct(oldOutputs));
    u.setNews(toStruct(inputs));
    u.setOldInputs(toStruct(unwrapSecrets(old.inputs) as Props));
    const updated = await this.call<{ getProperties(): { toJavaScript(): Props } | undefined }>(urn, "update", u);
    const outputs = fromStruct(updated.getProperties());
    this.engine.report({ op: "update", urn, type, name: nameOf(urn), changes: hideSecrets(propertyChanges(oldOutputs, outputs), secretOutputs) });
    return stateOf(old.id, outputs);
  }

  private async call<T>(urn: string, method: string, req: unknown): Promise<T> {
    try {
      return await this.provider.call<T>(method, req);
    } catch (e) {
      throw new StepError(urn, `${method} failed: ${(e as grpc.ServiceError).details ?? (e as Error).message}`);
    }
  }
}

class StepError extends Error {
  override name = "StepError";
  constructor(
    readonly urn: string,
    message: string,
  ) {
    super(message);
  }
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): { toJavaScript(): Props } | undefined;
  getDependenciesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getDeletebeforereplace(): boolean;
  getDeletebeforereplacedefined(): boolean;
}

/** Runs one operation on a stack. */
export function runStack(operation: Operation, options: RunOptions): Promise<RunResult> {
  return new StandInEngine(options).run(operation);
}
