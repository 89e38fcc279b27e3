/** `lvsdr validate`: checks a cluster spec without contacting any host. */
import { Command } from "commander";
import { checkClusterSource, formatIssue, type SpecIssue } from "../../config/load";
import type { Cluster } from "../../config/schema";
import { jsonDocument } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { specSource, type SourceOptions } from "../source";

export interface ValidationReport {
  ok: boolean;
  source: string;
  issues: SpecIssue[];
  /** Every problem found; more than `issues` holds when the list was capped. */
  total: number;
  summary?: string;
}

export function collectValidation(options: SourceOptions): ValidationReport {
  const source = specSource(options);
  const { path, result } = checkClusterSource(source);
  if (!result.ok) return { ok: false, source: path, issues: result.issues, total: result.total };
  return { ok: true, source: path, issues: [], total: 0, summary: summarize(result.cluster) };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function summarize(cluster: Cluster): string {
  const destinations = cluster.virtualServices.reduce((n, s) => n + s.realServers.length, 0);
  return `cluster ${cluster.name}: ${plural(cluster.directors.length, "director")}, ${plural(cluster.realServers.length, "real server")}, ${plural(cluster.virtualServices.length, "virtual service")} (${plural(destinations, "destination")})`;
}

export function printValidation(report: ValidationReport, io: CliIo, json: boolean): void {
  if (json) {
    io.out(jsonDocument("validate", report.ok, { source: report.source, ...(report.summary ? { summary: report.summary } : {}), total: report.total, issues: report.issues }));
    return;
  }
  if (report.ok) {
    io.out(`ok: ${report.source}: ${report.summary}`);
    return;
  }
  for (const issue of report.issues) io.err(formatIssue(report.source, issue));
  io.err(`${report.source}: ${plural(report.total, "problem")}`);
}

export function validateCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command("validate")
    .description("Check a cluster spec against every rule, without contacting any host")
    .option("--stack <name>", "read stacks/Pulumi.<name>.yaml")
    .option("--file <path>", "read a spec file (a Pulumi stack file, or YAML/JSON holding just the cluster)")
    .option("--stacks-dir <dir>", "where stack files live", "stacks")
    .option("--json", "print { formatVersion, command, ok, source, summary?, issues: [{ path, message, line?, column? }] }")
    .addHelpText("after", "\nExamples:\n  lvsdr validate --stack prod\n  lvsdr validate --file cluster.yaml --json\n")
    .action((opts: SourceOptions & { json?: boolean }) => {
      try {
        const report = collectValidation(opts);
        printValidation(report, io, Boolean(opts.json));
        setExit(report.ok ? exitCodes.ok : exitCodes.error);
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json), "validate"));
      }
    });
}
