/** `lvsdr apply` and `lvsdr destroy`: change the hosts, with progress, a question before any change, and a summary. */
import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { loadCluster } from "../../config/load";
import type { Cluster } from "../../config/schema";
import { ApplyError, InterruptedError, PreflightError, type HostFailure } from "../../ops/engine";
import type { ClusterPlan } from "../../plan/cluster-plan";
import { describeStep } from "../../render/describe";
import { destructiveSteps, formatHeldBack, formatNotReached, formatPlan, formatWithheld, jsonDocument, planJson, planSize } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { readPlanFile, specDigest, type PlanFile } from "../plan-file";
import { loadSpec, openRun, progressPrinter, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

type ChangeOptions = RunCommandOptions & { yes?: boolean; json?: boolean };

/** A saved plan's spec, read again from where it was read: refused if it is not the spec the plan was made from. */
function savedSpec(saved: PlanFile, opts: ChangeOptions): Cluster {
  if (opts.stack !== undefined || opts.file !== undefined || opts.host?.length) {
    throw new Error("a plan file names its spec and its hosts: give it without --stack, --file or --host");
  }
  const cluster = loadCluster({ file: saved.spec.resolved });
  if (specDigest(cluster) !== saved.spec.sha256) {
    throw new Error(`the spec changed since the plan was made: ${saved.spec.path} (${saved.spec.resolved}); nothing was changed: make the plan again`);
  }
  return cluster;
}

/** What `--json` prints for apply and destroy, besides the format version, the command and `ok`. */
interface ChangeResult {
  /** applied, nothing-to-do, partial, declined, refused, failed, interrupted or error */
  outcome: string;
  exitCode: number;
  plan?: unknown;
  applied?: { host: string; wave: string; steps: number; warnings: string[] }[];
  failures?: HostFailure[];
  notStarted?: { host: string; wave: string }[];
  /** Hosts no longer as the plan saw them: nothing was changed anywhere. */
  changedSincePlan?: { host: string; message: string }[];
}

/**
 * Shows the plan, asks (unless `--yes`), and runs exactly the plan shown. After a question or
 * from a saved plan, every host is first checked to be as the plan saw it (one round trip each):
 * if any changed, nothing is changed anywhere. With `--json` the plan and the outcome are one
 * document on stdout; the lines meant for a person go to stderr.
 */
async function runChange(name: "apply" | "destroy", io: CliIo, setExit: (code: number) => void, opts: ChangeOptions, planFile?: string): Promise<void> {
  const progress = progressPrinter(io, Boolean(process.stderr.isTTY));
  const json = Boolean(opts.json);
  const say = json ? (text: string) => io.err(text) : (text: string) => io.out(text);
  let verb: string = name;
  let plan: ClusterPlan | undefined;
  const end = (result: ChangeResult) => {
    if (json) io.out(jsonDocument(verb, result.exitCode === exitCodes.ok, { ...result, plan: plan ? planJson(plan) : null }));
    setExit(result.exitCode);
  };
  try {
    const saved = planFile !== undefined ? readPlanFile(planFile) : null;
    const cluster = saved ? savedSpec(saved, opts) : loadSpec(opts);
    const destroy = saved ? saved.destroy : name === "destroy";
    verb = destroy ? "destroy" : "apply";
    const interrupt = new AbortController();
    const run = openRun(cluster, saved?.hosts ? { ...opts, host: saved.hosts } : opts, io, progress.onProgress, interrupt.signal);
    try {
      if (saved) plan = saved.plan;
      else {
        const planned = await run.plan({ destroy, partial: true });
        if (planned.problems.length) throw new PreflightError(planned.problems);
        plan = planned.plan;
      }
      const shown = plan;
      for (const line of [...formatHeldBack(shown), ...formatWithheld(shown)]) io.err(`warning: ${line}`);
      // Hosts not reached are left as they are; the others converge, and the exit code says it was partial.
      const partly = (): number => {
        for (const line of formatNotReached(shown.notReached)) io.err(line);
        return shown.notReached.length ? exitCodes.partial : exitCodes.ok;
      };
      if (shown.empty) {
        say(shown.notReached.length ? "nothing to do on the hosts reached" : "nothing to do: every host already holds what the spec says");
        const exitCode = partly();
        end({ outcome: exitCode === exitCodes.ok ? "nothing-to-do" : "partial", exitCode });
        return;
      }
      say(formatPlan(shown));
      // Like `pulumi up` and `terraform apply`: every change to live hosts is confirmed.
      if (!opts.yes) {
        const taking = destructiveSteps(shown);
        const what = `${planSize(shown)}${taking.length ? `, ${taking.length} taking something away (e.g. ${taking[0]!.host}: ${describeStep(taking[0]!.step)})` : ""}`;
        if (!process.stdin.isTTY || json) {
          io.err(`${verb} would change live hosts: ${what}; nothing was changed: re-run with --yes to go ahead`);
          end({ outcome: "declined", exitCode: exitCodes.error });
          return;
        }
        if (!(await confirm(`${verb}: ${what}. Go ahead?`))) {
          io.err("nothing was changed");
          end({ outcome: "declined", exitCode: exitCodes.error });
          return;
        }
      }
      if (saved || !opts.yes) {
        const changed = await run.verifyPlanned(shown);
        if (changed.length) {
          for (const c of changed) io.err(`${c.host}: ${c.message}`);
          io.err(
            `nothing was changed on any host: ${changed.length} host${changed.length === 1 ? " is" : "s are"} no longer as the plan saw ${changed.length === 1 ? "it" : "them"}; run \`lvsdr plan\` again`,
          );
          end({ outcome: "refused", exitCode: exitCodes.error, changedSincePlan: changed });
          return;
        }
      }
      const started = Date.now();
      // Ctrl-C while hosts change: no new host starts, the scripts running finish (they hold the
      // hosts' locks), and the summary says what was done. A second Ctrl-C quits at once.
      const onInterrupt = () => {
        if (interrupt.signal.aborted) process.exit(exitCodes.interrupted);
        progress.done();
        io.err("interrupted: the scripts already running finish on their hosts; no other host starts (Ctrl-C again to quit now)");
        interrupt.abort();
      };
      process.on("SIGINT", onInterrupt);
      const report = await run.applyPlanned(shown, { goOnWithoutFailed: true }).finally(() => process.off("SIGINT", onInterrupt));
      progress.done();
      const steps = report.applied.reduce((n, a) => n + a.steps, 0);
      const warnings = report.applied.flatMap((a) => a.warnings.map((w) => `${a.host}: ${w}`));
      const hostCount = new Set(report.applied.map((a) => a.host)).size;
      say(
        `${verb}: ${steps} steps on ${hostCount} host${hostCount === 1 ? "" : "s"} in ${((Date.now() - started) / 1000).toFixed(1)} s${warnings.length ? `; ${warnings.length} warning(s)` : ""}`,
      );
      for (const w of warnings) io.err(`warning: ${w}`);
      // A real server that failed its prepare: the others and the directors went on without it.
      for (const f of report.failures) io.err(`${f.host} (${f.wave}) failed: ${f.message}`);
      for (const line of formatHeldBack(report)) io.err(`warning: ${line}`);
      const reached = partly();
      const exitCode = report.failures.length ? exitCodes.partial : reached;
      end({ outcome: exitCode === exitCodes.ok ? "applied" : "partial", exitCode, applied: report.applied, ...(report.failures.length ? { failures: report.failures } : {}) });
    } finally {
      await run.close();
    }
  } catch (error) {
    progress.done();
    if (error instanceof InterruptedError) {
      const done = error.completed.map((c) => `${c.host} (${c.wave})`);
      io.err(`interrupted: done: ${done.join(", ") || "nothing"}; not started: ${error.notStarted.map((n) => `${n.host} (${n.wave})`).join(", ") || "nothing"}`);
      for (const f of error.failures) io.err(`  ${f.host} (${f.wave}) failed: ${f.message}`);
      io.err("every script started has ended, and with it its hold on its host's lock; run `lvsdr plan` to see what is left");
      end({ outcome: "interrupted", exitCode: exitCodes.interrupted, applied: error.completed, failures: error.failures, notStarted: error.notStarted });
    } else if (error instanceof ApplyError) {
      io.err(error.message);
      io.err(`${error.completed.length} host wave(s) completed before the failure; run \`lvsdr plan\` to see what is left`);
      end({ outcome: "failed", exitCode: exitCodes.error, applied: error.completed, failures: error.failures });
    } else setExit(handleError(error, io, json, verb));
  }
}

export function applyCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("apply"))
    .description("Bring every host to the spec: real servers first, then directors, then releases; with PLAN_FILE, run a plan saved by `lvsdr plan --out`")
    .argument("[plan-file]", "a plan saved by `lvsdr plan --out FILE`: refused if the spec or any host changed since")
    .option("-y, --yes", "go ahead without asking (needed when not on a terminal)")
    .option("--json", "print { formatVersion, command, ok, outcome, exitCode, plan, applied, failures, notStarted, changedSincePlan } on stdout (needs --yes)")
    .addHelpText(
      "after",
      "\nExamples:\n  lvsdr apply --stack prod\n  lvsdr apply --stack lab --yes --concurrency 64\n  lvsdr plan --stack prod --out prod.plan && lvsdr apply prod.plan\n",
    )
    .action((planFile: string | undefined, opts: ChangeOptions) => runChange("apply", io, setExit, opts, planFile));
}

export function destroyCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("destroy"))
    .description("Remove everything the tool created on every host (directors let go first)")
    .option("-y, --yes", "go ahead without asking (needed when not on a terminal)")
    .option("--json", "print { formatVersion, command, ok, outcome, exitCode, plan, applied, failures, notStarted, changedSincePlan } on stdout (needs --yes)")
    .addHelpText("after", "\nExamples:\n  lvsdr destroy --stack dev\n  lvsdr destroy --stack dev --yes\n")
    .action((opts: ChangeOptions) => runChange("destroy", io, setExit, opts));
}
