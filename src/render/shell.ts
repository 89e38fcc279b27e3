/**
 * Quoting and the guards that make sure only validated values reach a shell. Every value the
 * tool places in a command goes through `quote`, and through an `assert*` check of its shape
 * first: values can come back from a host (ownership records) as well as from the spec.
 */
import { parseAddress } from "../config/ip";

export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RenderError";
  }
}

/** POSIX single-quote quoting: safe for any string. */
export function quote(value: string | number): string {
  const text = String(value);
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function assertAddress(value: string): string {
  const parsed = parseAddress(value);
  if (!parsed || parsed.text !== value) throw new RenderError(`refusing to render "${value}": not a canonical IP address`);
  return value;
}

export function assertInterface(value: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(value) || value === "." || value === "..") {
    throw new RenderError(`refusing to render "${value}": not a Linux interface name`);
  }
  return value;
}

export function assertUint(value: number, max = 4294967295): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RenderError(`refusing to render ${value}: not an integer in 0..${max}`);
  return value;
}

export function assertWord(value: string): string {
  if (!/^[a-z0-9-]{1,32}$/.test(value)) throw new RenderError(`refusing to render "${value}": not a scheduler or flag name`);
  return value;
}

/** A /proc/sys key below net/ (slash form), no "..". */
export function assertSysctlKey(key: string): string {
  if (!/^net\/[A-Za-z0-9_./-]+$/.test(key) || key.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new RenderError(`refusing to render sysctl "${key}": not a net/ key`);
  }
  return key;
}

export function assertSysctlValue(value: string): string {
  if (!/^-?[0-9]{1,10}$/.test(value)) throw new RenderError(`refusing to render sysctl value "${value}": not an integer`);
  return value;
}

/** Only absolute paths under the directories the tool owns. */
export function assertManagedPath(path: string): string {
  if (!/^\/(?:etc|var\/lib|run)\/[A-Za-z0-9_./-]+$/.test(path) || path.split("/").includes("..")) {
    throw new RenderError(`refusing to render path "${path}": not a path the tool manages`);
  }
  return path;
}

/** A here-document whose body can never end it early. */
export function heredoc(command: string, body: string, tag = "LVSDR"): string {
  let delimiter = `${tag}_EOF`;
  let n = 0;
  while (body.split("\n").includes(delimiter)) delimiter = `${tag}_EOF_${++n}`;
  const text = body.endsWith("\n") ? body : `${body}\n`;
  return `${command} <<'${delimiter}'\n${text}${delimiter}`;
}
