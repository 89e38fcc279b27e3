/**
 * The words of zod's own issues, as a person reading a spec needs them: "is required" rather
 * than "expected string, received undefined", and never the word `undefined`. Messages a schema
 * or rule gives itself take precedence over these.
 */
import type { z } from "zod";

type RawIssue = Parameters<z.core.$ZodErrorMap>[0];

const articles: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "a mapping of keys to values",
  array: "a list",
  null: "null",
  bigint: "a whole number",
};

function kindOf(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "a list";
  if (typeof input === "number") return Number.isInteger(input) ? "a number" : "a fraction";
  if (typeof input === "object") return "a mapping";
  return articles[typeof input] ?? typeof input;
}

function shown(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

export const specErrorMap: z.core.$ZodErrorMap = (issue: RawIssue) => {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "is required";
      return `must be ${articles[issue.expected] ?? issue.expected}, not ${kindOf(issue.input)}`;
    case "invalid_value":
      return issue.values.length === 1 ? `must be ${shown(issue.values[0])}` : `must be one of ${issue.values.map(shown).join(", ")}`;
    case "too_small": {
      const n = issue.minimum;
      if (issue.origin === "array") return `must have at least ${n} item${Number(n) === 1 ? "" : "s"}`;
      if (issue.origin === "string") return Number(n) === 1 ? "must not be empty" : `must be at least ${n} characters long`;
      return `must be at least ${n}`;
    }
    case "too_big": {
      const n = issue.maximum;
      if (issue.origin === "array") return `must have at most ${n} item${Number(n) === 1 ? "" : "s"}`;
      if (issue.origin === "string") return `must be at most ${n} characters long`;
      return `must be at most ${n}`;
    }
    case "not_multiple_of":
      return `must be a multiple of ${issue.divisor}`;
    case "invalid_union":
      return unionMessage(issue.errors) ?? "matches none of the forms this field takes (see the spec reference)";
    case "invalid_format":
      return `must be a valid ${issue.format}`;
    default:
      return undefined;
  }
};

/** A union of literals or of types says which: "must be one of 0, 1, 2", "must be a string or a number". */
function unionMessage(branches: readonly (readonly z.core.$ZodIssue[])[]): string | undefined {
  const values: unknown[] = [];
  const types: string[] = [];
  for (const branch of branches) {
    const own = branch.filter((i) => i.path.length === 0);
    if (own.length !== branch.length || own.length === 0) return undefined;
    for (const i of own) {
      if (i.code === "invalid_value") values.push(...i.values);
      else if (i.code === "invalid_type") types.push(articles[i.expected] ?? i.expected);
      else return undefined;
    }
  }
  if (types.length === 0) return `must be one of ${values.map(shown).join(", ")}`;
  if (values.length === 0) return `must be ${[...new Set(types)].join(" or ")}`;
  return undefined;
}
