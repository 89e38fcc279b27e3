/**
 * Reading a cluster spec: from a Pulumi stack file (`stacks/Pulumi.<stack>.yaml`, the cluster
 * under one config key, so the Pulumi program and the CLI read the same file) or from a plain
 * YAML/JSON file holding just the cluster. Every problem comes back as `path: message`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type YAMLError } from "yaml";
import type { z } from "zod";
import { ClusterAddresses } from "./addresses";
import { clusterSchema } from "./cluster";
import { parseFastYaml } from "./fast-yaml";
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

/** A failure lists at most `maxListedIssues` issues (then one saying how many more); `total` counts every problem found. */
export type ParseResult = { ok: true; cluster: Cluster } | { ok: false; issues: SpecIssue[]; total: number };

/**
 * Issues listed at most; past it, one last entry says how many more there are. A person fixes
 * the first ones and validates again, and a broken 437 KB file once printed 2 million issues
 * (277 MB): the cap bounds the output, and the work of placing each issue in the file.
 */
export const maxListedIssues = 100;

/**
 * Values that aliases may add to a spec, all aliases together, counted as the nodes they repeat.
 * `yaml` itself bounds only how often an anchor is used (100 times, any size: an anchored list of
 * 20,000 entries used 100 times is 2 million values, each checked and each a possible issue).
 * Shared connection settings on every host of a large cluster, or a shared list of destinations
 * in a few dozen services, stay far below 10,000; a spec that needs more is better written out.
 */
export const maxAliasExpansion = 10_000;

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

/**
 * One issue per unknown key, the key in its path, with the nearest known key as a suggestion.
 * Only the first `maxListedIssues` are made (suggestions and places cost); `total` counts all.
 */
function rawIssues(error: z.ZodError, value: unknown): { issues: RawIssue[]; total: number } {
  const issues: RawIssue[] = [];
  let total = 0;
  for (const issue of error.issues) {
    if (issue.code !== "unrecognized_keys") {
      if (total++ < maxListedIssues) issues.push({ segments: issue.path, message: issue.message });
      continue;
    }
    const known = total < maxListedIssues ? keysAt(clusterSchema, issue.path, value) : [];
    for (const key of issue.keys) if (total++ < maxListedIssues) issues.push({ segments: [...issue.path, key], message: unknownKeyMessage(key, known) });
  }
  return { issues, total };
}

/** The last entry of a capped list: how many more issues there are. `where` is its path: "(file)" or "(cluster)". */
function moreIssues(more: number, where: string): SpecIssue {
  return { path: where, message: `${more} more problem${more === 1 ? " is" : "s are"} not listed (the first ${maxListedIssues} are): fix those and validate again` };
}

/** At most `maxListedIssues`, then one entry saying how many more. */
export function capIssues(issues: SpecIssue[], where = "(file)"): SpecIssue[] {
  return issues.length <= maxListedIssues ? issues : [...issues.slice(0, maxListedIssues), moreIssues(issues.length - maxListedIssues, where)];
}

/** Validates an already-parsed value (from YAML, JSON or Pulumi config). */
export function parseCluster(value: unknown): ParseResult {
  const result = parseClusterRaw(value);
  return result.ok ? result : { ok: false, issues: specIssues(result, "(cluster)"), total: result.total };
}

/** Issues as text paths, with the line and column where `locate` finds them, capped. */
function specIssues(raw: { issues: RawIssue[]; total: number }, where: string, locate?: Locate): SpecIssue[] {
  const issues = raw.issues.map((i): SpecIssue => {
    const at = locate?.(i.segments) ?? null;
    return { path: formatPath(i.segments), message: i.message, ...(at ? { line: at.line, column: at.column } : {}) };
  });
  return raw.total > issues.length ? [...issues, moreIssues(raw.total - issues.length, where)] : issues;
}

function parseClusterRaw(value: unknown): { ok: true; cluster: Cluster } | { ok: false; issues: RawIssue[]; total: number } {
  // A cluster validated before, changed and validated again ({ ...cluster, virtualServices }):
  // its parsed addresses are not part of the spec, and are made anew from what it says now.
  if (value !== null && typeof value === "object" && (value as { addresses?: unknown }).addresses instanceof ClusterAddresses) {
    const { addresses: _stale, ...spec } = value as { addresses: unknown };
    value = spec;
  }
  const result = clusterSchema.safeParse(value, { error: specErrorMap });
  if (result.success) return { ok: true, cluster: { ...result.data, addresses: ClusterAddresses.of(result.data) } };
  return { ok: false, ...rawIssues(result.error, value) };
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

/**
 * Reads a YAML or JSON document; every YAML problem carries its line. Large specs are plain YAML,
 * read by the fast reader (`fast-yaml.ts`: `yaml` took 4 s and 500 MB for 5 MB); anything it does
 * not read, which includes every file with a problem in its YAML, is read by `yaml`.
 */
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
  const fast = parseFastYaml(text);
  if (fast) {
    const position = positionsIn(text);
    return { value: fast.value, locate: (segments) => position(fast.offsetOf(segments)) };
  }
  return readWithYaml(path, text);
}

/** Line and column (1-based) of an offset into `text`; the line index is built on first use. */
function positionsIn(text: string): (offset: number) => { line: number; column: number } {
  let starts: number[] | undefined;
  return (offset) => {
    if (!starts) {
      starts = [0];
      for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
    }
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 };
  };
}

/** Deepest nesting read: a spec needs a few levels, and deeper would only cost (paths grow with depth). */
const maxNesting = 100;

/** Tags a spec may carry: those of YAML's core schema, which only say what plain values already are. */
const coreTags = new Set(["str", "int", "float", "bool", "null", "map", "seq"].map((t) => `tag:yaml.org,2002:${t}`));

/** The complete reader: `yaml`, with its warnings, and what it lets through that a spec must not hold, as errors. */
function readWithYaml(path: string, text: string): { value: unknown; locate: Locate } {
  const lineCounter = new LineCounter();
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (docs.length > 1) {
    const second = at(docs[1]!.range[0]);
    throw new SpecError(path, [{ path: "(file)", message: `holds ${docs.length} YAML documents (line ${second.line} starts the second); a spec is one document`, ...second }]);
  }
  const doc = docs[0];
  if (!doc) throw new SpecError(path, [{ path: "(file)", message: "holds no YAML document; a spec is one document holding the cluster" }]);
  const fileIssue = (what: string, e: YAMLError): SpecIssue => {
    const where = at(e.pos[0]);
    return { path: "(file)", message: `${what} at line ${where.line}, column ${where.column}: ${e.message}`, ...where };
  };
  const issues: SpecIssue[] = [
    // A duplicate key is reported by `structureIssues`, with its name and path.
    ...doc.errors.filter((e) => e.code !== "DUPLICATE_KEY").map((e) => fileIssue("YAML syntax error", e)),
    // So is an unknown tag; every other warning is an error in a spec.
    ...doc.warnings.filter((w) => w.code !== "TAG_RESOLVE_FAILED").map((w) => fileIssue("YAML warning (an error in a spec)", w)),
    ...structureIssues(doc, at),
  ];
  if (issues.length > 0) {
    issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
    throw new SpecError(path, capIssues(issues));
  }
  let value: unknown;
  try {
    // `structureIssues` bounds what aliases repeat; `yaml`'s own bound on the same is set so as not to refuse first.
    value = doc.toJS({ maxAliasCount: maxAliasExpansion });
  } catch (err) {
    throw new SpecError(path, [{ path: "(file)", message: `its YAML aliases cannot be expanded: ${(err as Error).message}` }]);
  }
  return { value, locate: locator(doc, lineCounter) };
}

/**
 * What `yaml` accepts (or only logs) but a spec must not hold, each at its path and line:
 * duplicate keys, keys that are lists or maps, tags outside the core schema, aliases to no anchor
 * before them or inside their own anchor, and aliases that together repeat more than
 * `maxAliasExpansion` values. Sizes are counted, never expanded, so a billion laughs costs nothing.
 */
function structureIssues(doc: Document, at: (offset: number) => { line: number; column: number }): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const stack = isMap(doc.contents) && doc.contents.has("config");
  const report = (segments: readonly PropertyKey[], message: string, offset: number | undefined) => {
    // In a stack file, paths inside the cluster are written as every other issue's: from the cluster.
    const inCluster = stack && segments[0] === "config" && segments[1] === clusterConfigKey;
    const where = offset !== undefined ? at(offset) : undefined;
    if (segments.length > 0) issues.push({ path: formatPath(inCluster ? segments.slice(2) : segments), message, ...where });
    // At the top of the file there is no path: the message says where, as a "(file)" issue is printed without its place.
    else issues.push({ path: "(file)", message: where ? `${message} (line ${where.line}, column ${where.column})` : message, ...where });
  };
  /** Anchors seen so far: how many values each stands for; `open` while its own node is read. */
  const anchors = new Map<string, { size: number; open: boolean }>();
  let expanded = 0;
  let tooDeep = false;
  const showTag = (tag: string) => tag.replace(/^tag:yaml\.org,2002:/, "!!");

  /** Walks a node; returns how many values it stands for, an alias counted as what it repeats. */
  const walk = (node: unknown, segments: PropertyKey[]): number => {
    if (node === null || typeof node !== "object") return 0;
    const start = (node as { range?: [number, number, number] }).range?.[0];
    if (segments.length > maxNesting) {
      if (!tooDeep) report([], `values are nested more than ${maxNesting} levels deep; a spec needs a few`, start);
      tooDeep = true;
      return 1;
    }
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (!target) report(segments, `alias *${node.source} refers to no anchor: &${node.source} must be set before the alias`, start);
      else if (target.open) report(segments, `alias *${node.source} is inside its own anchor &${node.source}: a value cannot hold itself`, start);
      else {
        const before = expanded;
        expanded += target.size;
        if (before <= maxAliasExpansion && expanded > maxAliasExpansion) {
          report(segments, `aliases repeat more than ${maxAliasExpansion} values in this file (the limit is reached at *${node.source}); write the values out instead`, start);
        }
        return target.size;
      }
      return 1;
    }
    const { anchor, tag } = node as { anchor?: string; tag?: string };
    if (anchor) anchors.set(anchor, { size: 0, open: true });
    if (tag !== undefined && !coreTags.has(tag)) {
      report(segments, `has the YAML tag ${showTag(tag)}: a spec holds plain values only (text, numbers, booleans, null, lists, maps)`, start);
    }
    let size = 1;
    if (isMap(node)) {
      const seen = new Map<string, number | undefined>();
      for (const pair of node.items) {
        size += walk(pair.key, segments);
        const keyNode = pair.key;
        const keyAt = (keyNode as { range?: [number, number, number] } | null)?.range?.[0];
        let key: string;
        if (isScalar(keyNode)) key = String(keyNode.value);
        else if (isCollection(keyNode)) {
          report(segments, "has a key that is a list or a map: keys are plain text", keyAt);
          key = `(key ${seen.size + 1})`;
        } else key = isAlias(keyNode) ? `*${keyNode.source}` : String(keyNode);
        // As JS keys: `1` and "1" are one key once read, so they are duplicates here too.
        if (seen.has(key)) {
          const first = seen.get(key);
          report([...segments, key], `duplicate key "${key}"${first !== undefined ? ` (first at line ${at(first).line})` : ""}: a key may appear once in a mapping`, keyAt);
        } else seen.set(key, keyAt);
        size += walk(pair.value, [...segments, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => (size += walk(item, [...segments, i])));
    }
    if (anchor) anchors.set(anchor, { size, open: false });
    return size;
  };
  walk(doc.contents, []);
  return issues;
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
  return { path, result: result.ok ? result : { ok: false, issues: specIssues(result, "(file)", locate), total: result.total } };
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
