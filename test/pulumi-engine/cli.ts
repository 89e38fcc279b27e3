/**
 * The stand-in engine from a shell, shaped like the `pulumi` commands it stands in for:
 *
 *   PULUMI_CONFIG_PASSPHRASE=... node dist/test/pulumi-engine/cli.js up --stack lab [--cwd DIR] [--json]
 *
 * Operations: preview, up, refresh, destroy. The passphrase comes from PULUMI_CONFIG_PASSPHRASE or
 * PULUMI_CONFIG_PASSPHRASE_FILE, as for `pulumi`. Exit code 0 when the operation succeeded, else 1.
 */
import { resolve } from "node:path";
import { runStack, type Operation } from "./engine";
import { passphraseFromEnv } from "./secrets";

const OPERATIONS: readonly Operation[] = ["preview", "up", "refresh", "destroy"];

async function main(argv: string[]): Promise<number> {
  const [op, ...rest] = argv;
  const flag = (name: string): string | undefined => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (!OPERATIONS.includes(op as Operation) || !flag("--stack")) {
    process.stderr.write(`usage: cli.js ${OPERATIONS.join("|")} --stack NAME [--cwd DIR] [--json]\n`);
    return 2;
  }
  const json = rest.includes("--json");
  const result = await runStack(op as Operation, {
    projectDir: resolve(flag("--cwd") ?? process.cwd()),
    stack: flag("--stack")!,
    passphrase: passphraseFromEnv(),
    ...(json ? {} : { onLine: (line: string) => process.stdout.write(`${line}\n`) }),
  });
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const counts = new Map<string, number>();
    for (const s of result.steps) counts.set(s.op, (counts.get(s.op) ?? 0) + 1);
    process.stdout.write(
      `${op}: ${[...counts].map(([k, n]) => `${n} ${k}`).join(", ") || "nothing"} in ${(result.timings.totalMs / 1000).toFixed(2)} s${result.ok ? "" : `, ${result.errors.length} error(s)`}\n`,
    );
  }
  return result.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: Error) => {
    process.stderr.write(`error: ${e.message}\n`);
    process.exitCode = 1;
  },
);
