/**
 * `lvsdr plan --out FILE` and `lvsdr apply FILE`: a plan saved for review and applied later, as
 * Terraform does. The file holds the plan as plain data (every host's steps, and the state each
 * host was observed in), the spec's digest and where it was read. Applying it refuses if the spec
 * changed since; each host's script refuses if the host did.
 *
 * A plan file is as powerful as the spec it came from, and can hold what the spec holds (a VRRP
 * password in a keepalived configuration): it is written readable by its owner only.
 */
import { createHash } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import type { Cluster } from "../config/schema";
import type { ClusterPlan } from "../plan/cluster-plan";

export const planFileFormat = "lvsdr-plan";
export const planFileVersion = 1;

const planFileSchema = z.object({
  format: z.literal(planFileFormat),
  version: z.literal(planFileVersion),
  createdAt: z.string(),
  spec: z.object({ path: z.string(), resolved: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
  destroy: z.boolean(),
  hosts: z.array(z.string()).nullable(),
  plan: z
    .object({
      cluster: z.string(),
      hosts: z.array(z.object({ host: z.string(), waves: z.array(z.object({ host: z.string() }).passthrough()) }).passthrough()),
      waves: z.array(z.unknown()),
      empty: z.boolean(),
    })
    .passthrough(),
});

export interface PlanFile {
  format: typeof planFileFormat;
  version: typeof planFileVersion;
  createdAt: string;
  /** The spec as the user named it, as resolved then, and its digest. */
  spec: { path: string; resolved: string; sha256: string };
  destroy: boolean;
  /** `--host`, when the plan was made for some hosts only. */
  hosts: string[] | null;
  plan: ClusterPlan;
}

/** The spec's digest: of the validated cluster, so formatting and comments do not count. */
export function specDigest(cluster: Cluster): string {
  return createHash("sha256").update(JSON.stringify(cluster)).digest("hex");
}

export function writePlanFile(path: string, content: Omit<PlanFile, "format" | "version" | "createdAt">): void {
  const file: PlanFile = { format: planFileFormat, version: planFileVersion, createdAt: new Date().toISOString(), ...content };
  const tmp = `${path}.lvsdr-new`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Reads a plan file; a file that is not one says what it is not, naming the path as given and as resolved. */
export function readPlanFile(path: string): PlanFile {
  const where = path === resolve(path) ? path : `${path} (${resolve(path)})`;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`plan file ${where}: ${err instanceof SyntaxError ? `not JSON: ${err.message}` : `cannot be read: ${(err as Error).message}`}`, { cause: err });
  }
  const head = value as { format?: unknown; version?: unknown } | null;
  if (head?.format !== planFileFormat) throw new Error(`plan file ${where}: not an lvsdr plan (made by \`lvsdr plan --out FILE\`)`);
  if (head.version !== planFileVersion)
    throw new Error(`plan file ${where}: format version ${String(head.version)}; this lvsdr reads version ${planFileVersion}: make the plan again`);
  const parsed = planFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`plan file ${where}: ${issue.path.join(".") || "(file)"}: ${issue.message}`);
  }
  return parsed.data as unknown as PlanFile;
}
