import type { Transport } from "../transport/types";

/** Where a command writes, and what it reaches hosts through; tests pass their own to read what a user would see. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** SSH unless given (unit tests give a fake transport). */
  transport?: Transport;
}

/**
 * Text as a terminal should show it: escape sequences and control characters other than newline
 * and tab removed. Step lines, warnings and drift values come from hosts, and a hostile or broken
 * host must not be able to move the cursor, retitle the terminal or hide a line.
 */
export function printable(text: string): string {
  // Control characters are what these patterns are for.
  /* eslint-disable no-control-regex */
  return text.replace(/\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g, "").replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "");
  /* eslint-enable no-control-regex */
}

const line = (text: string): string => printable(text.endsWith("\n") ? text : `${text}\n`);

export const processIo: CliIo = {
  out: (text) => process.stdout.write(line(text)),
  err: (text) => process.stderr.write(line(text)),
};

/**
 * Exit codes every command shares; `drift` uses 2 for "drift found", `plan --detailed-exitcode`
 * for "changes", `apply` and `destroy` 3 for "every host reached converged, some were not reached"
 * and 130 (as a shell reports SIGINT) for "interrupted"; `doctor` 2 for "a check found an error"
 * (warnings alone exit 0).
 */
export const exitCodes = { ok: 0, error: 1, drift: 2, changes: 2, findings: 2, partial: 3, interrupted: 130 } as const;
