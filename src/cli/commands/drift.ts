/** `lvsdr drift`: observe every host and report what differs from the spec; exit 0 clean, 2 drift, 1 error. */
import { Command } from "commander";
import { driftJson, formatDrift } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { loadSpec, openRun, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";

export function driftCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("drift"))
    .description("Observe every host and report drift from the spec (exit 0 clean, 2 drift, 1 error)")
    .option("--json", "print { clean, hosts: [{ host, role, clean, items }] }")
    .addHelpText("after", "\nExamples:\n  lvsdr drift --stack prod\n  lvsdr drift --stack prod --json || alert 'lvs-dr drift'   # from cron or CI\n")
    .action(async (opts: RunCommandOptions & { json?: boolean }) => {
      try {
        const run = openRun(loadSpec(opts), opts, io);
        try {
          const drift = await run.drift();
          io.out(opts.json ? JSON.stringify(driftJson(drift), null, 2) : formatDrift(drift));
          setExit(drift.every((d) => d.clean) ? exitCodes.ok : exitCodes.drift);
        } finally {
          await run.close();
        }
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json)));
      }
    });
}
