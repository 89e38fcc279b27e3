/** The single way a command fails: a spec error prints one line per field, anything else its message. */
import { formatIssue, SpecError } from "../config/load";
import { PreflightError } from "../ops/engine";
import { jsonDocument } from "./format";
import { exitCodes, type CliIo } from "./io";

/** `command` names the command in a `--json` document. */
export function handleError(error: unknown, io: CliIo, json: boolean, command = "lvsdr"): number {
  if (error instanceof SpecError) {
    if (json) io.out(jsonDocument(command, false, { source: error.source, issues: error.issues }));
    else {
      for (const issue of error.issues) io.err(issue.path === "(file)" ? `${error.source}: ${issue.message}` : formatIssue(error.source, issue));
    }
    return exitCodes.error;
  }
  if (error instanceof PreflightError) {
    if (json) io.out(jsonDocument(command, false, { preflight: error.problems }));
    else {
      // The same problem on many hosts is one line naming them all.
      const byProblem = new Map<string, string[]>();
      for (const p of error.problems) byProblem.set(`${p.check}: ${p.message}`, [...(byProblem.get(`${p.check}: ${p.message}`) ?? []), p.host]);
      io.err("lvsdr: preflight failed, nothing was changed:");
      for (const [problem, hosts] of byProblem) io.err(`  ${hosts.join(", ")}: ${problem}`);
    }
    return exitCodes.error;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json) io.out(jsonDocument(command, false, { issues: [{ path: "(error)", message }] }));
  else io.err(`lvsdr: ${message}`);
  return exitCodes.error;
}
