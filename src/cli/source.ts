/** `--stack NAME` or `--file PATH`: exactly one says where the cluster spec is. */
import { SpecError, type SpecSource } from "../config/load";

export interface SourceOptions {
  stack?: string;
  file?: string;
  stacksDir?: string;
}

export function specSource(options: SourceOptions): SpecSource {
  if (options.stack !== undefined && options.file !== undefined) {
    throw new SpecError("command line", [{ path: "--stack/--file", message: "give one of --stack NAME or --file PATH, not both" }]);
  }
  if (options.stack !== undefined) return { stack: options.stack, stacksDir: options.stacksDir ?? "stacks" };
  if (options.file !== undefined) return { file: options.file };
  throw new SpecError("command line", [{ path: "--stack/--file", message: "is required: --stack NAME reads stacks/Pulumi.NAME.yaml, --file PATH reads a spec file" }]);
}
