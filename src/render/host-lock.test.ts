/**
 * The apply script's host lock is root's alone: any user who can open the lock file can `flock`
 * it (read-only will do) and hold every apply off. The script makes the directory 0700 and the
 * lock 0600, tightens what the tool made before (0755 and 0644), and refuses, changing nothing,
 * a directory or lock another user owns or may write, or a link. Run in dash and bash, with the
 * lock's directory moved to a temporary one.
 */
import { spawnSync } from "node:child_process";
import { chownSync, chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostPaths } from "../model/paths";
import { refusalCodes } from "../model/script-protocol";
import { renderApplyScript } from "./apply-script";

const asRoot = process.getuid?.() === 0;
/** A user that is not the one running the tests (root's tests only). */
const nobody = 65534;

let base: string;
let dir: string;
let lock: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "lvsdr-hostlock-"));
  dir = join(base, "run-lvs-dr");
  lock = join(dir, "lock");
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** A script with one step, the lock's directory in `dir`; the step writes a file beside it. */
function script(): string {
  const text = renderApplyScript({
    host: "rs1",
    wave: "prepare-real-servers",
    steps: [{ op: "write-file", file: { path: "/etc/lvs-dr/restore.sh", mode: 0o644, content: "#!/bin/sh\n" } }],
    expectedIpvsFingerprint: null,
    expectedIpvsListing: null,
  });
  expect(text).toContain(hostPaths.lock);
  return text.split(hostPaths.lockDir).join(dir).split("/etc/lvs-dr").join(base);
}

function run(shell: string) {
  rmSync(join(base, "restore.sh"), { force: true });
  const r = spawnSync(shell, [], { input: script(), encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, wrote: existsSync(join(base, "restore.sh")) };
}

const mode = (path: string) => statSync(path).mode & 0o7777;

describe.each(["sh", "bash"])("the host lock, in %s", (shell) => {
  it("is created root's alone: the directory 0700, the lock 0600", () => {
    const r = run(shell);
    expect(r).toMatchObject({ code: 0, wrote: true });
    expect(mode(dir)).toBe(0o700);
    expect(mode(lock)).toBe(0o600);
  });

  it("tightens the directory and lock the tool made before (0755, 0644)", () => {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(lock, "", { mode: 0o644 });
    chmodSync(lock, 0o644);
    expect(run(shell)).toMatchObject({ code: 0, wrote: true });
    expect(mode(dir)).toBe(0o700);
    expect(mode(lock)).toBe(0o600);
  });

  it("refuses a directory others may write, naming it, and changes nothing", () => {
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const r = run(shell);
    expect(r).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
    expect(r.stderr).toContain(`@@lvsdr error refusing to take the host lock: ${dir} must be a directory owned by root that no other user can write`);
    expect(r.stderr).toContain("mode 777");
    expect(existsSync(lock)).toBe(false);
  });

  it("refuses a lock others may write, a lock that is a link (not followed), and a lock that is a directory", () => {
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(lock, "");
    chmodSync(lock, 0o666);
    let r = run(shell);
    expect(r).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
    expect(r.stderr).toContain(`${lock} must be a regular file owned by root that no other user can write`);
    rmSync(lock);
    const target = join(base, "elsewhere");
    symlinkSync(target, lock);
    r = run(shell);
    expect(r).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
    expect(existsSync(target)).toBe(false);
    expect(lstatSync(lock).isSymbolicLink()).toBe(true);
    rmSync(lock);
    mkdirSync(lock);
    expect(run(shell)).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
  });

  (asRoot ? it : it.skip)("as root: refuses a directory or lock another user owns; that user cannot open the lock to hold it", () => {
    expect(run(shell).code).toBe(0);
    // Another user cannot even reach the lock to open it, so cannot hold it: the lock's
    // directory stops them (its parent here lets them through, as /run does).
    chmodSync(base, 0o755);
    const held = spawnSync("setpriv", [`--reuid=${nobody}`, `--regid=${nobody}`, "--clear-groups", "flock", "-n", lock, "true"], { encoding: "utf8" });
    expect(held.status).not.toBe(0);
    expect(held.stderr).toMatch(/Permission denied/);
    chownSync(lock, nobody, nobody);
    let r = run(shell);
    expect(r).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
    expect(r.stderr).toContain(`(it is owned by uid ${nobody}, mode 600; this script runs as uid 0)`);
    chownSync(lock, 0, 0);
    chownSync(dir, nobody, nobody);
    r = run(shell);
    expect(r).toMatchObject({ code: refusalCodes.lockUnsafe, wrote: false });
    expect(r.stderr).toContain(`${dir} must be a directory owned by root`);
  });
});
