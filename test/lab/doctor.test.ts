/**
 * The doctor on real hosts: each check sees a host broken the way operators break them, and a
 * correct cluster passes clean. The dual-stack lab stack, so ARP and neighbour discovery both count.
 * Each test undoes what it broke.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { LAB_ADDRESSES, labExec, labExecOk } from "../../lab";
import { readClusterValue } from "../../src/config/load";
import { hostSnapshots, lvsdr, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

const VIP4 = LAB_ADDRESSES.vip;
const VIP6 = LAB_ADDRESSES.vip6;
const HOSTS = ["director", "rs1", "rs2", "rs3", "rsvm1"];

interface Finding {
  host: string;
  check: string;
  severity: "error" | "warning";
  setting: string;
  why: string;
  fix: string;
  message: string;
}

function doctor(...source: string[]): { code: number; findings: Finding[]; stderr: string } {
  const r = lvsdr("doctor", ...(source.length ? source : ["--stack", "lab-v6"]), "--json");
  const doc = JSON.parse(r.stdout) as { findings: Finding[] };
  return { code: r.code, findings: doc.findings, stderr: r.stderr };
}

/** The lab-v6 spec with `change` made to it, as a spec file. */
type RawSpec = { directors: Record<string, unknown>[]; virtualServices: unknown[] };

function specFile(change: (spec: RawSpec) => void): string {
  const spec = readClusterValue({ stack: "lab-v6", stacksDir: resolve(REPO, "stacks") }).value as RawSpec;
  change(spec);
  const file = join(mkdtempSync(join(tmpdir(), "lvsdr-doctor-")), "spec.yaml");
  writeFileSync(file, stringify({ config: { "lvs-dr:cluster": spec } }));
  return file;
}

const macOf = (lab: { hosts: { hosts: { name: string; mac: string }[] } }, host: string) => lab.hosts.hosts.find((h) => h.name === host)!.mac.toLowerCase();

describeLab("lvsdr doctor on the lab", (lab) => {
  const applyLabV6 = () => {
    const r = lvsdr("apply", "--stack", "lab-v6", "--yes");
    if (r.code !== 0) throw new Error(`apply --stack lab-v6 failed (${r.code}): ${r.stderr}`);
  };
  beforeAll(() => {
    lvsdr("destroy", "--stack", "lab-v6", "--yes");
    applyLabV6();
  }, 240_000);
  afterAll(() => {
    lvsdr("destroy", "--stack", "lab-v6", "--yes");
  }, 180_000);

  it("a correct cluster passes clean, and the doctor changes nothing", async () => {
    const before = await hostSnapshots(HOSTS);
    const r = doctor();
    expect(r.findings).toEqual([]);
    expect(r.code).toBe(0);
    expect(await hostSnapshots(HOSTS)).toEqual(before);
  }, 120_000);

  // One doctor run for several hosts broken at once, each its own way (a run costs an observation
  // of every host and the director's probe: CI time), then one for the spec-dependent checks.
  it("names each host broken its own way: ARP flux, a VIP on a NIC (ARP and NDP flux), strict rp_filter, no VIP on lo (the DR path), a lower MTU; plan and apply refuse the unsafe ones before any host changes", async () => {
    const rpWas = (await labExecOk("rs3", "sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter")).trim().split("\n");
    // rs1 answers ARP for the VIP on its lo; rs2 holds the VIPs on its NIC; rs3 filters strictly with
    // its default route on a second uplink (a veth pair: the machine may have no dummy driver) and
    // lost the VIP from lo; rsvm1's MTU is below the director's.
    await labExecOk("rs1", "sysctl -q -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.eth0.arp_ignore=0");
    await labExecOk("rs2", `ip addr add ${VIP4}/32 dev eth0 && ip addr add ${VIP6}/128 dev eth0 nodad`);
    await labExecOk(
      "rs3",
      [
        "ip link add lvsdr-up0 type veth peer name lvsdr-up1",
        "ip link set lvsdr-up1 up",
        "ip link set lvsdr-up0 up",
        "ip addr add 192.0.2.3/24 dev lvsdr-up0",
        "ip route replace default via 192.0.2.1 dev lvsdr-up0",
        "sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.eth0.rp_filter=1",
        `ip addr del ${VIP4}/32 dev lo`,
      ].join(" && "),
    );
    await labExecOk("rsvm1", "ip link set eth0 mtu 1400");
    try {
      const r = doctor();
      expect(r.code).toBe(2);
      const at = (host: string, check: string) => r.findings.filter((f) => f.host === host && f.check === check);
      expect(at("director", "arp-flux").map((f) => f.message)).toEqual(
        expect.arrayContaining([`ARP for ${VIP4} is answered by ${macOf(lab, "rs1")}, real server rs1`, `ARP for ${VIP4} is answered by ${macOf(lab, "rs2")}, real server rs2`]),
      );
      // IPv6 has no arp_ignore: rs1 (VIP on lo) stays silent in neighbour discovery; rs2 (VIP on its NIC) answers.
      expect(at("director", "ndp-flux").map((f) => f.message)).toEqual([`neighbour discovery for ${VIP6} is answered by ${macOf(lab, "rs2")}, real server rs2`]);
      expect(at("rs2", "vip-on-nic").map((f) => [f.severity, f.setting])).toEqual([
        ["error", `${VIP4}/32 on eth0`],
        ["error", `${VIP6}/128 on eth0`],
      ]);
      const rp = at("rs3", "rp-filter");
      expect(rp).toEqual([expect.objectContaining({ severity: "error", setting: expect.stringContaining("net.ipv4.conf.eth0.rp_filter=1") })]);
      expect(rp[0]!.setting).toContain("lvsdr-up0");
      expect(rp[0]!.fix).toContain("rp_filter=2");
      // The DR path fails through rs3's MAC only (the others answered the same probe), and says why.
      expect(r.findings.filter((f) => f.check === "data-path").map((f) => [f.host, f.severity, f.setting])).toEqual([["rs3", "error", `${VIP4} is not on lo`]]);
      expect(at("rsvm1", "mtu")).toEqual([expect.objectContaining({ severity: "warning", setting: expect.stringContaining("mtu 1400") })]);

      const plan = JSON.parse(lvsdr("plan", "--stack", "lab-v6", "--json").stdout) as { preflight: { host: string; check: string }[] };
      expect(plan.preflight.map((p) => `${p.host} ${p.check}`)).toEqual(expect.arrayContaining(["rs2 vip-on-nic", "rs3 rp-filter"]));
      const before = await hostSnapshots(HOSTS);
      const apply = lvsdr("apply", "--stack", "lab-v6", "--yes");
      expect(apply.code).toBe(1);
      expect(apply.stderr).toContain("preflight failed, nothing was changed");
      expect(await hostSnapshots(HOSTS)).toEqual(before);
    } finally {
      await labExec("rs1", "sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1");
      await labExec("rs2", `ip addr del ${VIP4}/32 dev eth0; ip addr del ${VIP6}/128 dev eth0`);
      await labExec(
        "rs3",
        `ip route replace default via ${LAB_ADDRESSES.routerA} dev eth0; ip link del lvsdr-up0; sysctl -q -w net.ipv4.conf.all.rp_filter=${rpWas[0]} net.ipv4.conf.eth0.rp_filter=${rpWas[1]}`,
      );
      await labExec("rsvm1", "ip link set eth0 mtu 1500");
      applyLabV6();
    }
  }, 240_000);

  it("with the spec's help: IPVS conntrack on while netfilter's conntrack is loaded (a warning); a service bound only to the RIP (an error for that server and port)", async () => {
    const file = specFile((spec) => {
      spec.directors[0]!.ipvs = { conntrack: true };
      spec.virtualServices.push({ name: "web81", vip: VIP4, protocol: "tcp", port: 81, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }] });
    });
    expect(lvsdr("apply", "--file", file, "--yes").code).toBe(0);
    await labExecOk("director", "modprobe nf_conntrack");
    // rs1 binds its RIP only; rs2 the wildcard: only rs1 is wrong.
    await labExecOk("rs1", `busybox httpd -p ${LAB_ADDRESSES.realServer(1)}:81 -h /tmp`);
    await labExecOk("rs2", "busybox httpd -p 81 -h /tmp");
    try {
      const r = doctor("--file", file);
      expect(r.code).toBe(2);
      expect(r.findings).toEqual([
        expect.objectContaining({ host: "director", check: "conntrack", severity: "warning" }),
        expect.objectContaining({ host: "rs1", check: "listening", severity: "error", message: expect.stringContaining("81") }),
      ]);
    } finally {
      await labExec("rs1", "pkill -f 'busybox httpd -p 198.51.100.10:81'");
      await labExec("rs2", "pkill -f 'busybox httpd -p 81 '");
      applyLabV6();
      await labExec("director", "modprobe -r nf_conntrack");
    }
  }, 180_000);

  it("before a director takes a VIP, another host answering ARP for it refuses the apply before any host changes", async () => {
    expect(lvsdr("destroy", "--stack", "lab-v6", "--yes").code).toBe(0);
    // A leftover: the VIP on rs3's NIC from a hand-made setup, while the cluster is not applied.
    await labExecOk("rs3", `ip addr add ${VIP4}/32 dev eth0`);
    try {
      const before = await hostSnapshots(HOSTS);
      const r = lvsdr("apply", "--stack", "lab-v6", "--yes");
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`director: arp-flux: ARP for ${VIP4} is answered by ${macOf(lab, "rs3")}, real server rs3`);
      expect(r.stderr).toContain("rs3: vip-on-nic");
      expect(await hostSnapshots(HOSTS)).toEqual(before);
    } finally {
      await labExec("rs3", `ip addr del ${VIP4}/32 dev eth0`);
    }
  }, 180_000);
});
