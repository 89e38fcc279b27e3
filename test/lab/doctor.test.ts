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

  it("ARP flux: a real server with arp_ignore=0 answers ARP for the VIP on its lo, and the doctor names its MAC and name", async () => {
    await labExecOk("rs1", "sysctl -q -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.eth0.arp_ignore=0");
    try {
      const r = doctor();
      expect(r.code).toBe(2);
      expect(r.findings).toContainEqual(
        expect.objectContaining({ host: "director", check: "arp-flux", severity: "error", message: `ARP for ${VIP4} is answered by ${macOf(lab, "rs1")}, real server rs1` }),
      );
      // IPv6 has no arp_ignore: the same server stays silent in neighbour discovery.
      expect(r.findings.filter((f) => f.check === "ndp-flux")).toEqual([]);
    } finally {
      await labExecOk("rs1", "sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1");
    }
  }, 120_000);

  it("a VIP on a real server's NIC: an error, with ARP and NDP flux from its MAC; plan and apply refuse before any host changes", async () => {
    await labExecOk("rs2", `ip addr add ${VIP4}/32 dev eth0 && ip addr add ${VIP6}/128 dev eth0 nodad`);
    try {
      const r = doctor();
      expect(r.code).toBe(2);
      const mac = macOf(lab, "rs2");
      expect(r.findings).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ host: "rs2", check: "vip-on-nic", severity: "error", setting: `${VIP4}/32 on eth0` }),
          expect.objectContaining({ host: "rs2", check: "vip-on-nic", severity: "error", setting: `${VIP6}/128 on eth0` }),
          expect.objectContaining({ host: "director", check: "arp-flux", message: `ARP for ${VIP4} is answered by ${mac}, real server rs2` }),
          expect.objectContaining({ host: "director", check: "ndp-flux", message: `neighbour discovery for ${VIP6} is answered by ${mac}, real server rs2` }),
        ]),
      );
      const plan = JSON.parse(lvsdr("plan", "--stack", "lab-v6", "--json").stdout) as { preflight: { host: string; check: string }[] };
      expect(plan.preflight).toEqual(
        expect.arrayContaining([expect.objectContaining({ host: "rs2", check: "vip-on-nic" }), expect.objectContaining({ host: "rs2", check: "vip-on-nic" })]),
      );
      const before = await hostSnapshots(HOSTS);
      const apply = lvsdr("apply", "--stack", "lab-v6", "--yes");
      expect(apply.code).toBe(1);
      expect(apply.stderr).toContain("preflight failed, nothing was changed");
      expect(await hostSnapshots(HOSTS)).toEqual(before);
    } finally {
      await labExec("rs2", `ip addr del ${VIP4}/32 dev eth0; ip addr del ${VIP6}/128 dev eth0`);
    }
  }, 180_000);

  it("strict rp_filter on a real server whose default route leaves by another interface: an error naming the interface and value", async () => {
    const was = (await labExecOk("rs3", "sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter")).trim().split("\n");
    await labExecOk(
      "rs3",
      [
        // A second uplink (a veth pair: the machine may have no dummy driver) holding the default route.
        "ip link add lvsdr-up0 type veth peer name lvsdr-up1",
        "ip link set lvsdr-up1 up",
        "ip link set lvsdr-up0 up",
        "ip addr add 192.0.2.3/24 dev lvsdr-up0",
        "ip route replace default via 192.0.2.1 dev lvsdr-up0",
        "sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.eth0.rp_filter=1",
      ].join(" && "),
    );
    try {
      const r = doctor();
      expect(r.code).toBe(2);
      const found = r.findings.find((f) => f.host === "rs3" && f.check === "rp-filter");
      expect(found).toEqual(expect.objectContaining({ severity: "error" }));
      expect(found!.setting).toContain("net.ipv4.conf.eth0.rp_filter=1");
      expect(found!.setting).toContain("lvsdr-up0");
      expect(found!.fix).toContain("rp_filter=2");
      const plan = JSON.parse(lvsdr("plan", "--stack", "lab-v6", "--json").stdout) as { preflight: { host: string; check: string }[] };
      expect(plan.preflight).toContainEqual(expect.objectContaining({ host: "rs3", check: "rp-filter" }));
    } finally {
      await labExecOk(
        "rs3",
        `ip route replace default via ${LAB_ADDRESSES.routerA} dev eth0; ip link del lvsdr-up0; sysctl -q -w net.ipv4.conf.all.rp_filter=${was[0]} net.ipv4.conf.eth0.rp_filter=${was[1]}`,
      );
    }
  }, 120_000);

  it("a real server's MTU below the director's: a warning (exit 0)", async () => {
    await labExecOk("rs2", "ip link set eth0 mtu 1400");
    try {
      const r = doctor();
      expect(r.code).toBe(0);
      expect(r.findings).toEqual([expect.objectContaining({ host: "rs2", check: "mtu", severity: "warning", setting: expect.stringContaining("1400") })]);
    } finally {
      await labExecOk("rs2", "ip link set eth0 mtu 1500");
    }
  }, 120_000);

  it("IPVS conntrack on while netfilter's conntrack is loaded on the director: a warning", async () => {
    const file = specFile((spec) => {
      spec.directors[0]!.ipvs = { conntrack: true };
    });
    expect(lvsdr("apply", "--file", file, "--yes").code).toBe(0);
    await labExecOk("director", "modprobe nf_conntrack");
    try {
      const r = doctor("--file", file);
      expect(r.findings).toEqual([expect.objectContaining({ host: "director", check: "conntrack", severity: "warning" })]);
      expect(r.code).toBe(0);
    } finally {
      applyLabV6();
      await labExec("director", "modprobe -r nf_conntrack");
    }
  }, 180_000);

  it("the DR path: a real server without the VIP on lo fails the probe through its MAC, with that reason", async () => {
    await labExecOk("rs3", `ip addr del ${VIP4}/32 dev lo`);
    try {
      const r = doctor();
      expect(r.code).toBe(2);
      const found = r.findings.find((f) => f.host === "rs3" && f.check === "data-path");
      expect(found).toEqual(expect.objectContaining({ severity: "error" }));
      expect(found!.message).toContain(VIP4);
      expect(`${found!.message} ${found!.setting}`).toMatch(/not on lo/);
      // The others answered through the same probe.
      expect(r.findings.filter((f) => f.check === "data-path").map((f) => f.host)).toEqual(["rs3"]);
    } finally {
      applyLabV6();
    }
  }, 180_000);

  it("a service listening only on the RIP: an error for that real server and port", async () => {
    const file = specFile((spec) => {
      spec.virtualServices.push({ name: "web81", vip: VIP4, protocol: "tcp", port: 81, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }] });
    });
    expect(lvsdr("apply", "--file", file, "--yes").code).toBe(0);
    // rs1 binds its RIP only; rs2 the wildcard: only rs1 is wrong.
    await labExecOk("rs1", `busybox httpd -p ${LAB_ADDRESSES.realServer(1)}:81 -h /tmp`);
    await labExecOk("rs2", "busybox httpd -p 81 -h /tmp");
    try {
      const r = doctor("--file", file);
      expect(r.code).toBe(2);
      expect(r.findings).toEqual([expect.objectContaining({ host: "rs1", check: "listening", severity: "error", message: expect.stringContaining("81") })]);
    } finally {
      await labExec("rs1", "pkill -f 'busybox httpd -p 198.51.100.10:81'");
      await labExec("rs2", "pkill -f 'busybox httpd -p 81 '");
      applyLabV6();
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
    applyLabV6();
    expect(doctor().findings).toEqual([]);
  }, 240_000);
});
