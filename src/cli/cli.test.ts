import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printable, processIo } from "./io";
import { runCli } from "./main";

const stacksDir = join(__dirname, "../../stacks");

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { out: (s) => (out += s.endsWith("\n") ? s : `${s}\n`), err: (s) => (err += s.endsWith("\n") ? s : `${s}\n`) });
  return { code, out, err };
}

function specFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "lvsdr-cli-"));
  const path = join(dir, "cluster.yaml");
  writeFileSync(path, text);
  return path;
}

describe("lvsdr validate", () => {
  it.each(["lab", "dev", "prod"])("accepts stacks/Pulumi.%s.yaml with a one-line summary", async (stack) => {
    const r = await cli("validate", "--stack", stack, "--stacks-dir", stacksDir);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      new RegExp(`^ok: .*Pulumi\\.${stack}\\.yaml: cluster ${stack}: \\d+ directors?, \\d+ real servers?, \\d+ virtual services? \\(\\d+ destinations?\\)\\n$`),
    );
  });

  const bad = `
directors: [{ name: lb, interface: "eth0;reboot", dip: 198.51.100.2/24, connection: { hostKey: "SHA256:${"A".repeat(43)}" } }]
realServers: [{ name: web, rip: 203.0.113.9, connection: { hostKey: "SHA256:${"B".repeat(43)}" } }]
virtualServices: [{ name: http, vip: 198.51.100.5, protocol: tcp, port: 80, realServers: [{ name: web, port: 8080 }] }]
`;

  it("prints every problem as path: message and exits 1", async () => {
    const r = await cli("validate", "--file", specFile(bad));
    expect(r.code).toBe(1);
    expect(r.err).toContain("directors[0].interface: must be a Linux interface name");
    expect(r.err).toContain('virtualServices[0].realServers[0].name: RIP 203.0.113.9 of real server "web" is outside director "lb"\'s subnet 198.51.100.0/24');
    expect(r.err).toContain("virtualServices[0].realServers[0].port: is 8080 but the service port is 80");
    expect(r.err).toMatch(/: 3 problems\n$/);
  });

  it("names an unknown key in the path, suggests the key meant, and gives the line and column of each problem", async () => {
    const file = specFile(`name: t
connectionDefaults: { user: root, privateKeyPath: k, knownHostsFile: kh }
directors: [{ name: lb, interface: eth0, dip: 198.51.100.2/24 }]
realServers: [{ name: web, rip: 198.51.100.9 }]
virtualServices:
  - name: http
    vip: 198.51.100.5
    protocol: tcp
    port: 70000
    realservers: [{ name: web }]
    healthCheck: { type: http, pathh: /health }
`);
    const r = await cli("validate", "--file", file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${file}:9:11: virtualServices[0].port: must be at most 65535`);
    expect(r.err).toContain(`${file}:10:18: virtualServices[0].realservers: unknown key; did you mean realServers?`);
    expect(r.err).toMatch(new RegExp(`${file}:11:\\d+: virtualServices\\[0\\]\\.healthCheck\\.pathh: unknown key; did you mean path\\?`));
    const json = JSON.parse((await cli("validate", "--file", file, "--json")).out) as { issues: { path: string; line?: number; column?: number }[] };
    expect(json.issues.find((i) => i.path === "virtualServices[0].port")).toMatchObject({ line: 9, column: 11 });
  });

  it("lists the keys allowed where an unknown key is nothing like any of them", async () => {
    const r = await cli("validate", "--file", specFile(`name: t\ndirectors: [{ name: lb, interface: eth0, dip: 198.51.100.2/24, colour: blue }]\n`));
    expect(r.err).toMatch(/directors\[0\]\.colour: unknown key; the keys here are name, .*interface.*dip/);
  });

  it("--json prints { formatVersion, command, ok, source, total, issues: [{ path, message }] }", async () => {
    const r = await cli("validate", "--file", specFile(bad), "--json");
    expect(r.code).toBe(1);
    const json = JSON.parse(r.out) as { ok: boolean; total: number; issues: { path: string; message: string }[] };
    expect(json.ok).toBe(false);
    expect(json).toMatchObject({ total: 3 });
    expect(json.issues.map((i) => i.path)).toEqual(["directors[0].interface", "virtualServices[0].realServers[0].name", "virtualServices[0].realServers[0].port"]);
    const good = JSON.parse((await cli("validate", "--stack", "lab", "--stacks-dir", stacksDir, "--json")).out);
    expect(good).toEqual({
      formatVersion: 1,
      command: "validate",
      ok: true,
      source: join(stacksDir, "Pulumi.lab.yaml"),
      summary: expect.stringMatching(/^cluster lab: /),
      total: 0,
      issues: [],
    });
  });

  it("explains what is wrong with the command line and the file itself", async () => {
    expect((await cli("validate")).err).toContain("--stack/--file: is required");
    expect((await cli("validate", "--stack", "lab", "--file", "x.yaml")).err).toContain("give one of --stack NAME or --file PATH, not both");
    expect((await cli("validate", "--stack", "../etc/passwd")).err).toContain("--stack: must be a stack name");
    expect((await cli("validate", "--file", "/nonexistent/spec.yaml")).err).toContain("/nonexistent/spec.yaml: cannot be read: no such file");
    // A relative path as written and as resolved.
    expect((await cli("validate", "--file", "nonexistent.yaml")).err).toContain(`nonexistent.yaml: cannot be read (${join(process.cwd(), "nonexistent.yaml")}): no such file`);
    const yamlError = await cli("validate", "--file", specFile("directors: [\n  - name: x\n   bad: indent\n"));
    expect(yamlError.code).toBe(1);
    expect(yamlError.err).toMatch(/YAML syntax error at line \d/);
    const noKey = await cli("validate", "--file", specFile("config:\n  other:key: 1\n"));
    expect(noKey.err).toContain("config.lvs-dr:cluster: is missing");
  });
});

describe("every command", () => {
  it.each(["validate", "plan", "apply", "drift", "destroy"])("%s --help shows an example", async (command) => {
    const r = await cli(command, "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`Examples:\n  lvsdr ${command} --stack`);
  });

  it("an unknown command or option exits 1", async () => {
    expect((await cli("frobnicate")).code).toBe(1);
    expect((await cli("drift", "--stak", "lab")).code).toBe(1);
  });

  it("refuses a bad --concurrency before contacting any host", async () => {
    const r = await cli("plan", "--stack", "dev", "--stacks-dir", stacksDir, "--concurrency", "0");
    expect(r.code).toBe(1);
    expect(r.err).toContain("--concurrency: must be a positive integer");
  });

  it("says when a needed secret is encrypted in the stack file and only Pulumi can read it", async () => {
    const r = await cli("drift", "--stack", "prod", "--stacks-dir", stacksDir, "--host", "prod-lb1");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/prod-lb1.*encrypted/);
  });
});

describe("conventions", () => {
  it("--version prints the package's version", async () => {
    const r = await cli("--version");
    expect(r.code).toBe(0);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(r.out.trim()).toBe((require("../../package.json") as { version: string }).version);
  });

  it("a --stack that does not exist says where it looked and lists the stacks that do", async () => {
    const r = await cli("validate", "--stack", "staging", "--stacks-dir", stacksDir);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `--stack: no stack "staging": ${join(stacksDir, "Pulumi.staging.yaml")} (${join(stacksDir, "Pulumi.staging.yaml")}) does not exist; the stacks in ${stacksDir}: dev, lab, lab-ha, lab-v6, prod`,
    );
  });

  it("help shows the defaults", async () => {
    const r = await cli("apply", "--help");
    expect(r.out).toContain('(default: "stacks")');
    expect(r.out).toContain("(default: 32)");
  });

  it("text from hosts loses terminal escape sequences and control characters before it is printed", () => {
    expect(printable("step 1/2 \x1b[31mred\x1b[0m\x1b]0;owned\x07 done\r\x08\n\tnext")).toBe("step 1/2 red done\n\tnext");
    const written: string[] = [];
    const spy = jest.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      processIo.err("rs1: warning: \x1b[2Jcleared");
    } finally {
      spy.mockRestore();
    }
    expect(written).toEqual(["rs1: warning: cleared\n"]);
  });
});

describe("hosts that cannot be reached (no lab: every host's SSH port is closed)", () => {
  // Every host on a loopback address's port 1, where nothing listens: each is refused at once.
  const spec = (shared: string) => `
name: nowhere
connectionDefaults: { ${shared}, trustOnFirstUse: true, dialErrorLimit: 2 }
directors: [{ name: lb, interface: eth0, dip: 198.51.100.2/24, connection: { host: 127.0.0.1 } }]
realServers:
  - { name: web1, rip: 198.51.100.10, connection: { host: 127.0.0.2 } }
  - { name: web2, rip: 198.51.100.11, connection: { host: 127.0.0.3 } }
virtualServices: [{ name: http, vip: 198.51.100.5, protocol: tcp, port: 80, realServers: [{ name: web1 }, { name: web2 }] }]
`;
  const unreachable = specFile(spec("port: 1, user: root, password: x"));
  // The same cause on every host: a key file that does not exist.
  const keyless = specFile(spec("port: 1, user: root, privateKeyPath: no-such-key"));

  it("drift --json has one entry per host, each not reached with its cause, and exits 1; each failed dial is reported as it happens", async () => {
    const r = await cli("drift", "--file", unreachable, "--json");
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.out) as { formatVersion: number; command: string; ok: boolean; clean: boolean; hosts: { host: string; reached: boolean; error?: string }[] };
    expect(doc).toMatchObject({ formatVersion: 1, command: "drift", ok: false, clean: false });
    expect(doc.hosts.map((h) => [h.host, h.reached]).sort()).toEqual([
      ["lb", false],
      ["web1", false],
      ["web2", false],
    ]);
    for (const h of doc.hosts) expect(h.error).toMatch(/^connect: cannot reach root@127\.0\.0\.\d:1 after 2 attempt\(s\): connect ECONNREFUSED/);
    for (const [host, n] of [
      ["lb", 1],
      ["web1", 2],
      ["web2", 3],
    ])
      expect(r.err).toContain(`${host}: connect attempt 1 of 2 failed: connect ECONNREFUSED 127.0.0.${n}:1; trying again in 0.3 s`);
  });

  it("drift in text prints each cause once, with the hosts it hit", async () => {
    const r = await cli("drift", "--file", keyless);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`not reached: lb, web1, web2: resolve-credentials: cannot read privateKeyPath no-such-key (${join(process.cwd(), "no-such-key")}): ENOENT\n`);
    const apart = await cli("drift", "--file", unreachable);
    expect(apart.err).toContain("not reached: web1: connect: cannot reach root@127.0.0.2:1");
  });

  it("plan --json names the hosts not reached and exits 1; apply --json changes nothing and says the outcome was partial (exit 3)", async () => {
    const plan = await cli("plan", "--file", unreachable, "--json");
    expect(plan.code).toBe(1);
    const doc = JSON.parse(plan.out) as { formatVersion: number; command: string; ok: boolean; empty: boolean; notReached: { host: string; message: string }[]; waves: unknown[] };
    expect(doc).toMatchObject({ formatVersion: 1, command: "plan", ok: false, empty: true, waves: [] });
    expect(doc.notReached.map((n) => n.host)).toEqual(["lb", "web1", "web2"]);
    const apply = await cli("apply", "--file", unreachable, "--json", "--yes");
    expect(apply.code).toBe(3);
    expect(JSON.parse(apply.out)).toMatchObject({ formatVersion: 1, command: "apply", ok: false, outcome: "partial", exitCode: 3, plan: { empty: true } });
  });

  it("--json errors are one document too, naming the command", async () => {
    const r = await cli("drift", "--file", "/nonexistent/spec.yaml", "--json");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ formatVersion: 1, command: "drift", ok: false, issues: [{ path: "(file)", message: "cannot be read: no such file" }] });
  });
});
