/**
 * How the serialized providers find their code: the package lvs-dr as the project directory sees
 * it, never a path saved at `pulumi up` time (the move itself is proven in
 * test/lab/pulumi-runtime.test.ts).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { realServerProvider } from "./providers";
import type { HostResourceInputs } from "./state";

const REPO = resolve(__dirname, "../..");

describe("the dynamic providers' code", () => {
  it("is serialized without any path of this checkout", async () => {
    const serialized = await pulumi.runtime.serializeFunction(() => realServerProvider, { allowSecrets: true });
    expect(serialized.text).toContain("lvs-dr/pulumi-provider");
    expect(serialized.text).not.toContain(REPO);
    expect(serialized.text).not.toMatch(/ClusterRun|ssh2/);
  });

  it("says where it looked and what to install when the package is not there", () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "lvsdr-no-package-"));
    const cwd = process.cwd();
    process.chdir(elsewhere);
    try {
      expect(() => realServerProvider.check!({} as HostResourceInputs, {} as HostResourceInputs)).toThrow(
        new RegExp(
          `^lvs-dr: the provider code \\(package lvs-dr, lvs-dr/pulumi-provider\\) cannot be found from ${elsewhere}, where Pulumi runs this stack's providers\\. Run pulumi in the project that uses lvs-dr`,
        ),
      );
    } finally {
      process.chdir(cwd);
    }
  });
});
