/**
 * Reading a cluster spec: from a Pulumi stack file (`stacks/Pulumi.<stack>.yaml`, the cluster
 * under one config key, so the Pulumi program and the CLI read the same file) or from a plain
 * YAML/JSON file holding just the cluster. Every problem comes back as `path: message`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { clusterSchema } from "./cluster";
import type { Cluster } from "./schema";

/** The stack config key that holds the cluster: `<project>:cluster`. */
export const projectName = "lvs-dr";
export const clusterConfigKey = `${projectName}:cluster`;

export interface SpecIssue {
  /** Dotted path into the cluster spec, e.g. `virtualServices[0].realServers[1].port`. */
  path: string;
  message: string;
}

export type ParseResult = { ok: true; cluster: Cluster } | { ok: false; issues: SpecIssue[] };

export class SpecError extends Error {
  constructor(
    readonly source: string,
    readonly issues: SpecIssue[],
  ) {
    super(`${source}: invalid cluster spec:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")}`);
    this.name = "SpecError";
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(cluster)" : out;
}

export function zodIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): SpecIssue[] {
  return error.issues.map((issue) => ({ path: formatPath([...prefix, ...issue.path]), message: issue.message }));
}

/** Validates an already-parsed value (from YAML, JSON or Pulumi config). */
export function parseCluster(value: unknown): ParseResult {
  const result = clusterSchema.safeParse(value);
  if (result.success) return { ok: true, cluster: result.data };
  return { ok: false, issues: zodIssues(result.error) };
}

export function stackFilePath(stack: string, stacksDir = "stacks"): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new SpecError(stack, [{ path: "--stack", message: "must be a stack name: letters, digits, '_', '.', '-'" }]);
  return join(stacksDir, `Pulumi.${stack}.yaml`);
}

/** What a user who named a stack that does not exist needs: where it was looked for, and the stacks that do exist. */
function noSuchStack(stack: string, stacksDir: string): string {
  let stacks: string[] = [];
  try {
    stacks = readdirSync(stacksDir).flatMap((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1] ?? []).sort();
  } catch {
    return `no stack "${stack}": the stacks directory ${stacksDir} (${resolve(stacksDir)}) cannot be read`;
  }
  const where = `${join(stacksDir, `Pulumi.${stack}.yaml`)} (${resolve(stacksDir, `Pulumi.${stack}.yaml`)})`;
  return `no stack "${stack}": ${where} does not exist; the stacks in ${stacksDir}: ${stacks.join(", ") || "none"}`;
}

/** Reads a YAML or JSON document; YAML syntax errors carry their line. */
export function readYamlFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new SpecError(path, [{ path: "(file)", message: `cannot be read: ${(err as Error).message}` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new SpecError(
      path,
      doc.errors.map((e) => ({ path: "(file)", message: `YAML syntax error at line ${e.linePos?.[0]?.line ?? "?"}: ${e.message.split("\n")[0]}` })),
    );
  }
  return doc.toJS();
}

/** Picks the cluster out of a Pulumi stack file's `config:` block. */
export function clusterFromStackDocument(doc: unknown, source: string): unknown {
  const config = (doc as { config?: Record<string, unknown> } | null)?.config;
  if (!config || typeof config !== "object") {
    throw new SpecError(source, [{ path: "config", message: `is missing: a stack file holds the cluster under config."${clusterConfigKey}"` }]);
  }
  if (!(clusterConfigKey in config)) {
    throw new SpecError(source, [{ path: `config.${clusterConfigKey}`, message: "is missing: that key holds the cluster spec" }]);
  }
  return config[clusterConfigKey];
}

export type SpecSource = { stack: string; stacksDir?: string } | { file: string };

export function describeSource(source: SpecSource): string {
  return "stack" in source ? stackFilePath(source.stack, source.stacksDir) : source.file;
}

/** Reads the raw cluster value from a stack (config key) or a plain spec file. */
export function readClusterValue(source: SpecSource): { value: unknown; path: string } {
  if ("stack" in source) {
    const path = stackFilePath(source.stack, source.stacksDir);
    if (!existsSync(path)) throw new SpecError(path, [{ path: "--stack", message: noSuchStack(source.stack, source.stacksDir ?? "stacks") }]);
    return { value: clusterFromStackDocument(readYamlFile(path), path), path };
  }
  const doc = readYamlFile(source.file);
  const isStackFile = doc !== null && typeof doc === "object" && "config" in doc;
  return { value: isStackFile ? clusterFromStackDocument(doc, source.file) : doc, path: source.file };
}

/** Reads and validates; throws SpecError listing every problem. */
export function loadCluster(source: SpecSource): Cluster {
  const { value, path } = readClusterValue(source);
  const result = parseCluster(value);
  if (!result.ok) throw new SpecError(path, result.issues);
  return result.cluster;
}
