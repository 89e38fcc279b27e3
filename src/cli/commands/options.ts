/** Options every command that reads a spec and reaches hosts shares. */
import type { Command } from "commander";

export function addSourceOptions(command: Command): Command {
  return command
    .option("--stack <name>", "read stacks/Pulumi.<name>.yaml")
    .option("--file <path>", "read a spec file (a Pulumi stack file, or YAML/JSON holding just the cluster)")
    .option("--stacks-dir <dir>", "where stack files live", "stacks")
    .option("--concurrency <n>", "hosts worked on at once (default: 32)", undefined)
    .option("--host <name...>", "only these hosts are changed; a director's real servers outside them are only observed, and registered only if ready");
}
