/**
 * The lab as a TypeScript API, for tests, benchmarks and the demo.
 * The work is done by the bash scripts next to this file (lab/*.sh); this module spawns them and
 * reads what they write (.lab/hosts.json, .lab/known_hosts). Needs root (see lab/README.md).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export type LabRole = "director" | "real-server" | "client" | "router";

export interface LabSudoUser {
  user: string;
  privateKeyPath: string;
  passwordless: boolean;
}

export interface LabHost {
  name: string;
  role: LabRole;
  segment: "A" | "B";
  /** Where SSH connects (same as `ip`). */
  address: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKeyType: string;
  /** "ssh-ed25519 AAAA..." */
  hostKey: string;
  /** "SHA256:..." as `ssh-keygen -lf` prints it */
  hostKeyFingerprint: string;
  /** "<address> ssh-ed25519 AAAA..." */
  knownHostsLine: string;
  interface: string;
  ip: string;
  prefix: number;
  gateway: string | null;
  /** its address on segment A's IPv6 prefix (2001:db8:100::/64); null on segment B */
  ip6: string | null;
  mac: string;
  /** network namespace of a namespace host; null for a VM (directors, rsvm1) */
  namespace: string | null;
  sudoUser?: LabSudoUser;
}

export interface LabSegment {
  name: "A" | "B";
  cidr: string;
  prefix: number;
  gateway: string;
  /** segment A is dual-stack */
  cidr6?: string;
  gateway6?: string;
  bridge: string;
  namespace: string;
}

/** A qemu VM of the lab (Debian 12 with systemd): the directors and rsvm1. */
export interface LabVm {
  role: "director" | "real-server";
  mac: string;
  serialLogPath: string;
  /** QMP socket: a hard reset goes through it */
  qmpSocket: string;
  qemuPidFile: string;
  /** the VM's copy-on-write overlay of the cached image, for this lab:up only */
  diskPath: string;
}

export interface LabHosts {
  version: 1;
  createdAt: string;
  realServers: number;
  /** how many directors (LAB_DIRECTORS) */
  directors: number;
  vms: Record<string, LabVm>;
  privateKeyPath: string;
  publicKeyPath: string;
  knownHostsPath: string;
  vip: string;
  vipRange: { first: string; last: string };
  vip6: string;
  runner: { address: string; prefix: number; interface: string; routes: string[] };
  director: { serialLogPath: string; kernelVersion: string; mac: string; qemuPidFile: string };
  segments: LabSegment[];
  hosts: LabHost[];
}

/** Fixed addresses (the project hard-codes them in stacks/Pulumi.lab.yaml). */
export const LAB_ADDRESSES = {
  segmentA: "198.51.100.0/24",
  segmentB: "203.0.113.0/24",
  routerA: "198.51.100.1",
  routerB: "203.0.113.1",
  director: "198.51.100.2",
  /** the second director (LAB_DIRECTORS=2) */
  director2: "198.51.100.220",
  /** the real server that is a VM booting systemd */
  rsvm1: "198.51.100.230",
  vip: "198.51.100.5",
  client: "198.51.100.240",
  runner: "198.51.100.254",
  rsb1: "203.0.113.10",
  /** rsN is at 198.51.100.(9+N) */
  realServer: (n: number): string => `198.51.100.${9 + n}`,
  /** Segment A is dual-stack: each host's IPv6 address ends in its IPv4 last octet, written the same (198.51.100.10 -> 2001:db8:100::10). */
  segmentA6: "2001:db8:100::/64",
  routerA6: "2001:db8:100::1",
  vip6: "2001:db8:100::5",
  runner6: "2001:db8:100::254",
  ip6: (ipv4: string): string => `2001:db8:100::${ipv4.split(".")[3]}`,
} as const;

export const LAB_NAMESPACE_PREFIX = "lvslab-";
export const LAB_ROOT_LINK = "lvslab0";

function findRepoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, "lab", "up.sh"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`lab: cannot find lab/up.sh above ${__dirname}`);
    dir = up;
  }
}

export function labPaths(): { repo: string; scripts: string; state: string; cache: string; hostsJson: string; knownHosts: string } {
  const repo = findRepoRoot();
  const state = process.env.LAB_STATE ?? path.join(repo, ".lab");
  return {
    repo,
    scripts: path.join(repo, "lab"),
    state,
    cache: process.env.LAB_CACHE ?? path.join(repo, ".cache", "lab"),
    hostsJson: path.join(state, "hosts.json"),
    knownHosts: path.join(state, "known_hosts"),
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    }
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

async function script(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const p = labPaths();
  const r = await run("bash", [path.join(p.scripts, name), ...args], { env: { ...process.env, ...env } });
  return r;
}

async function scriptOrThrow(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await script(name, args, env);
  if (r.code !== 0) {
    const msg =
      (r.stderr
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("lab:"))
        .pop() ??
        r.stderr.trim()) ||
      `exit ${r.code}`;
    throw new Error(`lab/${name} failed: ${msg}\n${r.stderr}`);
  }
  return r;
}

/** Why the lab cannot run here, or null if it can (root and /dev/net/tun). */
export function labCannotRunReason(): string | null {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    return "the lab needs root (namespaces, bridges, a tap device): run `sudo npm run test:lab` / `sudo npm run lab:up`";
  }
  if (!fs.existsSync("/dev/net/tun")) return "/dev/net/tun is missing: the director VM needs a tap device";
  return null;
}

/** Installs Debian packages, the IPVS kernel and builds the VMs' Debian image (cached, idempotent). */
export async function ensurePrerequisites(): Promise<void> {
  await scriptOrThrow("prereqs.sh");
}

/** Brings the lab up (idempotent) and returns its hosts. */
export async function labUp(opts: { realServers?: number; directors?: number } = {}): Promise<LabHosts> {
  const env: NodeJS.ProcessEnv = {};
  if (opts.realServers !== undefined) env.LAB_REAL_SERVERS = String(opts.realServers);
  env.LAB_DIRECTORS = String(opts.directors ?? 1);
  await scriptOrThrow("up.sh", [], env);
  return loadLabHosts();
}

/** Takes the lab down: no namespace, link, process or mount of the lab is left. */
export async function labDown(): Promise<void> {
  await closeSharedConnections();
  await scriptOrThrow("down.sh");
}

export interface LabStatus {
  /** "up" = every host answers; "degraded" = partly there; "down" = nothing of the lab exists */
  state: "up" | "degraded" | "down";
  report: string;
}

export async function labStatus(): Promise<LabStatus> {
  const r = await script("status.sh");
  const state = r.code === 0 ? "up" : r.code === 3 ? "down" : "degraded";
  return { state, report: r.stdout + r.stderr };
}

export function loadLabHosts(file: string = labPaths().hostsJson): LabHosts {
  if (!fs.existsSync(file)) throw new Error(`lab: ${file} not found: is the lab up? (sudo npm run lab:up)`);
  return JSON.parse(fs.readFileSync(file, "utf8")) as LabHosts;
}

export function labHost(name: string, hosts: LabHosts = loadLabHosts()): LabHost {
  const h = hosts.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`lab: no host named ${name}`);
  return h;
}

export interface LabExecOptions {
  /** login user; default the host's user (root) */
  user?: string;
  /** known_hosts to pin against; default .lab/known_hosts */
  knownHostsPath?: string;
  /** data for the remote command's stdin */
  input?: string;
  timeoutMs?: number;
}

/** Runs one command on a lab host over real SSH with the pinned host key (system `ssh`). */
export async function labExec(hostName: string, command: string, opts: LabExecOptions = {}): Promise<RunResult> {
  const hosts = loadLabHosts();
  const h = labHost(hostName, hosts);
  const args = [
    "-F",
    "/dev/null",
    ...(opts.user === undefined && opts.knownHostsPath === undefined ? sharedConnection() : []),
    "-i",
    h.privateKeyPath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${opts.knownHostsPath ?? hosts.knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-p",
    String(h.port),
    `${opts.user ?? h.user}@${h.address}`,
    command,
  ];
  return run("ssh", args, { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
}

/**
 * OpenSSH connection sharing for the lab's own commands: a handshake with a VM costs about 0.9 s
 * under emulation, a session on a shared connection 0.1 s, and the suites run hundreds. A shared
 * connection to a host that reboots, is reset or frozen dies within seconds (server-alive checks),
 * and the next command opens a new one. A command with its own user or known_hosts file never
 * shares: those test the handshake itself. The tool's own transport (ssh2) never shares.
 */
function sharedConnectionDir(): string {
  return path.join(os.tmpdir(), `lvslab-ssh-${process.getuid?.() ?? 0}`);
}

function sharedConnection(): string[] {
  const dir = sharedConnectionDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return ["-o", "ControlMaster=auto", "-o", `ControlPath=${dir}/%C`, "-o", "ControlPersist=30", "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=2"];
}

/** Ends every shared connection (they would end by themselves 30 s after their last use). */
async function closeSharedConnections(): Promise<void> {
  const dir = sharedConnectionDir();
  if (!fs.existsSync(dir)) return;
  for (const socket of fs.readdirSync(dir)) {
    await run("ssh", ["-F", "/dev/null", "-o", `ControlPath=${path.join(dir, socket)}`, "-O", "exit", "lab"], { timeoutMs: 5_000 });
  }
}

/** Like labExec, but throws unless the command exits 0; returns stdout. */
export async function labExecOk(hostName: string, command: string, opts: LabExecOptions = {}): Promise<string> {
  const r = await labExec(hostName, command, opts);
  if (r.code !== 0) throw new Error(`lab: '${command}' on ${hostName} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface LabLeftovers {
  namespaces: string[];
  links: string[];
  mounts: string[];
  routes: string[];
}

/** What of the lab exists on the machine right now (all empty after labDown). */
export async function labLeftovers(): Promise<LabLeftovers> {
  const ns = await run("ip", ["netns", "list"]);
  const links = await run("ip", ["-o", "link", "show"]);
  const routes = await run("ip", ["route", "show"]);
  const mountinfo = fs.readFileSync("/proc/self/mountinfo", "utf8");
  return {
    namespaces: ns.stdout
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter((n) => n.startsWith(LAB_NAMESPACE_PREFIX)),
    links: links.stdout.split("\n").filter((l) => l.includes(LAB_ROOT_LINK) || l.includes(LAB_NAMESPACE_PREFIX)),
    mounts: mountinfo.split("\n").filter((l) => l.includes("lvslab")),
    routes: routes.stdout.split("\n").filter((l) => l.startsWith("203.0.113.") || l.startsWith("198.51.100.")),
  };
}

/** PIDs the lab recorded under .lab/pids (qemu, every sshd and httpd). */
export function labRecordedPids(): Map<string, number> {
  const dir = path.join(labPaths().state, "pids");
  const out = new Map<string, number>();
  if (!fs.existsSync(dir)) return out;
  for (const f of fs.readdirSync(dir)) {
    const pid = Number.parseInt(fs.readFileSync(path.join(dir, f), "utf8").trim(), 10);
    if (Number.isInteger(pid) && pid > 0) out.set(f.replace(/\.pid$/, ""), pid);
  }
  return out;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The VM behind a lab host (a director or rsvm1); throws for a namespace host. */
export function labVm(name: string, hosts: LabHosts = loadLabHosts()): LabVm {
  const vm = hosts.vms[name];
  if (!vm) throw new Error(`lab: ${name} is not a VM (the VMs: ${Object.keys(hosts.vms).join(", ")})`);
  return vm;
}

/** The kernel's id of the current boot: it changes with every boot, so a reboot can be told from a slow answer. */
export async function labBootId(name: string): Promise<string> {
  return (await labExecOk(name, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 20_000 })).trim();
}

/** A real reboot from inside the guest (`systemctl reboot`): services stop, file systems unmount. */
export async function labVmReboot(name: string): Promise<void> {
  labVm(name);
  // The session ends with the guest's network: its exit status says nothing.
  await labExec(name, "systemctl reboot", { timeoutMs: 20_000 });
}

/** A hard reset of the VM (QMP system_reset): the power button, nothing in the guest gets to run. */
export async function labVmReset(name: string): Promise<void> {
  await qmp(labVm(name).qmpSocket, "system_reset");
}

/** Freezes the VM (QMP stop): to the network it is dead at once, with no goodbye (no VRRP priority 0, no FIN). */
export async function labVmFreeze(name: string): Promise<void> {
  await qmp(labVm(name).qmpSocket, "stop");
}

/** Brings a frozen VM back as a fresh boot: reset while stopped, then run (the killed host powered on again). */
export async function labVmPowerOnAfterFreeze(name: string): Promise<void> {
  await qmp(labVm(name).qmpSocket, "system_reset");
  await qmp(labVm(name).qmpSocket, "cont");
}

/** Sends one QMP command and resolves once qemu answered it. */
function qmp(socket: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    let buffer = "";
    let sent = false;
    const timer = setTimeout(() => fail(new Error(`lab: no answer from qemu on ${socket}`)), 10_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      conn.destroy();
      reject(e);
    };
    conn.on("error", fail);
    conn.on("data", (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buffer.slice(0, nl)) as { QMP?: unknown; return?: unknown; error?: { desc: string } };
        buffer = buffer.slice(nl + 1);
        if (msg.error) return fail(new Error(`lab: qemu refused ${command}: ${msg.error.desc}`));
        if (msg.QMP) conn.write(JSON.stringify({ execute: "qmp_capabilities" }) + "\n");
        else if (msg.return !== undefined && !sent) {
          sent = true;
          conn.write(JSON.stringify({ execute: command }) + "\n");
        } else if (msg.return !== undefined) {
          clearTimeout(timer);
          conn.end();
          resolve();
        }
      }
    });
  });
}

/**
 * Waits until the host answers SSH from a boot other than `previousBootId`, and returns the new
 * boot's id and how long it took.
 */
export async function labWaitForNewBoot(name: string, previousBootId: string, timeoutMs = 180_000): Promise<{ bootId: string; ms: number }> {
  const start = Date.now();
  for (;;) {
    const r = await labExec(name, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 5_000 });
    const id = r.stdout.trim();
    if (r.code === 0 && id !== "" && id !== previousBootId) return { bootId: id, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs) throw new Error(`lab: ${name} did not come back from its reboot within ${timeoutMs / 1000} s (serial log: ${labVm(name).serialLogPath})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Stops or starts one real server's HTTP server by itself (the host and its SSH stay up): the
 * health-check tests make a real server fail its check this way. A VM's is its systemd unit; a
 * namespace host's is the busybox httpd that host-init.sh started, recorded in its pid file.
 */
export async function labHttpd(name: string, action: "stop" | "start", hosts: LabHosts = loadLabHosts()): Promise<void> {
  const host = labHost(name, hosts);
  if (host.role !== "real-server") throw new Error(`lab: ${name} is not a real server`);
  const listening = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null";
  if (hosts.vms[name]) {
    await labExecOk(name, `systemctl ${action} lvslab-httpd`);
  } else if (action === "stop") {
    // Whatever listens on port 80 in this host's network namespace (the recorded pid may be stale).
    await labExecOk(
      name,
      `p=$(ss -Hltnp 'sport = :80' | sed -n 's/.*pid=\\([0-9]*\\).*/\\1/p' | head -1) && [ -n "$p" ] && kill "$p" && while [ -d "/proc/$p" ]; do sleep 0.05; done`,
    );
  } else {
    // Started only if nothing listens: a second httpd could not bind, and would leave a dead pid recorded.
    const pid = (
      await labExecOk(
        name,
        `if ${listening}; then cat /run/lvslab/state/httpd.pid; else setsid busybox httpd -f -p 80 -h /run/lvslab/www </dev/null >/dev/null 2>&1 & echo $! > /run/lvslab/state/httpd.pid; echo $!; fi`,
      )
    ).trim();
    fs.writeFileSync(path.join(labPaths().state, "pids", `${name}.httpd.pid`), `${pid}\n`);
  }
  // Back (or gone) when the port says so, not when the command returned.
  const want = action === "start" ? "0" : "1";
  await labExecOk(name, `for i in $(seq 100); do r=0; ${listening} || r=1; [ "$r" = ${want} ] && exit 0; sleep 0.1; done; exit 1`);
}

/**
 * Stops or starts a namespace host's sshd by itself (its files, addresses and HTTP server stay):
 * a host the tool cannot reach, with the rest of the cluster up. The new sshd joins the host's
 * namespaces through a process still in them (its HTTP server, or any other in its network
 * namespace with its own mount namespace), and its pid is recorded so `lab:down` ends it.
 */
export async function labSshd(name: string, action: "stop" | "start", hosts: LabHosts = loadLabHosts()): Promise<void> {
  const host = labHost(name, hosts);
  if (host.namespace === null || host.role !== "real-server") throw new Error(`lab: ${name} is not a namespace real server`);
  const p = labPaths();
  const pidFile = path.join(p.state, "pids", `${name}.sshd.pid`);
  const answers = () =>
    new Promise<boolean>((done) => {
      const s = net.connect({ host: host.address, port: host.port, timeout: 1000 });
      s.once("connect", () => (s.destroy(), done(true)));
      s.once("error", () => done(false));
      s.once("timeout", () => (s.destroy(), done(false)));
    });
  if (action === "stop") {
    const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
    if (pidAlive(pid)) process.kill(pid, "SIGTERM");
  } else if (!(await answers())) {
    const ownMount = fs.readlinkSync("/proc/self/ns/mnt");
    const inHost = (pid: string) => pidAlive(Number(pid)) && fs.readlinkSync(`/proc/${pid}/ns/mnt`) !== ownMount;
    const recorded = fs.readFileSync(path.join(p.state, "pids", `${name}.httpd.pid`), "utf8").trim();
    const listed = (await run("ip", ["netns", "pids", host.namespace])).stdout
      .split("\n")
      .map((s) => s.trim())
      .filter(Boolean);
    const httpd = [recorded, ...listed].find((pid) => {
      try {
        return inHost(pid);
      } catch {
        return false;
      }
    });
    if (!httpd) throw new Error(`lab: no process is left in ${name}'s namespaces to start its sshd in`);
    const log = fs.openSync(path.join(p.state, "hosts", name, "host.log"), "a");
    // nsenter execs sshd in the namespaces it entered: its pid is sshd's. Inside, the host's state
    // directory is where host-init.sh bound it (the real one may be hidden: the host has its own /tmp).
    const child = spawn("nsenter", ["-t", httpd, "-m", "-u", "-n", "/usr/sbin/sshd", "-D", "-e", "-f", "/run/lvslab/state/sshd_config"], {
      detached: true,
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    child.unref();
    fs.writeFileSync(pidFile, `${child.pid}\n`);
  }
  const want = action === "start";
  for (let i = 0; i < 100; i++) {
    if ((await answers()) === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const logTail = fs
    .readFileSync(path.join(p.state, "hosts", name, "host.log"), "utf8")
    .trim()
    .split("\n")
    .slice(-5)
    .join(" | ");
  throw new Error(`lab: ${name}'s sshd did not ${action} (port ${host.port} ${want ? "still closed" : "still open"}); its log ends: ${logTail}`);
}
