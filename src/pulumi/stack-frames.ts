/**
 * Keeps `pulumi up` from spending ~30 s and ~3.5 GB per uncaught error on Node 20.19.6+.
 *
 * The language host reports an uncaught error with `util.inspect(err, { colors: true })`
 * (@pulumi/pulumi cmd/run/error.js). Since nodejs/node#59446 (Node 20.19.6, 20.20.x) that call loops,
 * growing a string until V8 throws "Invalid string length" (nodejs/node#64011, fixed by #64022, not
 * on 20.x), on any stack frame whose path has no `/` after `node_modules/<name>` or
 * `node_modules/@scope/<name>`. @pulumi/* ship source maps whose `sources` are one directory too
 * high (`@pulumi/pulumi/config.js.map` lists `../config.ts`), so the source-map-support the language
 * host installs maps SDK frames to exactly that: `node_modules/@pulumi/config.ts:404:19`.
 *
 * Such frames are printed at their compiled location instead (`node_modules/@pulumi/pulumi/config.js`,
 * which exists); the message and all other frames are left as they were. Imported by the
 * components and the program, so it is in place in this project's program and in any program
 * that uses the components. Outside Pulumi `Error.prepareStackTrace` is unset and this does nothing.
 */
const packagelessFrame = /[\\/]node_modules[\\/](?:@[^\\/]*[\\/])?[^\\/]*$/;

const formatStack = Error.prepareStackTrace as typeof Error.prepareStackTrace | undefined;
if (formatStack !== undefined) {
  Error.prepareStackTrace = (err: Error, frames: NodeJS.CallSite[]): unknown => {
    const stack: unknown = formatStack.call(Error, err, frames);
    if (typeof stack !== "string") return stack;
    // source-map-support: `${name}: ${message}`, then one `\n    at ${frame}` per call site.
    const lines = stack.split("\n");
    const first = lines.length - frames.length;
    if (first < 1) return stack;
    let changed = false;
    frames.forEach((frame, i) => {
      if (packagelessFrame.test(lines[first + i]!)) {
        lines[first + i] = `    at ${String(frame)}`;
        changed = true;
      }
    });
    return changed ? lines.join("\n") : stack;
  };
}

export {};
