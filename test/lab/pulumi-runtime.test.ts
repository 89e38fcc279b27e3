/**
 * `pulumi preview | up | refresh | destroy` on the lab, run by Pulumi's own Node.js halves: the
 * language entry point (`@pulumi/pulumi/cmd/run`) runs the compiled program and the
 * dynamic-provider host runs the providers it deserializes from the inputs and the state. Only
 * the Go engine between them is replaced, by the test-only stand-in in test/pulumi-engine.
 *
 * The stack is the lab stack with the SSH key moved into the config as a `secure:` value
 * (passphrase secrets), as `pulumi config set --secret --path` leaves it, so the state must carry
 * it encrypted. The stack files the suite writes are `stacks/Pulumi.test-*.yaml` (git-ignored,
 * removed afterwards); states live in temporary directories.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import { LAB_ADDRESSES, labExecOk, labPaths } from "../../lab";
import { labRequests } from "../../lab/traffic";
import { loadCluster, readClusterValue } from "../../src/config/load";
import type { ClusterInput } from "../../src/config/schema";
import { ClusterRun } from "../../src/ops/engine";
import { SshTransport } from "../../src/transport/ssh";
import { runStack, type Operation, type RunResult, type Step } from "../pulumi-engine/engine";
import { newEncryptionSalt, passphraseCrypter } from "../pulumi-engine/secrets";
import { statePath } from "../pulumi-engine/state";
import { hostSnapshots, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

const HOSTS = ["director", "rs1", "rs2", "rs3", "rsvm1"];
const RS = ["rs1", "rs2", "rs3", "rsvm1"];
const VIP = LAB_ADDRESSES.vip;
const STACK = "test-pulumi";
const PASSPHRASE = "correct horse battery staple, lab edition";
const SALT = newEncryptionSalt(PASSPHRASE);
const DYNAMIC = "pulumi-nodejs:dynamic/lvsdr:";

/** Counts the TCP connections to port 22 that a process opens, by wrapping net.Socket#connect. */
const DIAL_COUNTER = `
const net = require("net");
const fs = require("fs");
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const port = typeof first === "object" && first !== null ? first.port : first;
  if (Number(port) === 22) fs.appendFileSync(process.env.LVSDR_DIAL_LOG, process.pid + "\\n");
  return connect.apply(this, args);
};`;

const work = mkdtempSync(join(tmpdir(), "lvsdr-pulumi-runtime-"));
const dialLog = join(work, "dials.log");
writeFileSync(join(work, "dial-counter.js"), DIAL_COUNTER);
writeFileSync(dialLog, "");

function dials(): number {
  return readFileSync(dialLog, "utf8").split("\n").filter(Boolean).length;
}

function labSpec(): ClusterInput {
  return structuredClone(readClusterValue({ stack: "lab", stacksDir: join(REPO, "stacks") }).value as ClusterInput);
}

/** Writes stacks/Pulumi.<name>.yaml: the spec, its SSH key a `secure:` value. */
function writeStack(name: string, spec: ClusterInput, dir = REPO): string {
  const key = readFileSync(join(labPaths().state, "id_ed25519"), "utf8");
  const { privateKeyPath: _dropped, ...defaults } = spec.connectionDefaults ?? {};
  const crypter = passphraseCrypter(PASSPHRASE, SALT);
  const cluster = { ...spec, connectionDefaults: { ...defaults, privateKey: { secure: crypter.encrypt(key) } } };
  const file = join(dir, "stacks", `Pulumi.${name}.yaml`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, stringify({ encryptionsalt: SALT, config: { "lvs-dr:cluster": cluster } }));
  return file;
}

interface Where {
  stack?: string;
  projectDir?: string;
  backendDir?: string;
}

async function pulumi(op: Operation, where: Where = {}): Promise<RunResult & { dials: number; ms: number }> {
  const before = dials();
  const started = Date.now();
  const result = await runStack(op, {
    projectDir: where.projectDir ?? REPO,
    stack: where.stack ?? STACK,
    backendDir: where.backendDir ?? join(work, "state"),
    passphrase: PASSPHRASE,
    env: { NODE_OPTIONS: `--require ${join(work, "dial-counter.js")}`, LVSDR_DIAL_LOG: dialLog },
  });
  return { ...result, dials: dials() - before, ms: Date.now() - started };
}

function ok(result: RunResult): void {
  if (!result.ok) throw new Error(`the stand-in run failed:\n${result.errors.join("\n")}\n--- diagnostics ---\n${result.diagnostics.join("\n")}`);
}

/** `op` per resource name, for the dynamic resources only. */
function opsByHost(steps: Step[]): Record<string, string> {
  return Object.fromEntries(steps.filter((s) => s.type.startsWith(DYNAMIC)).map((s) => [s.name, s.op]));
}

async function answeringServers(requests = 12): Promise<Set<string>> {
  await labExecOk("client", `ip neigh flush to ${VIP} || true`);
  const seen = new Set<string>();
  for (let i = 0; i < requests; i++) seen.add((await labExecOk("client", `curl -s -m 5 http://${VIP}/`)).trim());
  return seen;
}

/** The director's OutPkts for the VIP service: 0 in DR, where replies bypass the director. */
async function directorOutPackets(): Promise<{ inPkts: number; outPkts: number }> {
  // The kernel folds its per-CPU counters into these totals every two seconds.
  await new Promise((r) => setTimeout(r, 2500));
  const stats = await labExecOk("director", `ipvsadm -Ln --stats --exact -t ${VIP}:80`);
  const cols = (stats.split("\n").find((l) => l.startsWith("TCP")) ?? "").trim().split(/\s+/);
  return { inPkts: Number(cols[3]), outPkts: Number(cols[4]) };
}

/**
 * What a teammate's machine holds besides the project: the stack file, the pinned host keys (the
 * SSH key travels in the state) and a copy of the state.
 */
function moveStackTo(projectDir: string, backendDir: string): void {
  mkdirSync(join(projectDir, "stacks"), { recursive: true });
  copyFileSync(join(REPO, "stacks", `Pulumi.${STACK}.yaml`), join(projectDir, "stacks", `Pulumi.${STACK}.yaml`));
  mkdirSync(join(projectDir, ".lab"), { recursive: true });
  copyFileSync(labPaths().knownHosts, join(projectDir, ".lab", "known_hosts"));
  const state = statePath(backendDir, "lvs-dr", STACK);
  mkdirSync(dirname(state), { recursive: true });
  copyFileSync(statePath(join(work, "state"), "lvs-dr", STACK), state);
}

/** Runs `op` and expects it to find every resource as it should be. */
async function expectNoChange(op: Operation, where: Where = {}): Promise<RunResult> {
  const result = await pulumi(op, where);
  ok(result);
  expect(result.steps.filter((s) => s.op !== "same")).toEqual([]);
  return result;
}

async function runAsync(cmd: string, args: string[], cwd: string): Promise<string> {
  return (await promisify(execFile)(cmd, args, { cwd, encoding: "utf8", timeout: 300_000 })).stdout;
}

/** A fresh clone of this repository in another directory, installed with `npm ci` (which builds it). */
async function freshClone(): Promise<{ project: string; backendDir: string }> {
  const clone = join(mkdtempSync(join(tmpdir(), "lvsdr-moved-")), "somewhere", "lvs-dr");
  await runAsync("git", ["clone", "-q", REPO, clone], tmpdir());
  await runAsync("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline"], clone);
  return { project: clone, backendDir: join(dirname(clone), "state") };
}

/**
 * Someone else's project: this package from `npm pack` (the build `npm test` just made), installed
 * with npm, and a program that uses the components with the same project name and stack.
 */
async function consumerProject(): Promise<{ project: string; backendDir: string }> {
  const pack = mkdtempSync(join(tmpdir(), "lvsdr-pack-"));
  const tarball = (await runAsync("npm", ["pack", "--silent", "--ignore-scripts", "--pack-destination", pack], REPO)).trim().split("\n").pop()!;
  const project = join(pack, "consumer");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "lb-stacks", version: "1.0.0", private: true }));
  await runAsync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(pack, tarball)], project);
  writeFileSync(join(project, "Pulumi.yaml"), "name: lvs-dr\nruntime: nodejs\nmain: index.js\nstackConfigDir: stacks\n");
  writeFileSync(
    join(project, "index.js"),
    [
      'const pulumi = require("@pulumi/pulumi");',
      'const { LvsDrCluster } = require("lvs-dr");',
      'const spec = new pulumi.Config("lvs-dr").requireObject("cluster");',
      "const cluster = new LvsDrCluster(spec.name, { cluster: spec });",
      "exports.vips = cluster.vips;",
      "",
    ].join("\n"),
  );
  return { project, backendDir: join(pack, "state") };
}

describeLab("pulumi up under Pulumi's own Node.js runtime (engine stand-in)", () => {
  let pristine: Record<string, string>;

  // The two places the state moves to are installed while the first tests run (npm, not the
  // lab), and are ready before the test that measures requests under a change.
  const moved = {} as { clone: Promise<{ project: string; backendDir: string }>; consumer: Promise<{ project: string; backendDir: string }> };

  beforeAll(async () => {
    moved.clone = freshClone();
    moved.consumer = consumerProject();
    for (const p of Object.values(moved)) p.catch(() => undefined); // awaited, and reported, where used
    // Whatever an earlier suite left: this suite starts from hosts the tool does not manage.
    const leftovers = new ClusterRun(loadCluster({ stack: "lab", stacksDir: join(REPO, "stacks") }), { transport: new SshTransport(), connectOptions: { baseDir: REPO } });
    try {
      await leftovers.apply({ destroy: true });
    } finally {
      await leftovers.close();
    }
    pristine = await hostSnapshots(HOSTS);
    writeStack(STACK, labSpec());
  }, 300_000);

  afterAll(() => {
    for (const f of readdirSync(join(REPO, "stacks")).filter((f) => f.startsWith("Pulumi.test-"))) rmSync(join(REPO, "stacks", f));
  });

  it("preview registers the whole component tree and opens no SSH connection", async () => {
    const preview = await pulumi("preview");
    ok(preview);
    const types = preview.registered.map((u) => u.split("::")[2]!.split("$").pop());
    expect(types.filter((t) => t === "lvsdr:index:LvsDrCluster")).toHaveLength(1);
    expect(types.filter((t) => t === "lvsdr:index:RealServerGroup")).toHaveLength(1);
    expect(types.filter((t) => t === "lvsdr:index:LvsDirector")).toHaveLength(1);
    expect(opsByHost(preview.steps)).toEqual({
      director: "create",
      ...Object.fromEntries(RS.map((h) => [h, "create"])),
      ...Object.fromEntries(RS.map((h) => [`${h}-release`, "create"])),
    });
    expect(preview.dials).toBe(0);
    expect(await hostSnapshots(HOSTS)).toEqual(pristine);
  }, 120_000);

  it("up: requests to the VIP reach every real server, and the director sends no reply packet", async () => {
    const up = await pulumi("up");
    ok(up);
    expect(Object.values(opsByHost(up.steps)).every((op) => op === "create")).toBe(true);
    expect(up.dials).toBeGreaterThanOrEqual(HOSTS.length); // the counter sees real dials
    expect(await answeringServers()).toEqual(new Set(RS));
    const { inPkts, outPkts } = await directorOutPackets();
    expect(inPkts).toBeGreaterThan(0);
    expect(outPkts).toBe(0);
  }, 300_000);

  it("the state holds no private key, password or passphrase in plain text, and no path of this checkout", () => {
    const text = readFileSync(statePath(join(work, "state"), "lvs-dr", STACK), "utf8");
    const key = readFileSync(join(labPaths().state, "id_ed25519"), "utf8");
    const keyBody = key.split("\n").filter((l) => l && !l.startsWith("-----"));
    expect(keyBody.length).toBeGreaterThan(0);
    for (const line of keyBody) expect(text).not.toContain(line);
    expect(text).not.toMatch(/PRIVATE KEY|privateKey"\s*:\s*"/);
    expect(text).not.toContain(PASSPHRASE);
    expect(text).not.toContain(REPO);
    expect(text).toContain('"ciphertext"'); // the connections are there, encrypted
  });

  it("up again changes nothing: every resource the same, every host as it was", async () => {
    const before = await hostSnapshots(HOSTS);
    const up = await expectNoChange("up");
    expect(Object.keys(opsByHost(up.steps))).toHaveLength(2 * RS.length + 1);
    expect(await hostSnapshots(HOSTS)).toEqual(before);
  }, 300_000);

  it("a hand change on rs1: refresh names the fields, up repairs it, refresh is clean", async () => {
    await labExecOk("rs1", `sysctl -q -w net.ipv4.conf.all.arp_ignore=0 && ip addr del ${VIP}/32 dev lo`);
    const refresh = await pulumi("refresh");
    ok(refresh);
    const drifted = refresh.steps.filter((s) => s.op === "refresh");
    expect(drifted.map((s) => s.name)).toEqual(["rs1"]);
    const changes = Object.fromEntries(drifted[0]!.changes.map((c) => [c.path, [c.old, c.new]]));
    expect(changes['sysctls["net/ipv4/conf/all/arp_ignore"]']).toEqual(["1", "0"]);
    expect(changes.addresses).toEqual([[`lo/${VIP}/32`], []]);

    const up = await pulumi("up");
    ok(up);
    expect(Object.entries(opsByHost(up.steps)).filter(([, op]) => op !== "same")).toEqual([["rs1", "update"]]);
    expect((await labExecOk("rs1", "cat /proc/sys/net/ipv4/conf/all/arp_ignore")).trim()).toBe("1");

    await expectNoChange("refresh");
  }, 300_000);

  it("a spec change (one weight, one real server removed) drains and removes in the safe order, no request failing", async () => {
    await Promise.allSettled(Object.values(moved));
    const spec = labSpec();
    const http = spec.virtualServices![0]!;
    http.realServers = http.realServers!.filter((r) => r.name !== "rs3").map((r) => (r.name === "rs2" ? { ...r, weight: 3 } : r));
    spec.realServers = spec.realServers!.filter((r) => r.name !== "rs3");
    writeStack(STACK, spec);

    const traffic = labRequests(VIP, 30);
    await new Promise((r) => setTimeout(r, 2000));
    const up = await pulumi("up");
    const answers = await traffic;
    ok(up);
    const changed = up.steps.filter((s) => s.type.startsWith(DYNAMIC) && s.op !== "same").map((s) => `${s.op} ${s.name}`);
    // The director lets rs3 go before rs3 is withdrawn; its release goes first (it holds nothing).
    expect(changed).toEqual(["update director", "delete rs3-release", "delete rs3"]);
    expect(answers.length).toBeGreaterThan(100);
    expect(answers.filter((a) => a.body === "FAILED")).toEqual([]);
    const table = await labExecOk("director", "ipvsadm -Sn");
    expect(table).not.toContain(LAB_ADDRESSES.realServer(3));
    expect(table).toMatch(new RegExp(`${LAB_ADDRESSES.realServer(2).replace(/\./g, "\\.")}:80 -g -w 3`));
    expect((await labExecOk("rs3", "ip -o addr show dev lo")).includes(VIP)).toBe(false);
    expect(await answeringServers()).toEqual(new Set(["rs1", "rs2", "rsvm1"]));
  }, 300_000);

  it("moved: a fresh clone in another directory refreshes, updates and destroys the stack", async () => {
    const { project: clone, backendDir } = await moved.clone;
    moveStackTo(clone, backendDir);

    await expectNoChange("refresh", { projectDir: clone, backendDir });
    await expectNoChange("up", { projectDir: clone, backendDir });
    const destroy = await pulumi("destroy", { projectDir: clone, backendDir });
    ok(destroy);
    expect(await hostSnapshots(HOSTS)).toEqual(pristine);
  }, 600_000);

  it("moved: a separate project that installed the packed package refreshes and destroys the stack", async () => {
    writeStack(STACK, labSpec());
    ok(await pulumi("destroy")); // the original state: its hosts are gone already
    ok(await pulumi("up"));

    const { project, backendDir } = await moved.consumer;
    moveStackTo(project, backendDir);

    await expectNoChange("refresh", { projectDir: project, backendDir });
    const preview = await expectNoChange("preview", { projectDir: project, backendDir });
    expect(preview.outputs.vips).toEqual([VIP]);

    // A bad spec handed to the component by someone else's program: every problem, in seconds.
    writeStack("test-broken", { ...labSpec(), directors: "nope" as unknown as ClusterInput["directors"] }, project);
    const broken = await pulumi("up", { projectDir: project, backendDir, stack: "test-broken" });
    expect(broken.ok).toBe(false);
    expect(broken.errors.join("\n")).toMatch(/cluster is not a valid cluster spec:\n {2}directors: must be a list, not a string/);
    expect(broken.ms).toBeLessThan(15_000);

    const destroy = await pulumi("destroy", { projectDir: project, backendDir });
    ok(destroy);
    expect(await hostSnapshots(HOSTS)).toEqual(pristine);
  }, 600_000);

  describe("a failing up reports the host and the cause in seconds", () => {
    async function failingUp(name: string, spec: ClusterInput): Promise<RunResult & { dials: number; ms: number }> {
      writeStack(name, spec);
      const backendDir = join(work, name);
      const up = await pulumi("up", { stack: name, backendDir });
      expect(up.ok).toBe(false);
      // Whatever the failed run created elsewhere is destroyed again from its state.
      ok(await pulumi("destroy", { stack: name, backendDir }));
      return up;
    }

    it("a bad spec: the field and the rule, before any host is contacted", async () => {
      const spec = labSpec();
      spec.virtualServices![0]!.port = 70000;
      const up = await failingUp("test-bad-spec", spec);
      expect(up.errors.join("\n")).toMatch(/virtualServices\[0\]\.port: must be at most 65535/);
      expect(up.dials).toBe(0);
      expect(up.ms).toBeLessThan(15_000);
    }, 120_000);

    it("an unreachable host: its name and why", async () => {
      const spec = labSpec();
      // Every real server, so that nothing is created and nothing needs destroying afterwards.
      spec.realServers!.forEach((r, i) => (r.connection = { host: `198.51.100.${91 + i}`, perDialTimeout: 2, dialErrorLimit: 2 }));
      const up = await failingUp("test-unreachable", spec);
      const message = up.errors.join("\n");
      expect(message).toMatch(/rs1: connect: cannot reach root@198\.51\.100\.91:22 after 2 attempt/);
      // Two 2 s dials and a backoff, then seconds for everything else.
      expect(up.ms).toBeLessThan(20_000);
    }, 120_000);

    it("a wrong host key: its name and both fingerprints", async () => {
      const spec = labSpec();
      spec.realServers!.forEach((r) => (r.connection = { hostKey: `SHA256:${"A".repeat(43)}` }));
      const up = await failingUp("test-wrong-key", spec);
      const message = up.errors.join("\n");
      expect(message).toMatch(
        new RegExp(`rs1: host-key: host key for ${LAB_ADDRESSES.realServer(1).replace(/\./g, "\\.")} does not match the pinned key: expected SHA256:A{43}, got SHA256:`),
      );
      expect(up.ms).toBeLessThan(15_000);
    }, 120_000);

    afterAll(async () => {
      expect(await hostSnapshots(HOSTS)).toEqual(pristine);
    });
  });
});
