/**
 * The engine without the lab: hosts answer with observations captured from the lab's real hosts
 * (test/fixtures/observe), through a fake transport that runs no script. What is proven here is
 * the engine's part: which scripts go to which host in which order, what is held back and why.
 * The lab suites prove what the scripts do on hosts.
 */
import { join } from "node:path";
import { loadCluster } from "../config/load";
import { capturedLab as labHosts, FakeTransport, labRips as RIPS } from "../transport/testing/fake-transport";
import { ApplyError, ClusterRun } from "./engine";

const cluster = loadCluster({ stack: "lab", stacksDir: join(__dirname, "../../stacks") });

function runOn(transport: FakeTransport): ClusterRun {
  return new ClusterRun(cluster, { transport });
}

const appliedTo = (t: FakeTransport, host: string) => t.sent.filter((s) => s.host === host && s.kind === "apply");

describe("the engine against captured hosts (fake transport)", () => {
  it("prepares every real server before the director registers them; the director's script waits, held, until they are done", async () => {
    const transport = new FakeTransport(labHosts());
    const run = runOn(transport);
    const report = await run.apply().finally(() => run.close());
    // Sent with the real servers' wave (its round trip overlaps theirs), let go once they ended.
    const [director, ...more] = appliedTo(transport, "director");
    expect(more).toEqual([]);
    const realServers = Object.keys(RIPS).flatMap((h) => appliedTo(transport, h));
    expect(realServers).toHaveLength(4);
    expect(director!.told).toBe("go");
    expect(director!.toldAt).toBeGreaterThan(Math.max(...realServers.map((s) => s.endedAt!)));
    for (const rip of Object.values(RIPS)) expect(director!.script).toContain(`-r ${rip}:80 -g -w 1`);
    expect(report.applied.map((a) => `${a.host} ${a.wave}`).sort()).toEqual([
      "director directors",
      "rs1 prepare-real-servers",
      "rs2 prepare-real-servers",
      "rs3 prepare-real-servers",
      "rsvm1 prepare-real-servers",
    ]);
    expect(report.failures).toEqual([]);
  });

  it("before a director takes a VIP, asks the segment once who answers for it; another host's answer is a preflight problem naming its MAC", async () => {
    const quiet = new FakeTransport(labHosts());
    const run = runOn(quiet);
    const { problems } = await run.plan().finally(() => run.close());
    expect(problems).toEqual([]);
    const probes = quiet.sent.filter((s) => s.kind === "doctor-probe");
    expect(probes.map((s) => s.host)).toEqual(["director"]);
    // Once, waiting 1 s: the preflight holds up the change (the doctor asks twice).
    expect(probes[0]!.script).toContain("arping -i eth0 -c 1 -w 1 198.51.100.5");

    const flux = new FakeTransport(labHosts({ director: { fluxAnswers: { "198.51.100.5": ["02:00:c6:33:64:99"] } } }));
    const again = runOn(flux);
    const found = await again.plan().finally(() => again.close());
    expect(found.problems).toEqual([
      { host: "director", check: "arp-flux", message: expect.stringMatching(/^ARP for 198\.51\.100\.5 is answered by 02:00:c6:33:64:99, a host outside this cluster \(fix: /) },
    ]);
  });

  it("a real server not reached: the others are planned, the director holds it back, and the plan says who and why", async () => {
    const transport = new FakeTransport(labHosts({ rs2: { unreachable: "connect ECONNREFUSED 198.51.100.11:22" } }));
    const run = runOn(transport);
    const { plan } = await run.plan({ partial: true }).finally(() => run.close());
    expect(plan.notReached).toEqual([{ host: "rs2", message: expect.stringContaining("ECONNREFUSED") }]);
    expect(plan.heldBack).toEqual([expect.objectContaining({ director: "director", realServer: "rs2", reason: expect.stringMatching(/^it was not reached/) })]);
    const directorSteps = plan.waves.find((w) => w.wave === "directors")!.hosts[0]!.steps;
    expect(directorSteps.filter((s) => s.op === "add-destination").map((s) => (s.op === "add-destination" ? s.destination.address : ""))).toEqual([RIPS.rs1, RIPS.rs3, RIPS.rsvm1]);
    // Without `partial`, one host not reached is an error and nothing is planned.
    const strict = runOn(new FakeTransport(labHosts({ rs2: { unreachable: "connect ECONNREFUSED" } })));
    await expect(strict.plan().finally(() => strict.close())).rejects.toThrow(/rs2/);
  });

  it("a dual-stack real server not reached is held back in both families", async () => {
    const dual = loadCluster({ stack: "lab-v6", stacksDir: join(__dirname, "../../stacks") });
    const run = new ClusterRun(dual, { transport: new FakeTransport(labHosts({ rs2: { unreachable: "connect ECONNREFUSED 198.51.100.11:22" } })) });
    const { plan } = await run.plan({ partial: true }).finally(() => run.close());
    const added = plan.waves.find((w) => w.wave === "directors")!.hosts[0]!.steps.flatMap((s) => (s.op === "add-destination" ? [s.destination.address] : []));
    expect(added).toEqual([RIPS.rs1, RIPS.rs3, RIPS.rsvm1, "2001:db8:100::10", "2001:db8:100::12", "2001:db8:100::230"]);
    expect(plan.heldBack.map((h) => [h.realServer, h.destination])).toEqual([
      ["rs2", `tcp:198.51.100.5:80/${RIPS.rs2}:80`],
      ["rs2", "tcp:[2001:db8:100::5]:80/[2001:db8:100::11]:80"],
    ]);
  });

  it("a real server whose prepare fails stops the run by default; the director's held script is told to stop", async () => {
    const transport = new FakeTransport(labHosts({ rs2: { failAtStep: { step: 8, message: "mv: cannot overwrite directory" } } }));
    const run = runOn(transport);
    const error = await run
      .apply()
      .finally(() => run.close())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplyError);
    expect((error as ApplyError).failures).toEqual([{ host: "rs2", wave: "prepare-real-servers", message: expect.stringContaining("mv: cannot overwrite directory") }]);
    expect(appliedTo(transport, "director").map((s) => s.told)).toEqual(["stop"]);
  });

  it("with goOnWithoutFailed, the director is planned again from a new observation without it, and the report names it", async () => {
    const transport = new FakeTransport(labHosts({ rs2: { failAtStep: { step: 8, message: "mv: cannot overwrite directory" } } }));
    const run = runOn(transport);
    const report = await run.plan().then(({ plan }) => run.applyPlanned(plan, { goOnWithoutFailed: true }).finally(() => run.close()));
    expect(report.failures).toEqual([{ host: "rs2", wave: "prepare-real-servers", message: expect.stringContaining("at step 8/") }]);
    expect(report.heldBack).toEqual([expect.objectContaining({ director: "director", realServer: "rs2", reason: "its prepare failed" })]);
    // Held, then stopped; then the new plan's script, which registers the others only.
    const scripts = appliedTo(transport, "director");
    expect(scripts.map((s) => s.told)).toEqual(["stop", undefined]);
    expect(scripts[1]!.script).not.toContain(`-r ${RIPS.rs2}:80`);
    for (const rip of [RIPS.rs1, RIPS.rs3, RIPS.rsvm1]) expect(scripts[1]!.script).toContain(`-r ${rip}:80 -g -w 1`);
    expect(transport.sent.filter((s) => s.host === "director" && s.kind === "observe")).toHaveLength(2);
    expect(appliedTo(transport, "rs2")).toHaveLength(1);
  });
});
