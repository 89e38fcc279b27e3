/** `lvsdr status`: what the directors see now, per service each real server's health, per failover group its master. */
import { Command } from "commander";
import { clusterHealth, type ClusterHealth } from "../../plan/health";
import { formatHealth, jsonFormatVersion } from "../format";
import { handleError } from "../handle-error";
import { exitCodes, type CliIo } from "../io";
import { loadSpec, openRun, type RunCommandOptions } from "../run";
import { addSourceOptions } from "./options";

export function statusCommand(io: CliIo, setExit: (code: number) => void): Command {
  return addSourceOptions(new Command("status"))
    .description("Show each real server's health and weight as its director sees it, and each failover group's master")
    .option("--json", "print { formatVersion, command, ok, services: [{ service, director, realServers: [...], sorryServer }], groups: [{ group, master, ... }] }")
    .option("--watch [seconds]", "look again every few seconds (default 2) until interrupted")
    .addHelpText("after", "\nExamples:\n  lvsdr status --stack prod\n  lvsdr status --stack prod --watch 1\n")
    .action(async (opts: RunCommandOptions & { json?: boolean; watch?: string | boolean }) => {
      try {
        const cluster = loadSpec(opts);
        const interval = opts.watch === undefined || opts.watch === false ? null : opts.watch === true ? 2 : Number(opts.watch);
        if (interval !== null && (!Number.isFinite(interval) || interval <= 0)) throw new Error(`--watch: must be a number of seconds above 0, got "${String(opts.watch)}"`);
        const run = openRun(cluster, opts, io);
        // Only the directors know health; real servers are not contacted.
        const directors = run.desired.hosts.filter((h) => h.role === "director").map((h) => h.host);
        let stop = false;
        const onSignal = () => {
          stop = true;
        };
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        try {
          for (;;) {
            const health: ClusterHealth = clusterHealth(run.desired, await run.observe({ only: directors }));
            io.out(
              opts.json
                ? JSON.stringify({ formatVersion: jsonFormatVersion, command: "status", ok: true, ...health }, null, interval === null ? 2 : undefined)
                : `${interval !== null ? `${new Date().toISOString()}\n` : ""}${formatHealth(health)}`,
            );
            if (interval === null || stop) break;
            await new Promise((r) => setTimeout(r, interval * 1000));
            if (stop) break;
          }
          setExit(exitCodes.ok);
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          await run.close();
        }
      } catch (error) {
        setExit(handleError(error, io, Boolean(opts.json), "status"));
      }
    });
}
