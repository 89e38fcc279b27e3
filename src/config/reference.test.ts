/** The spec reference (docs/spec.md) lists every field of the schema, and nothing else. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { clusterSchema } from "./cluster";

type AnySchema = z.core.$ZodType;

function fieldPaths(schema: AnySchema, path = "", out = new Set<string>()): Set<string> {
  const def = schema._zod.def as unknown as { type: string; innerType?: AnySchema; in?: AnySchema; element?: AnySchema; shape?: Record<string, AnySchema>; options?: AnySchema[] };
  switch (def.type) {
    case "optional":
    case "default":
    case "prefault":
    case "nullable":
      return fieldPaths(def.innerType!, path, out);
    case "pipe":
      return fieldPaths(def.in!, path, out);
    case "array":
      return fieldPaths(def.element!, `${path}[]`, out);
    case "union":
      // The kinds of a health check (objects told apart by `type`): every field of every kind, at
      // one path. Other unions (a value or a `secure:` block) are one field.
      if (!def.options!.every((o) => (o._zod.def as { type: string }).type === "object")) {
        out.add(path);
        return out;
      }
      out.add(path);
      for (const option of def.options!) fieldPaths(option, path, out);
      return out;
    case "object":
      if (path) out.add(path);
      for (const [key, value] of Object.entries(def.shape!)) fieldPaths(value, path ? `${path}.${key}` : key, out);
      return out;
    default:
      out.add(path);
      return out;
  }
}

/** Connection fields are documented once, as `connection.<field>`; a bastion takes the same fields. */
function normalize(path: string): string {
  const m = /(?:^connectionDefaults|\.connection)(?:\.proxy)?\.(\w+)$/.exec(path);
  if (m) return `connection.${m[1]}`;
  return path.replace(/\.connection\.proxy$/, "").replace(/^connectionDefaults\.proxy$/, "connection.proxy");
}

describe("docs/spec.md spec reference", () => {
  it("documents every schema field and no field the schema lacks", () => {
    const fromSchema = new Set([...fieldPaths(clusterSchema)].map(normalize).filter((p) => !/^(directors|realServers|virtualServices)\[\]$/.test(p)));
    fromSchema.add("connection.proxy");
    const readme = readFileSync(join(__dirname, "../../docs/spec.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Spec reference"), readme.indexOf("Rules checked before"));
    const documented = new Set([...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!));
    expect([...documented].filter((p) => !fromSchema.has(p))).toEqual([]);
    expect([...fromSchema].filter((p) => !documented.has(p))).toEqual([]);
  });
});
