/**
 * An unknown key in a spec, said the way a person can act on: the key in the path, and the key
 * probably meant (or the keys allowed there), found from the schema itself.
 */

/** "unknown key; did you mean realServers?", or the keys allowed when none is close. */
export function unknownKeyMessage(key: string, known: string[]): string {
  const near = known
    .map((k) => ({ k, d: k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(k.toLowerCase(), key.toLowerCase()) }))
    .filter((c) => c.d <= Math.max(1, Math.floor(key.length / 4)))
    .sort((a, b) => a.d - b.d)[0];
  if (near) return `unknown key; did you mean ${near.k}?`;
  return known.length ? `unknown key; the keys here are ${known.join(", ")}` : "unknown key";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** Minimal view of zod's schema definitions, enough to find an object's keys by path. */
interface SchemaDef {
  type: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, unknown>;
  element?: unknown;
  valueType?: unknown;
  options?: unknown[];
}

function defOf(schema: unknown): SchemaDef | undefined {
  return (schema as { _zod?: { def?: SchemaDef } } | undefined)?._zod?.def;
}

function unwrapSchema(schema: unknown): unknown {
  for (let def = defOf(schema); def; def = defOf(schema)) {
    if (def.innerType !== undefined) schema = def.innerType;
    else if (def.type === "pipe") schema = def.in;
    else break;
  }
  return schema;
}

/** The keys the schema allows for the object at `path` in `value` (a union: the branch the value takes). */
export function keysAt(schema: unknown, path: readonly PropertyKey[], value: unknown): string[] {
  let current = unwrapSchema(schema);
  let v = value;
  const pick = (s: unknown, val: unknown): unknown => {
    const def = defOf(s);
    if (def?.type !== "union" || !def.options) return s;
    const objects = def.options.map(unwrapSchema).filter((o) => defOf(o)?.type === "object");
    // The branch whose literal fields (a discriminator such as `type`) the value matches.
    const matches = objects.filter((o) =>
      Object.entries(defOf(o)!.shape ?? {}).every(([k, f]) => {
        const lit = defOf(f) as { type: string; values?: unknown[] } | undefined;
        return lit?.type !== "literal" || (lit.values ?? []).includes((val as Record<string, unknown> | null)?.[k]);
      }),
    );
    return matches[0] ?? objects[0] ?? s;
  };
  for (const seg of path) {
    current = pick(current, v);
    const def = defOf(current);
    if (def?.type === "object") current = unwrapSchema(def.shape?.[String(seg)]);
    else if (def?.type === "array") current = unwrapSchema(def.element);
    else if (def?.type === "record") current = unwrapSchema(def.valueType);
    else return [];
    v = (v as Record<PropertyKey, unknown> | null | undefined)?.[seg as string];
  }
  const def = defOf(pick(current, v));
  return def?.type === "object" ? Object.keys(def.shape ?? {}) : [];
}
