/**
 * The lab's own bad input and faults: each gets a clear message, a half-built image is never used
 * (the next run rebuilds it), and lab:down cleans up after a lab:up that was killed half-way.
 * The checks of input run anywhere; the rest need root (skipped outside CI without it, as every lab suite).
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { labDown, labLeftovers, labPaths, pidAlive } from "../../lab";
import { labSkipReason } from "./lab-suite";

const LAB = labPaths();

function script(file: string, env: NodeJS.ProcessEnv = {}, wrap: string[] = []): { code: number; stderr: string } {
  const args = [...wrap, "bash", path.join(LAB.scripts, file)];
  const r = spawnSync(args[0]!, args.slice(1), { env: { ...process.env, ...env }, encoding: "utf8", input: "", timeout: 600_000 });
  return { code: r.status ?? -1, stderr: r.stderr };
}

function namespaces(): string[] {
  return spawnSync("ip", ["netns", "list"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => l.startsWith("lvslab-"));
}

describe("lab:up refuses bad input before it touches anything", () => {
  it.each(["0", "3", "two", "1.5", "-1"])("LAB_DIRECTORS=%s", (value) => {
    const before = namespaces();
    const r = script("up.sh", { LAB_DIRECTORS: value });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`lab: LAB_DIRECTORS must be 1 or 2 (got '${value}')`);
    expect(namespaces()).toEqual(before);
  });
});

const skip = labSkipReason();
const describeRoot = skip === null ? describe : describe.skip;
if (skip !== null) console.warn(`lab fault suite skipped: ${skip}. Run it with: sudo npm run test:lab`);

describeRoot("lab faults (root)", () => {
  // A scratch cache that shares the real one's kernel: only the image is built in it.
  let scratch: string;
  beforeAll(async () => {
    if (process.env.CI === "true" && labSkipReason() === null && typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("the lab fault suite needs root");
    const prereqs = script("prereqs.sh");
    if (prereqs.code !== 0) throw new Error(`lab:prereqs failed: ${prereqs.stderr}`);
    await labDown();
    fs.mkdirSync(path.join(LAB.repo, ".cache"), { recursive: true });
    scratch = fs.mkdtempSync(path.join(LAB.repo, ".cache", "faults-"));
    fs.symlinkSync(path.join(LAB.cache, "kernel"), path.join(scratch, "kernel"));
  }, 600_000);
  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("without /dev/net/tun, lab:up says what is missing and how to get it", () => {
    // A private mount namespace where /dev/net is empty: the machine's own /dev is untouched.
    const r = script("up.sh", {}, ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none /dev/net && exec "$0" "$@"']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lab: \/dev\/net\/tun is missing: .*modprobe tun/);
    expect(namespaces()).toEqual([]);
  });

  it("without the disk space for the image, the build says how much it needs and builds nothing", () => {
    const small = fs.mkdtempSync(path.join(scratch, "small-"));
    const wrap = [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t tmpfs -o size=64m none '${small}' && ln -s '${path.join(LAB.cache, "kernel")}' '${small}/kernel' && exec "$0" "$@"`,
    ];
    const r = script("vm/build-image.sh", { LAB_CACHE: small }, wrap);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lab: building the VM image needs 2500 MB free in .* \(have \d+ MB\): free some space, or set LAB_CACHE/);
  });

  it("an image build killed half-way is never used: the next run removes what it left and builds again", async () => {
    const child = spawn("bash", [path.join(LAB.scripts, "vm/build-image.sh")], { env: { ...process.env, LAB_CACHE: scratch }, detached: true, stdio: "ignore" });
    // Kill the whole build (mmdebstrap included) once it has been downloading for a while.
    const started = Date.now();
    while (!fs.readdirSync(scratch).some((f) => f.startsWith("vm.build."))) {
      if (Date.now() - started > 60_000) throw new Error("the build never started");
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 5000));
    process.kill(-child.pid!, "SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(fs.existsSync(path.join(scratch, "vm", "STAMP"))).toBe(false);
    expect(fs.readdirSync(scratch).filter((f) => f.startsWith("vm.build."))).toHaveLength(1);

    // What lab:up checks: a cache with no finished image is refused, not booted.
    const up = script("up.sh", { LAB_CACHE: scratch, LAB_SKIP_PREREQS: "1", LAB_STATE: path.join(scratch, "state") });
    expect(up.code).toBe(1);
    expect(up.stderr).toContain("the VM image is missing: run 'sudo npm run lab:prereqs'");
    expect(namespaces()).toEqual([]);

    const again = script("vm/build-image.sh", { LAB_CACHE: scratch });
    expect(again.stderr).toContain("building the VM image");
    expect(again.code).toBe(0);
    expect(fs.readFileSync(path.join(scratch, "vm", "STAMP"), "utf8")).toBe(fs.readFileSync(path.join(LAB.cache, "vm", "STAMP"), "utf8"));
    expect(fs.readdirSync(scratch).filter((f) => f.startsWith("vm.build."))).toEqual([]);
    // nothing of the killed build is still mounted
    expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(scratch);
  }, 600_000);

  it("lab:down cleans up after a lab:up killed half-way: no VM, namespace, link, route or mount is left", async () => {
    const child = spawn("bash", [path.join(LAB.scripts, "up.sh")], { env: { ...process.env, LAB_SKIP_PREREQS: "1" }, detached: true, stdio: "ignore" });
    const qemuPidFile = path.join(LAB.state, "pids", "director.qemu.pid");
    const started = Date.now();
    while (!(fs.existsSync(qemuPidFile) && fs.readFileSync(qemuPidFile, "utf8").trim() !== "" && namespaces().length > 2)) {
      if (Date.now() - started > 60_000) throw new Error("lab:up never got as far as the VMs and the namespaces");
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(-child.pid!, "SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const qemu = Number(fs.readFileSync(qemuPidFile, "utf8").trim());
    expect(pidAlive(qemu)).toBe(true);

    await labDown();
    expect(pidAlive(qemu)).toBe(false);
    expect(await labLeftovers()).toEqual({ namespaces: [], links: [], mounts: [], routes: [] });
  }, 180_000);
});
