/** `lvsdr drift`: observe every host and report what differs from the spec; exit 0 clean, 2 drift, 1 error or a host not reached. */
import { Command } from "commander";
import { driftJson, formatDrift, formatNotReached, jsonDocument } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { loadSpec, openRun, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";

export function driftCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("drift"))
    .description("Observe every host and report drift from the spec (exit 0 clean, 2 drift, 1 error or a host not reached)")
    .option("--json", "print { formatVersion, command, ok, clean, hosts: [{ host, reached, role, clean, items } or { host, reached: false, error }] }")
    .addHelpText("after", "\nExamples:\n  lvsdr drift --stack prod\n  lvsdr drift --stack prod --json || alert 'lvs-dr drift'   # from cron or CI\n")
    .action(async (opts: RunCommandOptions & { json?: boolean }) => {
      try {
        const run = openRun(loadSpec(opts), opts, io);
        try {
          // Every host reached gets its report; one that was not is an error, not drift.
          const { drift, notReached } = await run.driftEach();
          const code = notReached.length ? exitCodes.error : drift.every((d) => d.clean) ? exitCodes.ok : exitCodes.drift;
          if (opts.json) io.out(jsonDocument("drift", code === exitCodes.ok, driftJson(drift, notReached)));
          else {
            io.out(formatDrift(drift));
            for (const line of formatNotReached(notReached)) io.err(line);
          }
          setExit(code);
        } finally {
          await run.close();
        }
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json), "drift"));
      }
    });
}
