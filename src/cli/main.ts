/** The lvsdr command line: one subcommand per file under commands/. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command, CommanderError } from "commander";
import { applyCommand, destroyCommand } from "./commands/apply";
import { doctorCommand } from "./commands/doctor";
import { driftCommand } from "./commands/drift";
import { planCommand } from "./commands/plan";
import { statusCommand } from "./commands/status";
import { validateCommand } from "./commands/validate";
import { exitCodes, processIo, type CliIo } from "./io";

/** The package's version, from the package.json above this file (src/ under ts-jest, dist/src once built). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "lvs-dr" && pkg.version) return pkg.version;
    }
  }
  return "unknown";
}

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command("lvsdr")
    .description("Provision and check LVS-DR (Linux Virtual Server, direct routing) clusters over SSH")
    .version(packageVersion(), "-V, --version", "print the version")
    .exitOverride()
    .configureOutput({ writeOut: (s: string) => io.out(s), writeErr: (s: string) => io.err(s) })
    .showHelpAfterError();
  const output = { writeOut: (s: string) => io.out(s), writeErr: (s: string) => io.err(s) };
  for (const command of [validateCommand, planCommand, applyCommand, driftCommand, doctorCommand, statusCommand, destroyCommand]) {
    // addCommand does not pass settings down to a command built elsewhere: set them on each.
    program.addCommand(command(io, setExit).exitOverride().configureOutput(output).showHelpAfterError());
  }
  return program;
}

export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  let code: number = exitCodes.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  if (argv.length === 0) {
    program.outputHelp();
    return exitCodes.error;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? exitCodes.ok : exitCodes.error;
    throw error;
  }
  return code;
}
