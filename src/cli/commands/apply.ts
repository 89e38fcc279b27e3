/** `lvsdr apply` and `lvsdr destroy`: change the hosts, with progress, a question before any change, and a summary. */
import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { ApplyError, PreflightError } from "../../ops/engine";
import { destructiveSteps, formatHeldBack, formatPlan, planSize } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { loadSpec, openRun, progressPrinter, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";
import { describeStep } from "../../render/describe";

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

function changeCommand(name: "apply" | "destroy", io: CliIo, setExit: (code: number) => void): Command {
  const destroy = name === "destroy";
  return addSourceOptions(new Command(name))
    .description(destroy ? "Remove everything the tool created on every host (directors let go first)" : "Bring every host to the spec: real servers first, then directors, then releases")
    .option("-y, --yes", "go ahead without asking (needed when not on a terminal)")
    .addHelpText("after", destroy ? "\nExamples:\n  lvsdr destroy --stack dev\n  lvsdr destroy --stack dev --yes\n" : "\nExamples:\n  lvsdr apply --stack prod\n  lvsdr apply --stack lab --yes --concurrency 64\n")
    .action(async (opts: RunCommandOptions & { yes?: boolean }) => {
      const tty = Boolean(process.stderr.isTTY);
      const progress = progressPrinter(io, tty);
      try {
        const cluster = loadSpec(opts);
        const run = openRun(cluster, opts, io, progress.onProgress);
        try {
          const { plan, problems } = await run.plan({ destroy });
          if (problems.length) throw new PreflightError(problems);
          for (const line of formatHeldBack(plan)) io.err(`warning: ${line}`);
          if (plan.empty) {
            io.out("nothing to do: every host already holds what the spec says");
            setExit(exitCodes.ok);
            return;
          }
          io.out(formatPlan(plan));
          // Like `pulumi up` and `terraform apply`: every change to live hosts is confirmed.
          if (!opts.yes) {
            const taking = destructiveSteps(plan);
            const what = `${planSize(plan)}${taking.length ? `, ${taking.length} taking something away (e.g. ${taking[0]!.host}: ${describeStep(taking[0]!.step)})` : ""}`;
            if (!process.stdin.isTTY) {
              io.err(`${name} would change live hosts: ${what}; nothing was changed: re-run with --yes to go ahead`);
              setExit(exitCodes.error);
              return;
            }
            if (!(await confirm(`${name}: ${what}. Go ahead?`))) {
              io.err("nothing was changed");
              setExit(exitCodes.error);
              return;
            }
          }
          const started = Date.now();
          const report = await run.apply({ destroy });
          progress.done();
          const steps = report.applied.reduce((n, a) => n + a.steps, 0);
          const warnings = report.applied.flatMap((a) => a.warnings.map((w) => `${a.host}: ${w}`));
          const hostCount = new Set(report.applied.map((a) => a.host)).size;
          io.out(`${name}: ${steps} steps on ${hostCount} host${hostCount === 1 ? "" : "s"} in ${((Date.now() - started) / 1000).toFixed(1)} s${warnings.length ? `; ${warnings.length} warning(s)` : ""}`);
          for (const w of warnings) io.err(`warning: ${w}`);
          setExit(exitCodes.ok);
        } finally {
          await run.close();
        }
      } catch (error) {
        progress.done();
        if (error instanceof ApplyError) {
          io.err(error.message);
          io.err(`${error.completed.length} host wave(s) completed before the failure; run \`lvsdr plan\` to see what is left`);
          setExit(exitCodes.error);
        } else setExit(handleError(error, io, false));
      }
    });
}

export const applyCommand = (io: CliIo, setExit: (code: number) => void) => changeCommand("apply", io, setExit);
export const destroyCommand = (io: CliIo, setExit: (code: number) => void) => changeCommand("destroy", io, setExit);
