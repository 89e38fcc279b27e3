/** The lvsdr command line against the lab, as users and cron jobs run it: bin/lvsdr in a child process. */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { LAB_ADDRESSES, labExecOk, labSshd } from "../../lab";
import { readClusterValue } from "../../src/config/load";
import { hostSnapshots, lvsdr, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

describeLab("lvsdr on the lab", () => {
  beforeAll(() => {
    const r = lvsdr("destroy", "--stack", "lab", "--yes");
    if (r.code !== 0) throw new Error(`could not reset the lab: ${r.stderr}`);
  }, 180_000);
  // The next suite finds the hosts as this one found them, whatever order jest picks.
  afterAll(() => {
    lvsdr("destroy", "--stack", "lab", "--yes");
  }, 180_000);

  it("drift on untouched hosts exits 2 and names what is missing", () => {
    const r = lvsdr("drift", "--stack", "lab");
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^director\s+missing\s+service\s+tcp:198\.51\.100\.5:80\s/m);
    expect(r.stdout).toContain("drift on 5 of 5 hosts: director, rs1, rs2, rs3, rsvm1");
  }, 120_000);

  it("plan --json shows the waves without changing anything", () => {
    const r = lvsdr("plan", "--stack", "lab", "--json");
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      empty: boolean;
      waves: { wave: string; hosts: { host: string; steps: { op: string; description: string }[] }[] }[];
      drift: { clean: boolean };
      preflight: unknown[];
    };
    expect(plan.empty).toBe(false);
    expect(plan.waves.map((w) => w.wave)).toEqual(["prepare-real-servers", "directors"]);
    // The director's record first, then its IPVS settings, then its table.
    const directorOps = plan.waves[1]!.hosts[0]!.steps.map((s) => s.op);
    expect(directorOps[0]).toBe("record-ownership");
    expect(plan.waves[1]!.hosts[0]!.steps.find((s) => s.op === "add-service")).toEqual({
      op: "add-service",
      description: "add virtual service tcp:198.51.100.5:80 scheduler rr",
      takesAway: false,
      service: { protocol: "tcp", family: 4, address: "198.51.100.5", port: 80, fwmark: 0, scheduler: "rr", flags: [], persistence: null },
    });
    expect(directorOps.indexOf("set-sysctl")).toBeLessThan(directorOps.indexOf("add-service"));
    expect(plan.drift.clean).toBe(false);
    expect(plan.preflight).toEqual([]);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(2);
    expect(lvsdr("plan", "--stack", "lab", "--detailed-exitcode").code).toBe(2);
  }, 120_000);

  it("apply asks first: without --yes and no terminal it says what it would change and changes nothing", () => {
    const r = lvsdr("apply", "--stack", "lab");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("1. real servers made ready");
    expect(r.stderr).toMatch(/^apply would change live hosts: \d+ steps on 5 hosts; nothing was changed: re-run with --yes to go ahead$/m);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(2);
  }, 120_000);

  it("apply shows progress per host and a summary; then drift exits 0", () => {
    const r = lvsdr("apply", "--stack", "lab", "--yes");
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^rs1: step 1\/\d+ record what lvs-dr manages on this host$/m);
    expect(r.stderr).toMatch(/^rs1: step 2\/\d+ set net\/ipv4\/conf\/all\/arp_ignore = 1/m);
    expect(r.stderr).toContain("director: done (directors)");
    expect(r.stdout).toMatch(/^apply: \d+ steps on 5 hosts in [\d.]+ s$/m);
    const drift = lvsdr("drift", "--stack", "lab", "--json");
    expect(drift.code).toBe(0);
    expect(JSON.parse(drift.stdout)).toMatchObject({ clean: true });
    expect(lvsdr("apply", "--stack", "lab").stdout).toContain("nothing to do");
    expect(lvsdr("plan", "--stack", "lab", "--detailed-exitcode").code).toBe(0);
  }, 180_000);

  it("catches a real server's ARP setting changed by hand: exit 2 with expected and actual", async () => {
    await labExecOk("rs2", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    const r = lvsdr("drift", "--stack", "lab");
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^rs2\s+changed\s+sysctl\s+net\/ipv4\/conf\/all\/arp_ignore\s+1\s+0$/m);
    expect(r.stdout).toContain("drift on 1 of 5 hosts: rs2");
    const json = JSON.parse(lvsdr("drift", "--stack", "lab", "--json").stdout) as {
      clean: boolean;
      hosts: { host: string; clean: boolean; items: { status: string; key: string; expected: string; actual: string }[] }[];
    };
    expect(json.clean).toBe(false);
    expect(json.hosts.find((h) => h.host === "rs2")!.items).toEqual([
      expect.objectContaining({ status: "changed", key: "net/ipv4/conf/all/arp_ignore", expected: "1", actual: "0" }),
    ]);
    expect(lvsdr("apply", "--stack", "lab", "--yes").code).toBe(0);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 180_000);

  it("destroy refuses hosts another cluster manages and changes nothing anywhere", () => {
    // The lab's hosts under another cluster's name: their ownership records say "lab".
    const other = { ...(readClusterValue({ stack: "lab", stacksDir: resolve(REPO, "stacks") }).value as Record<string, unknown>), name: "other" };
    const file = join(mkdtempSync(join(tmpdir(), "lvsdr-other-")), "other.yaml");
    writeFileSync(file, stringify(other));
    const r = lvsdr("destroy", "--file", file, "--yes");
    expect(r.code).toBe(1);
    // The same refusal on every host, printed once with their names.
    expect(r.stderr).toContain(
      `lvsdr: preflight failed, nothing was changed:\n  director, rs1, rs2, rs3, rsvm1: ownership: this host is managed by cluster "lab", not "other": refusing to destroy it\n`,
    );
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 120_000);

  it("destroy asks first: without --yes and no terminal it changes nothing", async () => {
    const r = lvsdr("destroy", "--stack", "lab");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("re-run with --yes");
    expect(await labExecOk("rs1", "ip -o addr show dev lo")).toContain(LAB_ADDRESSES.vip);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 120_000);

  it("destroy --yes removes everything; drift then reports it all missing", async () => {
    const r = lvsdr("destroy", "--stack", "lab", "--yes");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^destroy: \d+ steps on 5 hosts/m);
    expect(await labExecOk("rs1", "ip -o addr show dev lo")).not.toContain(LAB_ADDRESSES.vip);
    expect(await labExecOk("director", "ipvsadm -Sn")).toBe("");
    expect(lvsdr("drift", "--stack", "lab").code).toBe(2);
  }, 180_000);

  it("--host director registers only the real servers observed ready, and says which it held back", async () => {
    expect(lvsdr("apply", "--stack", "lab", "--yes", "--host", "rs1", "rs2", "rsvm1").code).toBe(0);
    const r = lvsdr("apply", "--stack", "lab", "--yes", "--host", "director");
    expect(r.code).toBe(0);
    const rs3 = LAB_ADDRESSES.realServer(3);
    expect(r.stderr).toContain(`warning: director: held back rs3 (tcp:${LAB_ADDRESSES.vip}:80/${rs3}:80): net/ipv4/conf/all/arp_ignore is 0, not 1`);
    const table = await labExecOk("director", "ipvsadm -Sn");
    expect(table).toContain(`-r ${LAB_ADDRESSES.realServer(1)}:80`);
    expect(table).not.toContain(rs3);
    // The whole cluster: rs3 made ready, then registered.
    expect(lvsdr("apply", "--stack", "lab", "--yes").code).toBe(0);
    expect(await labExecOk("director", "ipvsadm -Sn")).toContain(`-r ${rs3}:80`);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 240_000);

  it("a host that cannot be reached is an error (exit 1), not drift", () => {
    const unreachable = lvsdr("drift", "--file", resolve(REPO, "test/lab/unreachable.yaml"));
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/ghost: connect/);
  }, 120_000);

  const HOSTS = ["director", "rs1", "rs2", "rs3", "rsvm1"];

  it("a saved plan runs exactly as planned; a host changed since makes apply refuse and change nothing anywhere", async () => {
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    const planFile = join(mkdtempSync(join(tmpdir(), "lvsdr-plan-")), "lab.plan");
    const saved = lvsdr("plan", "--stack", "lab", "--out", planFile);
    expect(saved.code).toBe(0);
    expect(saved.stderr).toContain(`plan saved to ${planFile}: \`lvsdr apply ${planFile}\` runs exactly it`);
    // rs2 changed by hand after the plan was made.
    await labExecOk("rs2", "sysctl -qw net.ipv4.conf.all.arp_ignore=1");
    const before = await hostSnapshots(HOSTS);
    const refused = lvsdr("apply", planFile, "--yes");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("rs2: this host changed since the plan was made (its addresses, kernel settings or the tool's files); nothing was changed on it: plan again");
    expect(refused.stderr).toContain("nothing was changed on any host: 1 host is no longer as the plan saw it");
    expect(await hostSnapshots(HOSTS)).toEqual(before);
    // As the plan saw it again: the same file applies, and the cluster is what the spec says.
    await labExecOk("rs2", "sysctl -qw net.ipv4.conf.all.arp_ignore=0");
    const applied = lvsdr("apply", planFile, "--yes");
    expect(applied.code).toBe(0);
    expect(applied.stderr).not.toMatch(/FAILED|warning|changed since/);
    expect(applied.stdout).toMatch(/^apply: \d+ steps on 5 hosts/m);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 240_000);

  it("the plan shown is the plan run: a host changed while the question is open is refused and nothing changes", async () => {
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    // A terminal for the question (util-linux `script`), answered once the plan is on screen.
    const child = spawn("script", ["-qfec", `${process.execPath} ${resolve(REPO, "bin/lvsdr")} apply --stack lab`, "/dev/null"], { cwd: REPO });
    let screen = "";
    child.stdout.on("data", (d: Buffer) => (screen += d.toString()));
    const exited = new Promise<number>((done) => child.on("close", (code) => done(code ?? -1)));
    const deadline = Date.now() + 120_000;
    while (!screen.includes("Go ahead? [y/N]") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(screen).toContain("Go ahead? [y/N]");
    await labExecOk("rs3", "ip addr add 198.51.100.5/32 dev lo");
    const before = await hostSnapshots(HOSTS);
    child.stdin.write("y\r");
    expect(await exited).toBe(1);
    expect(screen).toContain("rs3: this host changed since the plan was made");
    expect(screen).toContain("nothing was changed on any host");
    expect(await hostSnapshots(HOSTS)).toEqual(before);
    await labExecOk("rs3", "ip addr del 198.51.100.5/32 dev lo");
  }, 240_000);

  it("one real server down: the rest converge without it (exit 3, naming it); drift reports every other host and exits 1; back up, a re-run converges", async () => {
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    // The lab stack, with three dial attempts per host rather than ten (about 0.75 s for a refusal rather than 28 s).
    const lab = readClusterValue({ stack: "lab", stacksDir: resolve(REPO, "stacks") }).value as { connectionDefaults: Record<string, unknown> };
    const file = join(mkdtempSync(join(tmpdir(), "lvsdr-down-")), "lab.yaml");
    writeFileSync(file, stringify({ ...lab, connectionDefaults: { ...lab.connectionDefaults, dialErrorLimit: 3 } }));
    const rs2 = LAB_ADDRESSES.realServer(2);
    await labSshd("rs2", "stop");
    try {
      const applied = lvsdr("apply", "--file", file, "--yes");
      expect(applied.code).toBe(3);
      // Each failed attempt as it happens, the director's held-back destination, then the summary.
      expect(applied.stderr).toMatch(new RegExp(`^rs2: connect attempt 1 of 3 failed: connect ECONNREFUSED ${rs2}:22; trying again in 0\\.3 s$`, "m"));
      expect(applied.stderr).toContain(`warning: director: held back rs2 (tcp:${LAB_ADDRESSES.vip}:80/${rs2}:80): it was not reached`);
      expect(applied.stderr).toMatch(new RegExp(`^not reached: rs2: connect: cannot reach root@${rs2}:22 after 3 attempt\\(s\\): connect ECONNREFUSED`, "m"));
      expect(applied.stdout).toMatch(/^apply: \d+ steps on 4 hosts/m);
      const table = await labExecOk("director", "ipvsadm -Sn");
      for (const n of [1, 3]) expect(table).toContain(`-r ${LAB_ADDRESSES.realServer(n)}:80`);
      expect(table).not.toContain(rs2);

      const drift = lvsdr("drift", "--file", file);
      expect(drift.code).toBe(1);
      // The director lacks rs2's destination, held back: that is drift from the spec, and said so.
      expect(drift.stdout).toMatch(new RegExp(`^director\\s+missing\\s+destination\\s+tcp:${LAB_ADDRESSES.vip}:80/${rs2}:80\\s`, "m"));
      expect(drift.stdout).toContain("drift on 1 of 4 hosts: director");
      expect(drift.stderr).toContain("not reached: rs2: connect: ");
      const json = JSON.parse(lvsdr("drift", "--file", file, "--json").stdout) as {
        formatVersion: number;
        ok: boolean;
        hosts: { host: string; reached: boolean; clean?: boolean; error?: string }[];
      };
      expect(json.formatVersion).toBe(1);
      expect(json.ok).toBe(false);
      expect(json.hosts.map((h) => [h.host, h.reached, h.clean ?? null]).sort()).toEqual([
        ["director", true, false],
        ["rs1", true, true],
        ["rs2", false, null],
        ["rs3", true, true],
        ["rsvm1", true, true],
      ]);
      expect(json.hosts.find((h) => h.host === "rs2")!.error).toMatch(/^connect: cannot reach/);
    } finally {
      await labSshd("rs2", "start");
    }
    const again = lvsdr("apply", "--file", file, "--yes");
    expect(again.code).toBe(0);
    expect(await labExecOk("director", "ipvsadm -Sn")).toContain(`-r ${rs2}:80`);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 240_000);

  it("a real server whose prepare fails: the director is planned again without it, the rest converge (exit 3, naming it and why); fixed, a re-run converges", async () => {
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    const rs2 = LAB_ADDRESSES.realServer(2);
    const untouched = await hostSnapshots(["rs2"]);
    // A directory where rs2's sysctl file goes: its script fails at that write, after its
    // kernel settings and the VIP on lo (a failed prepare is not all-or-nothing).
    await labExecOk("rs2", "mkdir /etc/sysctl.d/90-lvs-dr.conf");
    try {
      const applied = lvsdr("apply", "--stack", "lab", "--yes", "--json");
      expect(applied.code).toBe(3);
      expect(applied.stderr).toMatch(
        /^rs2 \(prepare-real-servers\) failed: exited 1 at step \d+\/\d+ \(write \/etc\/sysctl\.d\/90-lvs-dr\.conf\): mv: cannot overwrite directory/m,
      );
      expect(applied.stderr).toContain(`warning: director: held back rs2 (tcp:${LAB_ADDRESSES.vip}:80/${rs2}:80): its prepare failed;`);
      const json = JSON.parse(applied.stdout) as { outcome: string; exitCode: number; failures: { host: string; wave: string }[]; applied: { host: string; wave: string }[] };
      expect(json).toMatchObject({ outcome: "partial", exitCode: 3, failures: [{ host: "rs2", wave: "prepare-real-servers" }] });
      expect(json.applied.map((a) => `${a.host} ${a.wave}`).sort()).toEqual([
        "director directors",
        "rs1 prepare-real-servers",
        "rs3 prepare-real-servers",
        "rsvm1 prepare-real-servers",
      ]);
      const table = await labExecOk("director", "ipvsadm -Sn");
      for (const n of [1, 3]) expect(table).toContain(`-r ${LAB_ADDRESSES.realServer(n)}:80`);
      expect(table).not.toContain(rs2);
      expect(lvsdr("drift", "--stack", "lab").code).toBe(2);
      // The failed write took back the file it had written beside the directory.
      expect(await labExecOk("rs2", "ls -A /etc/sysctl.d/90-lvs-dr.conf /etc/sysctl.d")).not.toContain("lvsdr-new");
    } finally {
      await labExecOk("rs2", "rmdir /etc/sysctl.d/90-lvs-dr.conf");
    }
    const again = lvsdr("apply", "--stack", "lab", "--yes");
    expect(again.code).toBe(0);
    expect(await labExecOk("director", "ipvsadm -Sn")).toContain(`-r ${rs2}:80`);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
    // The failed script had recorded rs2's values from before it changed them: destroy puts those back.
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    expect(await hostSnapshots(["rs2"])).toEqual(untouched);
  }, 240_000);

  it("Ctrl-C during apply: the scripts running finish, nothing else starts, no lock stays held, exit 130; a re-run converges", async () => {
    expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
    const child = spawn(process.execPath, [resolve(REPO, "bin/lvsdr"), "apply", "--stack", "lab", "--yes"], { cwd: REPO });
    let stderr = "";
    let interrupted = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      // The real servers' wave has begun; the director's script waits for it.
      if (!interrupted && /^\w+: step 1\//m.test(stderr)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    });
    const code = await new Promise<number>((done) => child.on("close", (c) => done(c ?? -1)));
    expect(interrupted).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toContain("interrupted: the scripts already running finish on their hosts; no other host starts");
    expect(stderr).toMatch(/^interrupted: done: .*; not started: .*director \(directors\)/m);
    expect(stderr).not.toMatch(/^director: step/m);
    expect(await labExecOk("director", "ipvsadm -Sn")).toBe("");
    // Every host's lock is free.
    for (const host of HOSTS) expect((await labExecOk(host, "flock -n /run/lvs-dr/lock true && echo free")).trim()).toBe("free");
    expect(lvsdr("apply", "--stack", "lab", "--yes").code).toBe(0);
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 240_000);
});
