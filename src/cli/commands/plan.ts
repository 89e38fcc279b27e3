/** `lvsdr plan`: what apply (or destroy) would do, host by host, without changing anything. */
import { resolve } from "node:path";
import { Command } from "commander";
import { describeSource } from "../../config/load";
import { formatDrift, formatHeldBack, formatNotReached, formatPlan, formatWithheld, jsonDocument, planJson } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { specDigest, writePlanFile } from "../plan-file";
import { loadSpec, openRun, type RunCommandOptions } from "../run";
import { specSource } from "../source";
import { addSourceOptions } from "./options";

export function planCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("plan"))
    .description("Observe every host and show the ordered steps apply would run; changes nothing")
    .option("--destroy", "plan the tool's withdrawal from every host instead")
    .option("--json", "print { formatVersion, command, ok, empty, heldBack, notReached, withheld, waves: [{ wave, hosts: [{ host, steps }] }], drift, preflight }")
    .option("--detailed-exitcode", "exit 0 when there is nothing to do, 2 when there are changes (1 stays an error)")
    .option("--out <file>", "save the plan for `lvsdr apply FILE`, which runs exactly it (readable by its owner only: it can hold the spec's secrets)")
    .addHelpText(
      "after",
      "\nExamples:\n  lvsdr plan --stack staging\n  lvsdr plan --stack prod --json | jq '.waves[].hosts[].host'\n  lvsdr plan --stack prod --detailed-exitcode   # in CI: 0 nothing to do, 2 changes, 1 error\n  lvsdr plan --stack prod --out prod.plan && lvsdr apply prod.plan\n",
    )
    .action(async (opts: RunCommandOptions & { json?: boolean; destroy?: boolean; detailedExitcode?: boolean; out?: string }) => {
      try {
        const cluster = loadSpec(opts);
        const run = openRun(cluster, opts, io);
        try {
          const { plan, problems } = await run.plan({ destroy: Boolean(opts.destroy), partial: true });
          if (opts.out !== undefined) {
            if (problems.length) io.err(`the plan was not saved to ${opts.out}: preflight failed, and apply would refuse it`);
            else if (plan.notReached.length) io.err(`the plan was not saved to ${opts.out}: not every host was reached`);
            else {
              const specPath = describeSource(specSource(opts));
              writePlanFile(opts.out, {
                spec: { path: specPath, resolved: resolve(specPath), sha256: specDigest(cluster) },
                destroy: Boolean(opts.destroy),
                hosts: opts.host?.length ? opts.host : null,
                plan,
              });
              io.err(`plan saved to ${opts.out}${opts.out === resolve(opts.out) ? "" : ` (${resolve(opts.out)})`}: \`lvsdr apply ${opts.out}\` runs exactly it`);
            }
          }
          const failed = problems.length > 0 || plan.notReached.length > 0;
          if (opts.json) io.out(jsonDocument("plan", !failed, { ...(planJson(plan) as object), preflight: problems }));
          else {
            io.out(formatDrift(plan.drift));
            io.out("");
            io.out(formatPlan(plan));
            for (const line of [...formatHeldBack(plan), ...formatWithheld(plan)]) io.err(`warning: ${line}`);
            for (const p of problems) io.err(`preflight: ${p.host}: ${p.check}: ${p.message}`);
            for (const line of formatNotReached(plan.notReached)) io.err(line);
          }
          setExit(failed ? exitCodes.error : opts.detailedExitcode && !plan.empty ? exitCodes.changes : exitCodes.ok);
        } finally {
          await run.close();
        }
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json), "plan"));
      }
    });
}
