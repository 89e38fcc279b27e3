/**
 * `lvsdr doctor`: every doctor check, changing nothing. Exit 0 when no check found an error
 * (warnings printed), 2 when one did, 1 on a tool error or a host not reached.
 */
import { Command } from "commander";
import type { DoctorFinding } from "../../plan/doctor";
import type { NotReached } from "../../plan/cluster-plan";
import { runDoctor } from "../../ops/doctor";
import { formatNotReached, jsonDocument } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { loadSpec, openRun, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";

/** One block per finding, errors first: what a person reads before acting. */
export function formatFindings(findings: readonly DoctorFinding[]): string {
  const sorted = [...findings].sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1));
  const blocks = sorted.map((f) =>
    [`${f.severity.toUpperCase()} ${f.host}: ${f.check}: ${f.message}`, `  setting: ${f.setting}`, `  why:     ${f.why}`, `  fix:     ${f.fix}`].join("\n"),
  );
  const errors = findings.filter((f) => f.severity === "error").length;
  const warnings = findings.length - errors;
  const summary = findings.length === 0 ? "doctor: every check passed" : `doctor: ${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}`;
  return [...blocks, summary].join("\n\n");
}

export function doctorJson(findings: readonly DoctorFinding[], notReached: readonly NotReached[]): object {
  return {
    errors: findings.filter((f) => f.severity === "error").length,
    warnings: findings.filter((f) => f.severity === "warning").length,
    findings,
    notReached: notReached.map((n) => ({ host: n.host, error: n.message })),
  };
}

export function doctorCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("doctor"))
    .description("Check every host for the LVS-DR mistakes that break the data path, changing nothing (exit 0 no error, 2 errors, 1 tool error or a host not reached)")
    .option("--json", "print { formatVersion, command, ok, errors, warnings, findings: [{ host, check, severity, setting, why, fix, message }], notReached: [{ host, error }] }")
    .addHelpText("after", "\nExamples:\n  lvsdr doctor --stack prod\n  lvsdr doctor --stack prod --json\n\nChecks, their severity, why and the fix: docs/doctor.md\n")
    .action(async (opts: RunCommandOptions & { json?: boolean }) => {
      try {
        const run = openRun(loadSpec(opts), opts, io);
        try {
          const { findings, notReached } = await runDoctor(run);
          const errors = findings.some((f) => f.severity === "error");
          // A host not reached is a tool error: its checks did not run, so "no error" would be a claim not made.
          const code = notReached.length ? exitCodes.error : errors ? exitCodes.findings : exitCodes.ok;
          if (opts.json) io.out(jsonDocument("doctor", code === exitCodes.ok, doctorJson(findings, notReached)));
          else {
            io.out(formatFindings(findings));
            for (const line of formatNotReached(notReached)) io.err(line);
          }
          setExit(code);
        } finally {
          await run.close();
        }
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json), "doctor"));
      }
    });
}
