/**
 * The protocol between the scripts the tool sends to hosts (render/observe-script.ts, render/apply-script.ts) and the code that
 * reads their output (parse/observe.ts, ops/engine.ts): the marker that starts every line meant
 * for the tool, the exit codes that mean a refusal rather than a failure, and what a held script
 * reads on stdin. Both sides take them from here.
 */

/** Starts every line a script prints for the tool (`@@lvsdr step 3/12 ...`, `@@lvsdr end`). */
export const marker = "@@lvsdr";

/** Exit codes of the apply script that mean it refused, changing nothing on the host. */
export const refusalCodes = {
  /** Another lvs-dr run holds the host's lock. */
  lockHeld: 75,
  /** The director's IPVS table changed since it was observed. */
  ipvsChanged: 76,
  /** `keepalived -t` refused the configuration about to be written. */
  keepalivedConfigRefused: 77,
  /** The host's addresses, kernel settings or the tool's files changed since the plan was made. */
  hostChanged: 78,
  /** The lock's directory or file is not root's alone: another user could hold the lock. */
  lockUnsafe: 79,
} as const;

/** What a held apply script reads on stdin: `go` to make its changes, anything else to make none. */
export const holdAnswers = { go: "go\n", stop: "stop\n" } as const;

/** A step line: `@@lvsdr step <index>/<total> <description>`. */
export function parseStepLine(line: string): { index: number; total: number; description: string } | null {
  const m = /^@@lvsdr step (\d+)\/(\d+) (.*)$/.exec(line);
  return m ? { index: Number(m[1]), total: Number(m[2]), description: m[3] ?? "" } : null;
}
