import { inspect } from "node:util";

/** What source-map-support prints for a frame in @pulumi/pulumi/resource.js, given the SDK's source maps. */
const MISPLACED = "    at Stack.initializeAndRegisterOutputs (/p/node_modules/@pulumi/resource.ts:1598:22)";

describe("stack frames that Pulumi's source maps misplace", () => {
  const saved = Error.prepareStackTrace as typeof Error.prepareStackTrace | undefined;
  afterEach(() => {
    if (saved) Error.prepareStackTrace = saved;
    else delete (Error as { prepareStackTrace?: unknown }).prepareStackTrace;
  });

  /** A stand-in for the language host's source-map-support: the first frame comes out misplaced. */
  function installMisplacingFormatter(): void {
    Error.prepareStackTrace = (err: Error, frames: NodeJS.CallSite[]) =>
      [`${err.name}: ${err.message}`, ...frames.map((f, i) => (i === 0 ? MISPLACED : `    at ${String(f)}`))].join("\n");
  }

  it("without the fix, the stack holds the frame that makes util.inspect loop on Node 20.19.6+", () => {
    installMisplacingFormatter();
    expect(new Error("boom").stack).toContain(MISPLACED);
  });

  it("with it, the frame is printed at its compiled location and inspect with colors returns the message", () => {
    installMisplacingFormatter();
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require("./stack-frames");
    });
    const err = new Error("boom");
    const lines = err.stack!.split("\n");
    expect(lines[0]).toBe("Error: boom");
    expect(lines[1]).not.toContain("@pulumi/resource.ts");
    expect(lines[1]).toMatch(/stack-frames\.test\.ts:\d+:\d+/);
    // Every other frame is as the formatter printed it.
    expect(lines.slice(2).every((l) => l.startsWith("    at "))).toBe(true);
    expect(inspect(err, { colors: true })).toContain("boom");
  });

  it("does nothing outside Pulumi, where no formatter is installed", () => {
    delete (Error as { prepareStackTrace?: unknown }).prepareStackTrace;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require("./stack-frames");
    });
    expect(Error.prepareStackTrace).toBeUndefined();
  });
});
