/**
 * Health checks and director failover, proven by breaking things (LAB_DIRECTORS=2): the lab-ha
 * stack puts the VIP in a VRRP failover group of both directors with connection sync, keepalived
 * checks every real server over HTTP, and rs3 is the sorry server. Real HTTP servers are stopped,
 * the master director's VM is frozen, keepalived's file is edited by hand; the client's requests,
 * the ARP answers for the VIP, drift and status say what happened.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { labExec, labExecOk, labHost, labHttpd, labVmFreeze, labVmPowerOnAfterFreeze, labBootId, labWaitForNewBoot, type LabHosts } from "../../lab";
import { readClusterValue } from "../../src/config/load";
import type { ClusterInput } from "../../src/config/schema";
import type { ResourceOutputs } from "../../src/pulumi/impl";
import { directorProvider, realServerProvider, realServerReleaseProvider } from "../../src/pulumi/providers";
import { splitConnections, type HostResourceInputs } from "../../src/pulumi/state";
import { gapAfter, labRequests, lastFailureAfter, type Answer } from "../../lab/traffic";
import { arpRepliers, eventually, lvsdr, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

const VIP = "198.51.100.5";
const STACK = path.join(REPO, "stacks/Pulumi.lab-ha.yaml");
const DIRECTORS = ["director", "director2"] as const;
const BACKENDS = ["rs1", "rs2", "rsvm1"];

/** The stack's check timing: a real server is out within interval + timeout x retries. */
function detectionSeconds(): number {
  const doc = parseDocument(fs.readFileSync(STACK, "utf8")).toJS() as { config: { "lvs-dr:cluster": { virtualServices: { healthCheck: Record<string, number> }[] } } };
  const c = doc.config["lvs-dr:cluster"].virtualServices[0]!.healthCheck;
  return c.intervalSeconds! + c.connectTimeoutSeconds! * c.retries!;
}

/** The lab-ha stack with `change` applied, as a spec file under .cache (the CLI reads it with --file). */
function specVariant(name: string, change: (cluster: Record<string, unknown>) => void): string {
  const doc = parseDocument(fs.readFileSync(STACK, "utf8")).toJS() as { config: Record<string, Record<string, unknown>> };
  change(doc.config["lvs-dr:cluster"]!);
  const dir = path.join(REPO, ".cache", "ha-specs");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

function rawHa(): ClusterInput {
  return readClusterValue({ stack: "lab-ha", stacksDir: path.join(REPO, "stacks") }).value as ClusterInput;
}

/** Dotted paths whose values differ, as `pulumi refresh` would list them. */
function changedPaths(a: unknown, b: unknown, at = ""): string[] {
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => changedPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}["${k}"]` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}

/** Requests through the VIP for `seconds` (see lab/traffic.ts). */
function requests(seconds: number): Promise<Answer[]> {
  return labRequests(VIP, seconds);
}

/**
 * Who answers ARP for the VIP, five times a second, until stopped: every reply's MAC in order.
 * Habets' arping prints one line per reply, so two MACs answering one request show as both.
 */
async function arpMonitor(): Promise<{ stop: () => Promise<string[]> }> {
  const log = `/tmp/ha-arping-${process.pid}.log`;
  const pid = (await labExecOk("client", `setsid arping -W 0.2 -i eth0 ${VIP} </dev/null >${log} 2>&1 & echo $!`)).trim();
  return {
    stop: async () => arpRepliers(await labExecOk("client", `kill -INT ${pid}; sleep 0.3; cat ${log}; rm -f ${log}`)),
  };
}

async function vipHolders(): Promise<string[]> {
  const out: string[] = [];
  for (const d of DIRECTORS) if ((await labExec(d, `ip -o addr show dev eth0 to ${VIP}/32`, { timeoutMs: 5000 })).stdout.includes(VIP)) out.push(d);
  return out;
}

async function waitForMaster(name: string): Promise<void> {
  await eventually(`${name} to be the only holder of the VIP`, async () => ((await vipHolders()).join() === name ? true : undefined), 60_000);
}

function status(args: string[] = []): {
  services: { director: string; realServers: { name: string; health: string; weight: number | null }[]; sorryServer: { active: boolean } | null }[];
  groups: { group: string; master: string | null; holders: string[] }[];
} {
  const r = lvsdr("status", "--stack", "lab-ha", "--json", ...args);
  if (r.code !== 0) throw new Error(`lvsdr status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function healthOf(director: string, rs: string): string | undefined {
  return status()
    .services.find((s) => s.director === director)
    ?.realServers.find((r) => r.name === rs)?.health;
}

describeLab(
  "health checks and director failover (keepalived, LAB_DIRECTORS=2)",
  (lab) => {
    let hosts: LabHosts;
    beforeAll(async () => {
      hosts = lab.hosts;
      // From clean hosts: whatever another suite left is withdrawn first.
      for (const stack of ["lab", "lab-ha"]) lvsdr("destroy", "--stack", stack, "--yes");
      for (const rs of [...BACKENDS, "rs3"]) await labHttpd(rs, "start").catch(() => undefined);
      const applied = lvsdr("apply", "--stack", "lab-ha", "--yes");
      if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);
      await waitForMaster("director");
    }, 300_000);

    afterAll(async () => {
      for (const rs of [...BACKENDS, "rs3"]) await labHttpd(rs, "start").catch(() => undefined);
    }, 120_000);

    it("after apply: keepalived runs and is enabled on both directors, one master holds the VIP, drift is clean and status says so", async () => {
      for (const d of DIRECTORS) {
        expect((await labExecOk(d, "systemctl is-active keepalived; systemctl is-enabled keepalived")).split("\n").slice(0, 2)).toEqual(["active", "enabled"]);
        expect(await labExecOk(d, "head -1 /etc/keepalived/keepalived.conf")).toMatch(/^# Managed by lvs-dr for cluster lab\./);
        // directors[].ipvs defaults: the DR values, set and kept for boot.
        expect((await labExecOk(d, "cat /proc/sys/net/ipv4/vs/expire_nodest_conn /proc/sys/net/ipv4/vs/expire_quiescent_template; ipvsadm -L --timeout")).split("\n")).toEqual([
          "1",
          "1",
          "Timeout (tcp tcpfin udp): 900 120 300",
          "",
        ]);
        expect(await labExecOk(d, "cat /etc/lvs-dr/restore.sh")).toContain("sysctl -q -p /etc/lvs-dr/ipvs-sysctl.conf");
      }
      expect(lvsdr("drift", "--stack", "lab-ha")).toMatchObject({ code: 0, stdout: expect.stringContaining("no drift on 6 hosts") });
      const s = status();
      expect(s.groups).toEqual([expect.objectContaining({ group: "front", master: "director", holders: ["director"] })]);
      for (const d of DIRECTORS) {
        const svc = s.services.find((x) => x.director === d)!;
        expect(svc.realServers.map((r) => [r.name, r.health, r.weight])).toEqual(BACKENDS.map((n) => [n, "up", 1]));
        expect(svc.sorryServer).toEqual(expect.objectContaining({ active: false }));
      }
      // The group's VIP is VRRP's: the tool added no static alias of it anywhere.
      const record = JSON.parse(await labExecOk("director", "cat /var/lib/lvs-dr/ownership.json"));
      expect(record.addresses).toEqual([]);
      expect(record.keepalivedServices).toEqual([`tcp:${VIP}:80`]);
    }, 120_000);

    it("status --watch looks again every interval until interrupted", () => {
      const r = spawnSync(process.execPath, [path.join(REPO, "bin/lvsdr"), "status", "--stack", "lab-ha", "--watch", "1"], {
        cwd: REPO,
        encoding: "utf8",
        timeout: 6000,
        killSignal: "SIGINT",
      });
      const views = r.stdout.split("\n").filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
      expect(views.length).toBeGreaterThanOrEqual(2);
      expect(r.stdout.match(/^front\s+198\.51\.100\.5\s+director\s/gm)?.length).toBe(views.length);
    }, 60_000);

    it("a real server whose HTTP server stops gets no new connections within the check's time, and none fails after; back, it serves again", async () => {
      const detection = detectionSeconds();
      const traffic = requests(8 + detection);
      await new Promise((r) => setTimeout(r, 2000));
      // From the moment the stop is asked for: the figure can only be larger than the truth.
      const stoppedAt = Date.now() / 1000;
      await labHttpd("rs1", "stop");
      // Started again whatever fails here, so the suites after this one find rs1 serving.
      let restarted = false;
      try {
        const answers = await traffic;
        const span = answers[answers.length - 1]!.t - answers[0]!.t;
        expect(answers.length / span).toBeGreaterThanOrEqual(10);
        const failed = answers.filter((a) => a.body === "FAILED");
        const lastFailure = lastFailureAfter(answers, stoppedAt);
        console.log(`health: ${failed.length} failed requests, the last ${lastFailure.toFixed(2)} s after rs1 stopped (configured detection ${detection} s)`);
        expect(lastFailure).toBeLessThanOrEqual(detection + 2);
        const after = answers.filter((a) => a.t > stoppedAt + detection + 2);
        expect(after.length).toBeGreaterThan(20);
        expect(after.filter((a) => a.body === "FAILED" || a.body === "rs1")).toEqual([]);
        expect(healthOf("director", "rs1")).toBe("down");

        await labHttpd("rs1", "start");
        restarted = true;
        await eventually("rs1 to be up again", async () => (healthOf("director", "rs1") === "up" ? true : undefined), 30_000);
        const back = await requests(3);
        expect(back.some((a) => a.body === "rs1")).toBe(true);
        expect(back.filter((a) => a.body === "FAILED")).toEqual([]);
      } finally {
        if (!restarted) await labHttpd("rs1", "start");
      }
    }, 180_000);

    it("after apply, drift stays clean while a real server is down, and status shows it down", async () => {
      await labHttpd("rs2", "stop");
      try {
        await eventually(
          "rs2 to be down on both directors",
          async () => {
            const s = status();
            return s.services.every((svc) => svc.realServers.find((r) => r.name === "rs2")?.health === "down") ? true : undefined;
          },
          30_000,
        );
        const drift = lvsdr("drift", "--stack", "lab-ha");
        expect(drift).toMatchObject({ code: 0, stdout: expect.stringContaining("no drift on 6 hosts") });
        // An apply does not "repair" health: nothing to do.
        expect(lvsdr("plan", "--stack", "lab-ha").stdout).toContain("nothing to do");
        const text = lvsdr("status", "--stack", "lab-ha");
        expect(text.stdout).toMatch(/director\s+keepalived\s+rs2 198\.51\.100\.11\s+down\s+0\/1/);
      } finally {
        await labHttpd("rs2", "start");
      }
    }, 120_000);

    it("a real server added to the spec while its HTTP server is down never receives a request", async () => {
      const without = specVariant("without-rs2", (c) => {
        const svc = (c.virtualServices as { realServers: { name: string }[] }[])[0]!;
        svc.realServers = svc.realServers.filter((r) => r.name !== "rs2");
      });
      expect(lvsdr("apply", "--file", without, "--yes").code).toBe(0);
      await labHttpd("rs2", "stop");
      try {
        const traffic = requests(8);
        expect(lvsdr("apply", "--stack", "lab-ha", "--yes").code).toBe(0);
        const answers = await traffic;
        expect(answers.filter((a) => a.body === "FAILED" || a.body === "rs2")).toEqual([]);
        expect(healthOf("director", "rs2")).toBe("down");
      } finally {
        await labHttpd("rs2", "start");
      }
      await eventually("rs2 to be up", async () => (healthOf("director", "rs2") === "up" ? true : undefined), 30_000);
    }, 180_000);

    it("with every real server's HTTP server stopped, requests reach the sorry server", async () => {
      for (const rs of BACKENDS) await labHttpd(rs, "stop");
      try {
        await eventually("the sorry server to serve", async () => (status().services.find((s) => s.director === "director")?.sorryServer?.active ? true : undefined), 30_000);
        const answers = await requests(3);
        expect(answers.length).toBeGreaterThan(20);
        expect(new Set(answers.map((a) => a.body))).toEqual(new Set(["rs3"]));
      } finally {
        for (const rs of BACKENDS) await labHttpd(rs, "start");
      }
      await eventually("every real server up again", async () => (status().services.every((s) => s.realServers.every((r) => r.health === "up")) ? true : undefined), 30_000);
    }, 180_000);

    it("hand edits are drift: keepalived's file changed names the file, keepalived stopped names it; apply repairs both", async () => {
      await labExecOk("director2", "sed -i 's/^  advert_int 1$/  advert_int 2/' /etc/keepalived/keepalived.conf");
      const edited = lvsdr("drift", "--stack", "lab-ha");
      expect(edited.code).toBe(2);
      expect(edited.stdout).toMatch(/director2\s+changed\s+file\s+\/etc\/keepalived\/keepalived\.conf/);

      await labExecOk("director2", "systemctl stop keepalived");
      const stopped = lvsdr("drift", "--stack", "lab-ha");
      expect(stopped.code).toBe(2);
      expect(stopped.stdout).toMatch(/director2\s+changed\s+keepalived\s+keepalived\s+running\s+stopped/);

      expect(lvsdr("apply", "--stack", "lab-ha", "--yes").code).toBe(0);
      expect(lvsdr("drift", "--stack", "lab-ha")).toMatchObject({ code: 0 });
      expect((await labExecOk("director2", "systemctl is-active keepalived")).trim()).toBe("active");
      await waitForMaster("director");
    }, 180_000);

    it("the master director dies: the backup takes the VIP and announces it, a long-lived connection survives (connection sync), and it comes back without split brain", async () => {
      const macs = { director: labHost("director", hosts).mac, director2: labHost("director2", hosts).mac };
      const realServerMacs = ["rs1", "rs2", "rs3", "rsvm1"].map((n) => labHost(n, hosts).mac);
      // A 400 KB download at 40 KB/s: about 10 s on one TCP connection through the VIP.
      for (const rs of BACKENDS) await labExecOk(rs, `d=/run/lvslab/www; [ -d $d ] || d=/var/www/lvslab; head -c 409600 /dev/zero > $d/big`);
      const download = labExec("client", `curl -s -o /dev/null -w '%{http_code} %{size_download}' --limit-rate 40k -m 60 http://${VIP}/big`, { timeoutMs: 90_000 });
      const arp = await arpMonitor();
      const traffic = requests(14);
      await new Promise((r) => setTimeout(r, 3000));
      const bootId = await labBootId("director");
      const killedAt = Date.now() / 1000;
      await labVmFreeze("director");
      await eventually(
        "director2 to hold the VIP",
        async () => ((await labExec("director2", `ip -o addr show dev eth0 to ${VIP}/32`)).stdout.includes(VIP) ? true : undefined),
        30_000,
      );
      // The client's neighbour entry turns to the backup's MAC (its gratuitous ARP).
      await eventually(
        "the client's neighbour entry for the VIP to be director2's MAC",
        async () => {
          const neigh = JSON.parse(await labExecOk("client", `ip -j neigh show ${VIP}`)) as { lladdr?: string }[];
          return neigh[0]?.lladdr === macs.director2 ? true : undefined;
        },
        15_000,
      );
      const answers = await traffic;
      const replies = await arp.stop();
      const finished = await download;

      // The gap: from the kill to the first answer after the last failure (or the first after the kill).
      const gap = gapAfter(answers, killedAt);
      expect(gap).not.toBeNull();
      console.log(
        `failover: ${answers.filter((a) => a.t >= killedAt && a.body === "FAILED").length} failed requests, service back ${gap!.toFixed(2)} s after the master was killed (advert interval 1 s)`,
      );
      // Target: 3 advert intervals and 1 s; half a second more for the request limit of the loop.
      expect(gap!).toBeLessThanOrEqual(3 * 1 + 1 + 0.5);
      expect(answers.filter((a) => a.t > killedAt + gap! && a.body === "FAILED")).toEqual([]);

      // ARP: only directors ever answer, the master then the backup, never the two interleaved.
      expect(replies.length).toBeGreaterThan(20);
      expect(replies.filter((m) => realServerMacs.includes(m))).toEqual([]);
      expect(new Set(replies)).toEqual(new Set([macs.director, macs.director2]));
      const switchAt = replies.indexOf(macs.director2);
      expect(replies.slice(0, switchAt).every((m) => m === macs.director)).toBe(true);
      expect(replies.slice(switchAt).every((m) => m === macs.director2)).toBe(true);

      // The long-lived connection went on through director2, which knew it from the sync daemon.
      expect(finished.stdout.trim()).toBe("200 409600");

      // The killed director powers on again: keepalived starts at boot, takes the VIP back (preempt), no split brain.
      await labVmPowerOnAfterFreeze("director");
      await labWaitForNewBoot("director", bootId);
      await waitForMaster("director");
      await new Promise((r) => setTimeout(r, 3000));
      expect(await vipHolders()).toEqual(["director"]);
      await eventually("drift to be clean", async () => (lvsdr("drift", "--stack", "lab-ha").code === 0 ? true : undefined), 60_000);
      const s = status();
      expect(s.groups[0]).toEqual(expect.objectContaining({ master: "director", holders: ["director"] }));
      expect(s.services.find((x) => x.director === "director")!.realServers.every((r) => r.health === "up")).toBe(true);
    }, 400_000);

    it("a VIP held by both directors (split brain) is drift, exit 2", async () => {
      // The backup holds the VIP too: added by hand (keepalived only removes VIPs it set itself).
      await labExecOk("director2", `ip addr add ${VIP}/32 dev eth0`);
      try {
        const drift = lvsdr("drift", "--stack", "lab-ha");
        expect(drift.code).toBe(2);
        expect(drift.stdout).toContain("held by director and director2 (split brain)");
        expect(status().groups[0]).toEqual(expect.objectContaining({ master: null, holders: ["director", "director2"] }));
      } finally {
        await labExecOk("director2", `ip addr del ${VIP}/32 dev eth0`);
      }
    }, 120_000);

    it("the same lifecycle through the Pulumi providers: create, read equals create, a failed check is no diff, keepalived stopped is, update repairs, delete", async () => {
      const order = ["rs1", "rs2", "rs3", "rsvm1"];
      const inputs: Record<string, HostResourceInputs> = {};
      const outs: Record<string, ResourceOutputs> = {};
      const checked = async (provider: typeof realServerProvider, host: string) => {
        const r = await provider.check!({} as HostResourceInputs, { ...splitConnections(rawHa()), host, baseDir: REPO });
        expect(r.failures).toEqual([]);
        return r.inputs!;
      };
      expect(lvsdr("destroy", "--stack", "lab-ha", "--yes").code).toBe(0);
      for (const rs of order) outs[rs] = (await realServerProvider.create((inputs[rs] = await checked(realServerProvider, rs)))).outs!;
      for (const d of DIRECTORS) outs[d] = (await directorProvider.create((inputs[d] = await checked(directorProvider, d)))).outs!;
      for (const rs of order) await realServerReleaseProvider.create(await checked(realServerReleaseProvider, rs));
      await waitForMaster("director");
      // The VRRP secret travels with the connection blocks (secret in state), not in the readable spec.
      expect(JSON.stringify(inputs.director!.cluster)).not.toContain("labvrrp1");
      expect(inputs.director!.connections.vrrpSecrets).toEqual({ front: "labvrrp1" });
      expect(JSON.stringify({ ...outs.director, connections: undefined })).not.toContain("labvrrp1");
      expect(outs.director).toMatchObject({ keepalived: { running: true, enabled: true }, addresses: [] });
      await eventually("every real server up", async () => (status().services.every((s) => s.realServers.every((r) => r.health === "up")) ? true : undefined), 30_000);
      for (const d of DIRECTORS) expect((await directorProvider.read!(`lab/${d}`, outs[d]!)).props).toEqual(outs[d]);

      // A failed check is health: refresh reads no change and up plans none.
      await labHttpd("rs2", "stop");
      try {
        await eventually("rs2 down", async () => (healthOf("director", "rs2") === "down" ? true : undefined), 30_000);
        const read = (await directorProvider.read!("lab/director", outs.director!)).props!;
        expect(read).toEqual(outs.director);
        expect(await directorProvider.diff!("lab/director", read, inputs.director!)).toMatchObject({ changes: false });
      } finally {
        await labHttpd("rs2", "start");
      }

      // keepalived stopped by hand: refresh names exactly that, up starts it again.
      await labExecOk("director2", "systemctl stop keepalived");
      const stopped = (await directorProvider.read!("lab/director2", outs.director2!)).props!;
      expect(changedPaths(outs.director2, stopped)).toEqual(['keepalived["running"]']);
      expect(await directorProvider.diff!("lab/director2", stopped, inputs.director2!)).toMatchObject({ changes: true, replaces: [] });
      await directorProvider.update!("lab/director2", stopped, inputs.director2!);
      expect((await directorProvider.read!("lab/director2", outs.director2!)).props).toEqual(outs.director2);

      // pulumi destroy, in reverse order.
      for (const rs of order) await realServerReleaseProvider.delete!(`lab/${rs}`, { ...inputs[rs]!, addresses: [] });
      for (const d of DIRECTORS) await directorProvider.delete!(`lab/${d}`, outs[d]!);
      for (const rs of order) await realServerProvider.delete!(`lab/${rs}`, outs[rs]!);
      for (const d of DIRECTORS) {
        expect((await labExec(d, "test -e /etc/keepalived/keepalived.conf")).code).not.toBe(0);
        expect(await labExecOk(d, "ipvsadm -Sn")).toBe("");
      }
      expect(await vipHolders()).toEqual([]);
    }, 300_000);

    it("switching the lab stack from static to keepalived mode and back while requests run: none fails", async () => {
      expect(lvsdr("destroy", "--stack", "lab-ha", "--yes").code).toBe(0);
      // The client still has director2's MAC for the VIP from the group (a stale entry): the
      // static VIP's gratuitous ARP must correct it, or requests go to director2 for seconds.
      await labExecOk("client", `ip neigh replace ${VIP} lladdr ${labHost("director2", hosts).mac} dev eth0 nud stale`);
      expect(lvsdr("apply", "--stack", "lab", "--yes").code).toBe(0);
      await eventually(
        "the client's neighbour entry for the VIP to be the director's MAC",
        async () => {
          const neigh = JSON.parse(await labExecOk("client", `ip -j neigh show ${VIP}`)) as { lladdr?: string }[];
          return neigh[0]?.lladdr === labHost("director", hosts).mac ? true : undefined;
        },
        5_000,
      );
      const checkedLab = path.join(REPO, ".cache", "ha-specs", "lab-checked.json");
      const lab = parseDocument(fs.readFileSync(path.join(REPO, "stacks/Pulumi.lab.yaml"), "utf8")).toJS() as {
        config: Record<string, { virtualServices: Record<string, unknown>[] }>;
      };
      lab.config["lvs-dr:cluster"]!.virtualServices[0]!.healthCheck = { type: "http", intervalSeconds: 1, connectTimeoutSeconds: 1 };
      fs.mkdirSync(path.dirname(checkedLab), { recursive: true });
      fs.writeFileSync(checkedLab, JSON.stringify(lab));
      const traffic = requests(40);
      await new Promise((r) => setTimeout(r, 2000));
      const toKeepalived = lvsdr("apply", "--file", checkedLab, "--yes");
      expect(toKeepalived.code).toBe(0);
      const byKeepalived = lvsdr("status", "--file", checkedLab, "--json");
      expect(JSON.parse(byKeepalived.stdout).services[0]).toMatchObject({ managedBy: "keepalived", present: true });
      expect((await labExecOk("director", "systemctl is-active keepalived")).trim()).toBe("active");
      await new Promise((r) => setTimeout(r, 3000));
      const back = lvsdr("apply", "--stack", "lab", "--yes");
      expect(back.code).toBe(0);
      expect((await labExec("director", "systemctl is-active keepalived")).stdout.trim()).not.toBe("active");
      expect(lvsdr("drift", "--stack", "lab")).toMatchObject({ code: 0 });
      const answers = await traffic;
      expect(answers.length).toBeGreaterThan(300);
      expect(answers.filter((a) => a.body === "FAILED")).toEqual([]);
      expect(lvsdr("destroy", "--stack", "lab", "--yes").code).toBe(0);
      expect(lvsdr("apply", "--stack", "lab-ha", "--yes").code).toBe(0);
      await waitForMaster("director");
    }, 300_000);

    it("destroy: keepalived's configuration and everything the tool added are gone, keepalived stopped and disabled", async () => {
      const r = lvsdr("destroy", "--stack", "lab-ha", "--yes");
      expect(r.code).toBe(0);
      for (const d of DIRECTORS) {
        expect((await labExec(d, "test -e /etc/keepalived/keepalived.conf")).code).not.toBe(0);
        expect((await labExec(d, "systemctl is-active keepalived")).stdout.trim()).not.toBe("active");
        expect((await labExec(d, "systemctl is-enabled keepalived")).stdout.trim()).toBe("disabled");
        expect(await labExecOk(d, "ipvsadm -Sn")).toBe("");
        expect(await labExecOk(d, "ls /etc/lvs-dr /var/lib/lvs-dr 2>/dev/null || true")).toBe("");
      }
      expect(await vipHolders()).toEqual([]);
      for (const rs of ["rs1", "rs2", "rs3", "rsvm1"]) expect(await labExecOk(rs, "ip -o addr show dev lo")).not.toContain(VIP);
    }, 180_000);
  },
  { directors: 2 },
);
