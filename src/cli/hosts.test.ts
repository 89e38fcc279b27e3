/**
 * What the CLI tells an operator about runs on hosts, without the lab: the hosts are the lab's
 * as captured (test/fixtures/observe), reached through a fake transport (see
 * transport/testing/fake-transport.ts). The lab suite (test/lab/cli.test.ts) runs the same
 * commands on real hosts.
 */
import { join } from "node:path";
import { capturedLab, FakeTransport, labRips, type FakeHost } from "../transport/testing/fake-transport";
import { runCli } from "./main";

const stacksDir = join(__dirname, "../../stacks");

async function lvsdr(hosts: Record<string, FakeHost>, ...argv: string[]): Promise<{ code: number; out: string; err: string; transport: FakeTransport }> {
  let out = "";
  let err = "";
  const transport = new FakeTransport(hosts);
  const code = await runCli([...argv, "--stack", "lab", "--stacks-dir", stacksDir], {
    out: (s) => (out += s.endsWith("\n") ? s : `${s}\n`),
    err: (s) => (err += s.endsWith("\n") ? s : `${s}\n`),
    transport,
  });
  return { code, out, err, transport };
}

describe("lvsdr against captured hosts", () => {
  it("doctor: exit 2 with one block per error (host, check, setting, why, fix); --json lists the findings; a host not reached is exit 1", async () => {
    const flux = { director: { ...capturedLab().director!, fluxAnswers: { "198.51.100.5": ["02:00:c6:33:64:0b"] } } };
    const r = await lvsdr(capturedLab(flux), "doctor");
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^ERROR director: arp-flux: ARP for 198\.51\.100\.5 is answered by 02:00:c6:33:64:0b/m);
    expect(r.out).toMatch(/^ {2}setting: .*\n {2}why: .*\n {2}fix: /m);
    expect(r.transport.sent.filter((s) => s.kind === "apply")).toEqual([]);
    const json = JSON.parse((await lvsdr(capturedLab(flux), "doctor", "--json")).out) as {
      ok: boolean;
      errors: number;
      findings: { host: string; check: string; severity: string }[];
    };
    expect(json).toMatchObject({ ok: false, errors: 1, findings: [{ host: "director", check: "arp-flux", severity: "error" }] });
    const clean = await lvsdr(capturedLab(), "doctor");
    expect(clean.code).toBe(0);
    expect((await lvsdr(capturedLab({ rs2: { unreachable: "connect ECONNREFUSED" } }), "doctor")).code).toBe(1);
  });

  it("drift on fresh hosts: exit 2, every host named; --json has one entry per host", async () => {
    const r = await lvsdr(capturedLab(), "drift");
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/drift on 5 of 5 hosts/);
    const json = JSON.parse((await lvsdr(capturedLab(), "drift", "--json")).out) as {
      formatVersion: number;
      ok: boolean;
      hosts: { host: string; reached: boolean; clean: boolean }[];
    };
    expect(json).toMatchObject({ formatVersion: 1, ok: false });
    expect(json.hosts.map((h) => [h.host, h.reached, h.clean]).sort()).toEqual([
      ["director", true, false],
      ["rs1", true, false],
      ["rs2", true, false],
      ["rs3", true, false],
      ["rsvm1", true, false],
    ]);
  });

  it("plan --json gives each step as data: op, description, takesAway and the values it acts on; files by path and size, never their text", async () => {
    const r = await lvsdr(capturedLab(), "plan", "--json");
    expect(r.code).toBe(0);
    type StepJson = { op: string; description: string; takesAway: boolean; [field: string]: unknown };
    const json = JSON.parse(r.out) as { formatVersion: number; command: string; ok: boolean; waves: { wave: string; hosts: { host: string; steps: StepJson[] }[] }[] };
    expect(json).toMatchObject({ formatVersion: 1, command: "plan", ok: true });
    const steps = json.waves.flatMap((w) => w.hosts.flatMap((h) => h.steps.map((s): StepJson & { host: string } => ({ ...s, host: h.host }))));
    for (const step of steps) {
      expect(typeof step.description).toBe("string");
      expect(typeof step.takesAway).toBe("boolean");
    }
    const destination = steps.find((s) => s.host === "director" && s.op === "add-destination");
    expect(destination).toMatchObject({ takesAway: false, destination: { address: labRips.rs1, port: 80, forwarding: "dr", weight: expect.any(Number) } });
    expect(steps.find((s) => s.host === "rs1" && s.op === "add-address")).toMatchObject({ address: { interface: "lo", address: "198.51.100.5", prefix: 32 } });
    expect(steps.find((s) => s.host === "rs1" && s.op === "set-sysctl")).toMatchObject({ sysctl: { key: expect.stringMatching(/^net\/ipv4\/conf\//), value: expect.any(String) } });
    const file = steps.find((s) => s.op === "write-file")!;
    expect(file.file).toEqual({ path: expect.stringMatching(/^\//), mode: expect.stringMatching(/^0[0-7]+$/), bytes: expect.any(Number) });
    expect(JSON.stringify(steps.filter((s) => s.op === "write-file" || s.op === "write-keepalived-config"))).not.toContain("content");
  });

  it("apply with a real server not reached: the rest converge, exit 3, the host and the cause on stderr, outcome partial in --json", async () => {
    const down = capturedLab({ rs2: { unreachable: "connect ECONNREFUSED 198.51.100.11:22" } });
    const r = await lvsdr(down, "apply", "--yes");
    expect(r.code).toBe(3);
    expect(r.err).toContain(`warning: director: held back rs2 (tcp:198.51.100.5:80/${labRips.rs2}:80): it was not reached`);
    expect(r.err).toMatch(/^not reached: rs2: connect: connect ECONNREFUSED 198\.51\.100\.11:22$/m);
    expect(r.out).toMatch(/^apply: \d+ steps on 4 hosts in [\d.]+ s$/m);
    const json = JSON.parse((await lvsdr(down, "apply", "--yes", "--json")).out) as { ok: boolean; outcome: string; exitCode: number; plan: { notReached: { host: string }[] } };
    expect(json).toMatchObject({ ok: false, outcome: "partial", exitCode: 3, plan: { notReached: [{ host: "rs2" }] } });
  });

  it("apply with a real server whose prepare fails: the director goes on without it, exit 3, the failure and the hold-back on stderr", async () => {
    const r = await lvsdr(
      capturedLab({ rs2: { failAtStep: { step: 9, message: "mv: cannot overwrite directory '/etc/sysctl.d/90-lvs-dr.conf' with non-directory" } } }),
      "apply",
      "--yes",
    );
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^rs2 \(prepare-real-servers\) failed: exited 1 at step 9\/\d+ \(write \/etc\/sysctl\.d\/90-lvs-dr\.conf\): mv: cannot overwrite directory/m);
    expect(r.err).toContain(`warning: director: held back rs2 (tcp:198.51.100.5:80/${labRips.rs2}:80): its prepare failed;`);
    const director = r.transport.sent.filter((s) => s.host === "director" && s.kind === "apply").at(-1)!;
    expect(director.script).not.toContain(labRips.rs2);
  });
});
