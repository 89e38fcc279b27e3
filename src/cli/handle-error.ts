/** The single way a command fails: a spec error prints one line per field, anything else its message. */
import { formatIssue, SpecError } from "../config/load";
import { exitCodes, type CliIo } from "./io";

export function handleError(error: unknown, io: CliIo, json: boolean): number {
  if (error instanceof SpecError) {
    if (json) io.out(JSON.stringify({ ok: false, issues: error.issues }, null, 2));
    else {
      for (const issue of error.issues) io.err(issue.path === "(file)" ? `${error.source}: ${issue.message}` : formatIssue(error.source, issue));
    }
    return exitCodes.error;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json) io.out(JSON.stringify({ ok: false, issues: [{ path: "(error)", message }] }, null, 2));
  else io.err(`lvsdr: ${message}`);
  return exitCodes.error;
}
