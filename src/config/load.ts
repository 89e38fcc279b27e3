/**
 * Reading a cluster spec: from a Pulumi stack file (`stacks/Pulumi.<stack>.yaml`, the cluster
 * under one config key, so the Pulumi program and the CLI read the same file) or from a plain
 * YAML/JSON file holding just the cluster. Every problem comes back as `path: message`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LineCounter, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import { ClusterAddresses } from "./addresses";
import { clusterSchema } from "./cluster";
import { specErrorMap } from "./messages";
import { keysAt, unknownKeyMessage } from "./unknown-keys";
import type { Cluster } from "./schema";

/** The stack config key that holds the cluster: `<project>:cluster`. */
export const projectName = "lvs-dr";
export const clusterConfigKey = `${projectName}:cluster`;

export interface SpecIssue {
  /** Dotted path into the cluster spec, e.g. `virtualServices[0].realServers[1].port`. */
  path: string;
  message: string;
  /** Where the file has it (1-based), when the spec came from a file. */
  line?: number;
  column?: number;
}

/** An issue with its path as keys, before it is written as text. */
interface RawIssue {
  segments: PropertyKey[];
  message: string;
}

export type ParseResult = { ok: true; cluster: Cluster } | { ok: false; issues: SpecIssue[] };

/** One indented `path: message` line per issue, for messages that list them. */
export function issueLines(issues: readonly SpecIssue[]): string {
  return issues.map((i) => `  ${i.path}: ${i.message}`).join("\n");
}

export class SpecError extends Error {
  constructor(
    readonly source: string,
    readonly issues: SpecIssue[],
  ) {
    super(`${source}: invalid cluster spec:\n${issueLines(issues)}`);
    this.name = "SpecError";
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    // A key that is not a plain name (an unknown key can be anything) is shown quoted, so the path says where it is.
    else if (typeof part !== "string" || !/^[A-Za-z_$][\w$-]*$/.test(part)) out += `[${JSON.stringify(String(part))}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out === "" ? "(cluster)" : out;
}

/** One issue per unknown key, the key in its path, with the nearest known key as a suggestion. */
function rawIssues(error: z.ZodError, value: unknown): RawIssue[] {
  return error.issues.flatMap((issue): RawIssue[] => {
    if (issue.code !== "unrecognized_keys") return [{ segments: issue.path, message: issue.message }];
    const known = keysAt(clusterSchema, issue.path, value);
    return issue.keys.map((key) => ({ segments: [...issue.path, key], message: unknownKeyMessage(key, known) }));
  });
}

/** Validates an already-parsed value (from YAML, JSON or Pulumi config). */
export function parseCluster(value: unknown): ParseResult {
  const result = parseClusterRaw(value);
  return result.ok ? result : { ok: false, issues: specIssues(result.issues) };
}

/** Issues as text paths, with the line and column where `locate` finds them. */
function specIssues(raw: RawIssue[], locate?: Locate): SpecIssue[] {
  return raw.map((i) => {
    const at = locate?.(i.segments) ?? null;
    return { path: formatPath(i.segments), message: i.message, ...(at ? { line: at.line, column: at.column } : {}) };
  });
}

function parseClusterRaw(value: unknown): { ok: true; cluster: Cluster } | { ok: false; issues: RawIssue[] } {
  const result = clusterSchema.safeParse(value, { error: specErrorMap });
  if (result.success) return { ok: true, cluster: { ...result.data, addresses: ClusterAddresses.of(result.data) } };
  return { ok: false, issues: rawIssues(result.error, value) };
}

export function stackFilePath(stack: string, stacksDir = "stacks"): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new SpecError(stack, [{ path: "--stack", message: "must be a stack name: letters, digits, '_', '.', '-'" }]);
  return join(stacksDir, `Pulumi.${stack}.yaml`);
}

/** What a user who named a stack that does not exist needs: where it was looked for, and the stacks that do exist. */
function noSuchStack(stack: string, stacksDir: string): string {
  let stacks: string[];
  try {
    stacks = readdirSync(stacksDir)
      .flatMap((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1] ?? [])
      .sort();
  } catch {
    return `no stack "${stack}": the stacks directory ${stacksDir} (${resolve(stacksDir)}) cannot be read`;
  }
  const where = `${join(stacksDir, `Pulumi.${stack}.yaml`)} (${resolve(stacksDir, `Pulumi.${stack}.yaml`)})`;
  return `no stack "${stack}": ${where} does not exist; the stacks in ${stacksDir}: ${stacks.join(", ") || "none"}`;
}

/** Line and column (1-based) of a path into a document, or of the nearest part of it that exists. */
export type Locate = (segments: readonly PropertyKey[]) => { line: number; column: number } | null;

/** Reads a YAML or JSON document; YAML syntax errors carry their line. */
function readYamlDocument(path: string): { value: unknown; locate: Locate } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const where = resolve(path) === path ? "" : ` (${resolve(path)})`;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (err as Error).message;
    throw new SpecError(path, [{ path: "(file)", message: `cannot be read${where}: ${why}` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new SpecError(
      path,
      doc.errors.map((e) => ({ path: "(file)", message: `YAML syntax error at line ${e.linePos?.[0]?.line ?? "?"}: ${e.message.split("\n")[0]}` })),
    );
  }
  return { value: doc.toJS(), locate: locator(doc, lineCounter) };
}

function locator(doc: Document, lineCounter: LineCounter): Locate {
  return (segments) => {
    for (let n = segments.length; n >= 0; n--) {
      const node = doc.getIn(segments.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        return { line, column: col };
      }
    }
    return null;
  };
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
export function readClusterValue(source: SpecSource): { value: unknown; path: string; locate: Locate } {
  const path = "stack" in source ? stackFilePath(source.stack, source.stacksDir) : source.file;
  if ("stack" in source && !existsSync(path)) throw new SpecError(path, [{ path: "--stack", message: noSuchStack(source.stack, source.stacksDir ?? "stacks") }]);
  const doc = readYamlDocument(path);
  const isStackFile = "stack" in source || (doc.value !== null && typeof doc.value === "object" && "config" in doc.value);
  if (!isStackFile) return { value: doc.value, path, locate: doc.locate };
  const prefix = ["config", clusterConfigKey];
  return { value: clusterFromStackDocument(doc.value, path), path, locate: (segments) => doc.locate([...prefix, ...segments]) };
}

/** Reads and validates a spec; every issue carries the line and column where the file has it. */
export function checkClusterSource(source: SpecSource): { path: string; result: ParseResult } {
  const { value, path, locate } = readClusterValue(source);
  const result = parseClusterRaw(value);
  return { path, result: result.ok ? result : { ok: false, issues: specIssues(result.issues, locate) } };
}

/** Reads and validates; throws SpecError listing every problem. */
export function loadCluster(source: SpecSource): Cluster {
  const { path, result } = checkClusterSource(source);
  if (!result.ok) throw new SpecError(path, result.issues);
  return result.cluster;
}

/** `file:line:column: path: message`, or `path: message` where the position is not known. */
export function formatIssue(source: string, issue: SpecIssue): string {
  return `${issue.line !== undefined ? `${source}:${issue.line}:${issue.column}: ` : ""}${issue.path}: ${issue.message}`;
}
