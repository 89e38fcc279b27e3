/**
 * Reboots on real Debian hosts with systemd: the director VM and rsvm1 (a real server VM) are
 * rebooted from inside (`systemctl reboot`) and reset hard (QMP), and must come back serving
 * exactly what the stack says, from what the tool persisted (the unit, the boot script, the
 * sysctl file, the IPVS rules). During a real server's boot nobody but the director may answer
 * ARP for the VIP. After destroy, a reboot must bring nothing of ours back.
 */
import { LAB_ADDRESSES, labBootId, labExec, labExecOk, labHost, labVmReboot, labVmReset, labWaitForNewBoot, type LabHosts } from "../../lab";
import { arpRepliers, eventually, lvsdr } from "./helpers";
import { describeLab } from "./lab-suite";

const VIP = LAB_ADDRESSES.vip;
const REAL_SERVERS = ["rs1", "rs2", "rs3", "rsvm1"];

/**
 * Asks the segment, from the client, who has the VIP, five times a second until stopped; every
 * reply's MAC is kept (arping prints each reply, a second answer to one request included).
 */
async function startArpMonitor(): Promise<{ stop: () => Promise<{ probes: number; replies: string[] }> }> {
  const log = `/tmp/arp-monitor-${process.pid}-${Date.now()}`;
  const pid = (await labExecOk("client", `setsid arping -W 0.2 -i eth0 ${VIP} </dev/null >${log} 2>&1 & echo $!`)).trim();
  return {
    stop: async () => {
      const out = await labExecOk("client", `kill -INT ${pid}; sleep 0.3; cat ${log}; rm -f ${log}`);
      const probes = out.split("\n").filter((l) => l.includes("bytes from") || l === "Timeout").length;
      const replies = arpRepliers(out);
      return { probes, replies };
    },
  };
}

/** Until lvs-dr.service has run to its end in this boot (a oneshot unit that stays active). */
async function unitDone(host: string): Promise<void> {
  await eventually(`lvs-dr.service on ${host}`, async () => {
    const r = await labExec(host, "systemctl is-active lvs-dr.service", { timeoutMs: 10_000 });
    const state = r.stdout.trim();
    if (state === "failed") throw new Error(`lvs-dr.service failed on ${host}: ${(await labExec(host, "journalctl -b -u lvs-dr.service --no-pager")).stdout}`);
    return state === "active" ? true : undefined;
  });
}

async function requestVip(n: number): Promise<string[]> {
  const out = await labExecOk("client", `for i in $(seq ${n}); do curl -s -m 3 http://${VIP}/ || echo FAILED; done`);
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/** The director's OutPkts for the VIP's service: 0 when every reply bypassed it. */
async function directorOutPackets(): Promise<{ inPkts: number; outPkts: number }> {
  // The kernel folds its per-CPU counters into these totals every two seconds.
  await new Promise((r) => setTimeout(r, 2500));
  const stats = await labExecOk("director", `ipvsadm -Ln --stats --exact -t ${VIP}:80`);
  const cols = (stats.split("\n").find((l) => l.startsWith("TCP")) ?? "").trim().split(/\s+/);
  return { inPkts: Number(cols[3]), outPkts: Number(cols[4]) };
}

/** Everything of ours a host could hold after a boot, as text; empty when the host is clean. */
async function oursOn(host: string): Promise<string> {
  return labExecOk(
    host,
    [
      'for f in /etc/lvs-dr /etc/sysctl.d/90-lvs-dr.conf /etc/systemd/system/lvs-dr.service /etc/systemd/system/multi-user.target.wants/lvs-dr.service; do [ -e "$f" ] && echo "file $f"; done',
      `ip -o addr show to ${VIP} | awk '{print "address", $2, $4}'`,
      "[ ! -e /proc/net/ip_vs ] || ipvsadm -Sn | sed 's/^/ipvs /'",
      "systemctl is-active lvs-dr.service >/dev/null 2>&1 && echo 'unit active'",
      "true",
    ].join("; "),
  );
}

describeLab("reboots on Debian hosts with systemd (director VM and rsvm1)", (lab) => {
  let hosts: LabHosts;
  let directorMac: string;
  let rsvm1Mac: string;

  beforeAll(() => {
    hosts = lab.hosts;
    directorMac = labHost("director", hosts).mac;
    rsvm1Mac = labHost("rsvm1", hosts).mac;
    const r = lvsdr("apply", "--stack", "lab", "--yes");
    if (r.code !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`);
  }, 300_000);

  /** The checks after any boot: no drift, every real server reached through the VIP, replies bypass the director. */
  async function expectServing(): Promise<void> {
    const drift = lvsdr("drift", "--stack", "lab");
    expect(drift.stdout + drift.stderr).toContain("no drift on 5 hosts");
    expect(drift.code).toBe(0);
    const before = await directorOutPackets();
    expect(new Set(await requestVip(16))).toEqual(new Set(REAL_SERVERS));
    const after = await directorOutPackets();
    expect(after.inPkts).toBeGreaterThan(before.inPkts);
    expect(after.outPkts).toBe(0);
  }

  it("control: the ARP monitor does see a real server that answers for the VIP", async () => {
    // arp_ignore=0 everywhere on rsvm1, with the VIP on lo: Linux answers ARP for any local address.
    await labExecOk("rsvm1", "for i in all lo eth0; do echo 0 > /proc/sys/net/ipv4/conf/$i/arp_ignore; done");
    try {
      const monitor = await startArpMonitor();
      await new Promise((r) => setTimeout(r, 2000));
      const seen = await monitor.stop();
      expect(seen.replies).toContain(rsvm1Mac);
      expect(seen.replies).toContain(directorMac);
    } finally {
      expect(lvsdr("apply", "--stack", "lab", "--yes").code).toBe(0);
    }
    expect(lvsdr("drift", "--stack", "lab").code).toBe(0);
  }, 180_000);

  for (const how of ["reboot", "reset"] as const) {
    it(`rsvm1 ${how === "reboot" ? "rebooted from inside" : "reset hard"}: only the director answers ARP for the VIP throughout its boot; then no drift and DR serves`, async () => {
      const bootId = await labBootId("rsvm1");
      const monitor = await startArpMonitor();
      if (how === "reboot") await labVmReboot("rsvm1");
      else await labVmReset("rsvm1");
      await labWaitForNewBoot("rsvm1", bootId);
      await unitDone("rsvm1");
      await new Promise((r) => setTimeout(r, 1000));
      const seen = await monitor.stop();
      // The whole boot was watched (five probes a second), and the director answered every probe it was asked.
      expect(seen.probes).toBeGreaterThan(20);
      expect(seen.replies.length).toBeGreaterThan(20);
      expect(new Set(seen.replies)).toEqual(new Set([directorMac]));
      // What made it so: the sysctls are in force, the VIP is on lo as /32.
      expect(
        (await labExecOk("rsvm1", "sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce net.ipv4.conf.lo.arp_ignore net.ipv4.conf.lo.arp_announce"))
          .split("\n")
          .filter(Boolean),
      ).toEqual(["1", "2", "1", "2"]);
      expect(await labExecOk("rsvm1", `ip -o addr show dev lo to ${VIP}`)).toContain(`${VIP}/32`);
      await expectServing();
    }, 300_000);
  }

  for (const how of ["reboot", "reset"] as const) {
    it(`the director ${how === "reboot" ? "rebooted from inside" : "reset hard"}: its IPVS table and VIP come back from the unit; no drift, DR serves, only its MAC answers for the VIP`, async () => {
      const bootId = await labBootId("director");
      if (how === "reboot") await labVmReboot("director");
      else await labVmReset("director");
      await labWaitForNewBoot("director", bootId);
      await unitDone("director");
      expect(await labExecOk("director", "ipvsadm -Sn")).toMatch(new RegExp(`^-A -t ${VIP.replace(/\./g, "\\.")}:80 -s rr`, "m"));
      const monitor = await startArpMonitor();
      await expectServing();
      const seen = await monitor.stop();
      expect(seen.replies.length).toBeGreaterThan(0);
      expect(new Set(seen.replies)).toEqual(new Set([directorMac]));
    }, 300_000);
  }

  it("after destroy, a reboot brings nothing of ours back", async () => {
    const destroy = lvsdr("destroy", "--stack", "lab", "--yes");
    expect(destroy.code).toBe(0);
    expect(await oursOn("director")).toBe("");
    expect(await oursOn("rsvm1")).toBe("");
    const ids = { director: await labBootId("director"), rsvm1: await labBootId("rsvm1") };
    await Promise.all([labVmReboot("director"), labVmReset("rsvm1")]);
    await Promise.all([labWaitForNewBoot("director", ids.director), labWaitForNewBoot("rsvm1", ids.rsvm1)]);
    // Let every boot-time unit run before looking (a restore would happen by then).
    for (const h of ["director", "rsvm1"]) await labExecOk(h, "systemctl is-system-running --wait >/dev/null || true", { timeoutMs: 120_000 });
    expect(await oursOn("director")).toBe("");
    expect(await oursOn("rsvm1")).toBe("");
    expect((await labExecOk("rsvm1", "sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce")).split("\n").filter(Boolean)).toEqual(["0", "0"]);
    const drift = lvsdr("drift", "--stack", "lab");
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain("drift on 5 of 5 hosts");
  }, 400_000);
});
