/**
 * The stand-in's state file, shaped like a Pulumi checkpoint (deployment v3) as the local "diy"
 * backend writes it: `<backend>/.pulumi/stacks/<project>/<stack>.json`. Secrets are stored as
 * `{sig, ciphertext}` with the passphrase secrets provider, never as plain text.
 *
 * In memory, values are in their wire form: a secret is `{sig, value}` (see secrets.ts), so the
 * engine can hand them to the program as secrets and unwrap them for the dynamic provider.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { decryptSecretValue, encryptSecretValue, isSecretValue, passphraseSecretsProviders, SECRET_SIG, SIG_KEY, type Crypter } from "./secrets";

export type Props = Record<string, unknown>;

/** One resource as the state records it. */
export interface ResourceState {
  urn: string;
  type: string;
  custom: boolean;
  id?: string;
  parent?: string;
  dependencies: string[];
  inputs: Props;
  outputs: Props;
  additionalSecretOutputs?: string[];
  deleteBeforeReplace?: boolean;
}

export interface StackState {
  /** The stack's encryptionsalt: the secrets provider's state. */
  salt: string;
  /** In dependency order: every resource after its parent and its dependencies. */
  resources: ResourceState[];
}

export function isWireSecret(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG && "value" in value;
}

export function wireSecret(value: unknown): Props {
  return isWireSecret(value) ? (value as Props) : { [SIG_KEY]: SECRET_SIG, value };
}

/** Secrets replaced by their values, as a provider that does not accept secrets sees them. */
export function unwrapSecrets(value: unknown): unknown {
  if (isWireSecret(value)) return unwrapSecrets(value.value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  return value;
}

function toDisk(value: unknown, crypter: Crypter): unknown {
  if (isWireSecret(value)) return encryptSecretValue(crypter, unwrapSecrets(value.value));
  if (Array.isArray(value)) return value.map((v) => toDisk(v, crypter));
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toDisk(v, crypter)]));
  return value;
}

function fromDisk(value: unknown, crypter: Crypter): unknown {
  if (isSecretValue(value)) return wireSecret(decryptSecretValue(crypter, value));
  if (Array.isArray(value)) return value.map((v) => fromDisk(v, crypter));
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromDisk(v, crypter)]));
  return value;
}

export function statePath(backendDir: string, project: string, stack: string): string {
  return join(backendDir, ".pulumi", "stacks", project, `${stack}.json`);
}

/** Null when the stack has never been updated. */
export function readState(path: string, crypterFor: (salt: string) => Crypter): StackState | null {
  if (!existsSync(path)) return null;
  const file = JSON.parse(readFileSync(path, "utf8")) as { checkpoint: { latest?: { secrets_providers?: { state?: { salt?: string } }; resources?: Props[] } } };
  const latest = file.checkpoint.latest;
  const salt = latest?.secrets_providers?.state?.salt;
  if (!latest || !salt) return null;
  const crypter = crypterFor(salt);
  const resources = (latest.resources ?? []).map((r) => ({
    urn: r.urn as string,
    type: r.type as string,
    custom: r.custom as boolean,
    ...(r.id !== undefined ? { id: r.id as string } : {}),
    ...(r.parent !== undefined ? { parent: r.parent as string } : {}),
    dependencies: (r.dependencies as string[] | undefined) ?? [],
    inputs: fromDisk(r.inputs ?? {}, crypter) as Props,
    outputs: fromDisk(r.outputs ?? {}, crypter) as Props,
    ...(r.additionalSecretOutputs !== undefined ? { additionalSecretOutputs: r.additionalSecretOutputs as string[] } : {}),
    ...(r.deleteBeforeReplace !== undefined ? { deleteBeforeReplace: r.deleteBeforeReplace as boolean } : {}),
  }));
  return { salt, resources };
}

/** Written beside, then renamed, so a killed run never leaves half a file. */
export function writeState(path: string, stack: string, state: StackState, crypter: Crypter): void {
  const checkpoint = {
    version: 3,
    checkpoint: {
      stack,
      latest: {
        manifest: { time: new Date().toISOString(), magic: "", version: "lvs-dr test engine stand-in" },
        secrets_providers: passphraseSecretsProviders(state.salt),
        resources: state.resources.map((r) => ({ ...r, inputs: toDisk(r.inputs, crypter), outputs: toDisk(r.outputs, crypter) })),
      },
    },
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, `${JSON.stringify(checkpoint, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
