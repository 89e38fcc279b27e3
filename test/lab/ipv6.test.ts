/**
 * IPv6 DR end to end, and a mixed cluster: the dual-stack lab stack (stacks/Pulumi.lab-v6.yaml)
 * serves one IPv4 and one IPv6 service from one director through the same four real servers.
 * Everything is real: the packets, the neighbour discovery, the kernel's IPVS.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { LAB_ADDRESSES, labExec, labExecOk } from "../../lab";
import { readClusterValue } from "../../src/config/load";
import { arpRepliers, hostSnapshots, lvsdr, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

const VIP4 = LAB_ADDRESSES.vip;
const VIP6 = LAB_ADDRESSES.vip6;
const REAL_SERVERS = ["rs1", "rs2", "rs3", "rsvm1"];
const HOSTS = ["director", ...REAL_SERVERS];

/** Which real servers answered `requests` requests to a URL from the client. */
async function answers(url: string, family: "-4" | "-6", requests: number): Promise<string[]> {
  const out = await labExecOk("client", `for i in $(seq ${requests}); do curl ${family} -s -m 3 ${url} || echo FAILED; done`);
  return out.trim().split("\n");
}

/** The director's counters for the IPv6 service: [Conns, InPkts, OutPkts]. */
async function v6Counters(): Promise<number[]> {
  const stats = await labExecOk("director", `ipvsadm -Ln --stats --exact -t [${VIP6}]:80`);
  const line = stats.split("\n").find((l) => l.startsWith("TCP"));
  return (line ?? "").trim().split(/\s+/).slice(2, 5).map(Number);
}

describeLab("IPv6 DR and a mixed cluster on the lab", (lab) => {
  beforeAll(() => {
    const reset = lvsdr("destroy", "--stack", "lab-v6", "--yes");
    if (reset.code !== 0) throw new Error(`could not reset the lab: ${reset.stderr}`);
    const r = lvsdr("apply", "--stack", "lab-v6", "--yes");
    if (r.code !== 0) throw new Error(`apply --stack lab-v6 failed (${r.code}): ${r.stderr}`);
  }, 240_000);
  afterAll(() => {
    lvsdr("destroy", "--stack", "lab-v6", "--yes");
  }, 180_000);

  it("curl -6 to the VIP reaches every real server, and the IPv4 service of the same director still works", async () => {
    await labExec("client", `ip -6 neigh flush to ${VIP6}; ip neigh flush to ${VIP4}`);
    const v6 = await answers(`http://[${VIP6}]/`, "-6", 12);
    expect(v6).not.toContain("FAILED");
    expect(new Set(v6)).toEqual(new Set(REAL_SERVERS));
    const v4 = await answers(`http://${VIP4}/`, "-4", 8);
    expect(new Set(v4)).toEqual(new Set(REAL_SERVERS));
  }, 120_000);

  it("only the director answers neighbour solicitations for the VIP; each real server holds it on lo as /128", async () => {
    const director = lab.hosts.hosts.find((h) => h.name === "director")!;
    // -m: wait for every answer, not the first.
    const out = await labExecOk("client", `ndisc6 -m -n -r 3 -w 1000 ${VIP6} eth0`);
    const macs = arpRepliers(out);
    expect(macs.length).toBeGreaterThan(0);
    expect(new Set(macs)).toEqual(new Set([director.mac.toLowerCase()]));
    for (const rs of REAL_SERVERS) {
      const lo = JSON.parse(await labExecOk(rs, `ip -j -6 addr show dev lo to ${VIP6}/128`)) as { addr_info: { local?: string; prefixlen?: number }[] }[];
      // iproute2's JSON lists a filtered-out address as {}.
      expect(lo[0]?.addr_info.filter((a) => a.local !== undefined)).toEqual([expect.objectContaining({ local: VIP6, prefixlen: 128 })]);
    }
    // The director's VIP is usable at once: added without duplicate address detection, never tentative.
    const flags = await labExecOk("director", `ip -6 addr show dev eth0 to ${VIP6}/128`);
    expect(flags).toContain("nodad");
    expect(flags).not.toContain("tentative");
  }, 60_000);

  it("the director's OutPkts stay 0: replies go from the real servers straight to the client", async () => {
    await answers(`http://[${VIP6}]/`, "-6", 8);
    // The kernel folds its per-CPU counters into these totals every two seconds.
    await new Promise((r) => setTimeout(r, 2500));
    const [conns, inPkts, outPkts] = await v6Counters();
    expect(conns).toBeGreaterThan(0);
    expect(inPkts).toBeGreaterThan(0);
    expect(outPkts).toBe(0);
  }, 60_000);

  it("drift names an IPv6 VIP taken off a real server and an IPv6 destination changed by hand; re-apply mends both", async () => {
    expect(lvsdr("drift", "--stack", "lab-v6").code).toBe(0);
    await labExecOk("rs2", `ip addr del ${VIP6}/128 dev lo`);
    await labExecOk("director", `ipvsadm -e -t [${VIP6}]:80 -r [${LAB_ADDRESSES.ip6(LAB_ADDRESSES.realServer(1))}]:80 -g -w 7`);
    const drift = lvsdr("drift", "--stack", "lab-v6");
    expect(drift.code).toBe(2);
    expect(drift.stdout).toMatch(new RegExp(`^rs2\\s+missing\\s+address\\s+lo/${VIP6}/128\\s`, "m"));
    expect(drift.stdout).toMatch(/^director\s+changed\s+destination\s.*2001:db8:100::10.*weight/m);
    const apply = lvsdr("apply", "--stack", "lab-v6", "--yes");
    expect(apply.code).toBe(0);
    expect(lvsdr("drift", "--stack", "lab-v6").code).toBe(0);
    expect(new Set(await answers(`http://[${VIP6}]/`, "-6", 12))).toEqual(new Set(REAL_SERVERS));
  }, 180_000);

  it("the boot script puts the IPv6 VIPs back (director NIC without DAD, real server lo)", async () => {
    // What a boot finds: no VIPs, an empty IPVS table.
    await labExecOk("director", `ipvsadm -C; ip addr del ${VIP6}/128 dev eth0; ip addr del ${VIP4}/32 dev eth0`);
    await labExecOk("rsvm1", `ip addr del ${VIP6}/128 dev lo`);
    // What a boot runs: the unit that runs the restore script.
    await labExecOk("director", "systemctl restart lvs-dr.service");
    await labExecOk("rsvm1", "systemctl restart lvs-dr.service");
    expect(await labExecOk("director", `ip -6 addr show dev eth0 to ${VIP6}/128`)).toContain("nodad");
    expect(await labExecOk("rsvm1", `ip -6 -o addr show dev lo to ${VIP6}/128`)).toContain(VIP6);
    expect(lvsdr("drift", "--stack", "lab-v6").code).toBe(0);
  }, 120_000);

  it("the same-link preflight asks a new IPv6 RIP by neighbour discovery: one that does not answer is refused before any host changes", async () => {
    // A spec without rs3 in the IPv6 service, applied: then rs3's IPv6 RIP is new to the director.
    const spec = readClusterValue({ stack: "lab-v6", stacksDir: resolve(REPO, "stacks") }).value as { virtualServices: { name: string; realServers: { name: string }[] }[] };
    const http6 = spec.virtualServices.find((s) => s.name === "http6")!;
    http6.realServers = http6.realServers.filter((d) => d.name !== "rs3");
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-v6-"));
    const file = join(dir, "without-rs3.yaml");
    writeFileSync(file, stringify({ config: { "lvs-dr:cluster": spec } }));
    expect(lvsdr("apply", "--file", file, "--yes").code).toBe(0);
    const rs3v6 = LAB_ADDRESSES.ip6(LAB_ADDRESSES.realServer(3));
    try {
      // rs3 loses its IPv6 address, and the director forgets what it knew of it.
      await labExecOk("rs3", `ip addr del ${rs3v6}/64 dev eth0`);
      await labExec("director", `ip -6 neigh del ${rs3v6} dev eth0`);
      const before = await hostSnapshots(HOSTS);
      const r = lvsdr("apply", "--stack", "lab-v6", "--yes");
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`director.*${rs3v6}.*does not answer neighbour solicitations on eth0`));
      expect(await hostSnapshots(HOSTS)).toEqual(before);
    } finally {
      await labExecOk("rs3", `ip addr replace ${rs3v6}/64 dev eth0 nodad`);
    }
    // With its address back it answers, and the same apply goes through.
    expect(lvsdr("apply", "--stack", "lab-v6", "--yes").code).toBe(0);
    expect(new Set(await answers(`http://[${VIP6}]/`, "-6", 12))).toEqual(new Set(REAL_SERVERS));
  }, 240_000);

  it("destroy takes the IPv6 VIPs and services away with the IPv4 ones", async () => {
    expect(lvsdr("destroy", "--stack", "lab-v6", "--yes").code).toBe(0);
    expect((await labExecOk("director", "ipvsadm-save -n")).trim()).toBe("");
    expect(await labExecOk("director", `ip -o addr show to ${VIP6}/128`)).toBe("");
    for (const rs of REAL_SERVERS) expect(await labExecOk(rs, `ip -o addr show dev lo to ${VIP6}/128`)).toBe("");
    expect(lvsdr("drift", "--stack", "lab-v6").code).toBe(2);
  }, 180_000);
});
