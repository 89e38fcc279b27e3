/**
 * The doctor's checks over real observations and probe output captured from network namespaces
 * (test/fixtures/doctor/README.md): rs1 set up right, rs2 with every mistake, rs3 without the VIP.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import type { ObservedHostState } from "../model/host-state";
import { parseDoctorProbe } from "../parse/doctor";
import { parseObservation } from "../parse/observe";
import { labLikeSpec } from "../testing/specs";
import { doctorChecks, type DoctorFinding } from "./doctor";
import { preflightHost } from "./preflight";

const fixture = (name: string) => readFileSync(join(__dirname, "../../test/fixtures/doctor", name), "utf8");

function cluster() {
  const parsed = parseCluster(
    labLikeSpec({
      virtualServices: [
        { name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }, { name: "rs3" }] },
        { name: "dns", vip: "198.51.100.5", protocol: "udp", port: 53, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }] },
      ],
    }),
  );
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return desiredClusterState(parsed.cluster);
}

/** rs3 was observed by hand (its namespace had no listener): as rs1, without the VIP and its sockets. */
function observedAll(rs2 = "observe-rs2.txt"): Map<string, ObservedHostState> {
  const rs1 = parseObservation("rs1", fixture("observe-rs1.txt"));
  const rs3: ObservedHostState = {
    ...rs1,
    host: "rs3",
    addresses: rs1.addresses.filter((a) => a.address !== "198.51.100.5").map((a) => (a.address === "198.51.100.10" ? { ...a, address: "198.51.100.12" } : a)),
    links: rs1.links!.map((l) => (l.name === "eth0" ? { ...l, mac: "3a:be:96:1b:98:d4" } : l)),
    doctor: { listeners: [], offloads: null },
  };
  return new Map([
    ["director", parseObservation("director", fixture("observe-director.txt"))],
    ["rs1", rs1],
    ["rs2", parseObservation("rs2", fixture(rs2))],
    ["rs3", rs3],
  ]);
}

const summary = (findings: DoctorFinding[]) => findings.map((f) => `${f.severity} ${f.host} ${f.check}: ${f.setting}`).sort();

describe("doctorChecks", () => {
  it("names every mistake of rs2 and rs3 with its setting, and nothing on rs1 or the director", () => {
    const findings = doctorChecks({ desired: cluster(), observed: observedAll(), probes: new Map([["director", parseDoctorProbe("director", fixture("probe.txt"))]]) });
    expect(summary(findings)).toEqual(
      [
        "error rs2 vip-on-nic: 198.51.100.5/32 on eth0",
        "error rs2 rp-filter: net.ipv4.conf.eth0.rp_filter=1 (all=1: strict), default route via eth1",
        "error director arp-flux: 198.51.100.5 answered by 62:31:ea:c8:4a:e8 (real server rs2)",
        // The probe also asked about an IPv6 VIP, which rs2 holds on its NIC too.
        "error director ndp-flux: 2001:db8:a::5 answered by 62:31:ea:c8:4a:e8 (real server rs2)",
        "error rs2 listening: tcp/80 bound to 198.51.100.11 only",
        "error rs2 listening: udp/53 bound to 198.51.100.11 only",
        "error rs3 data-path: 198.51.100.5 is not on lo",
        "error rs3 listening: nothing bound to tcp/80",
        "warning rs2 mtu: eth0 mtu 1400 < director eth0 mtu 1500",
      ].sort(),
    );
    for (const f of findings) {
      expect(f.why.length).toBeGreaterThan(20);
      expect(f.fix.length).toBeGreaterThan(10);
    }
  });

  it("names every MAC that answers ARP for the VIP: rs1 too once its arp_ignore is 0", () => {
    const findings = doctorChecks({ desired: cluster(), observed: observedAll(), probes: new Map([["director", parseDoctorProbe("director", fixture("probe-flux.txt"))]]) });
    expect(findings.filter((f) => f.check === "arp-flux").map((f) => f.message)).toEqual([
      "ARP for 198.51.100.5 is answered by 62:31:ea:c8:4a:e8, real server rs2",
      "ARP for 198.51.100.5 is answered by ba:40:30:6f:87:3b, real server rs1",
    ]);
  });

  it("a correct cluster passes clean: rs1 alone", () => {
    const desired = cluster();
    const only = { ...desired, hosts: desired.hosts.filter((h) => h.host === "director" || h.host === "rs1") };
    only.hosts = only.hosts.map((h) => (h.role === "director" ? { ...h, destinations: h.destinations.filter((d) => d.address === "198.51.100.10") } : h));
    const findings = doctorChecks({ desired: only, observed: observedAll(), probes: new Map([["director", parseDoctorProbe("director", fixture("probe-clean.txt"))]]) });
    expect(findings).toEqual([]);
  });

  it("a probe that could not run is a warning that says what to install", () => {
    const findings = doctorChecks({ desired: cluster(), observed: observedAll(), probes: new Map([["director", parseDoctorProbe("director", fixture("probe-no-tools.txt"))]]) });
    const warnings = findings.filter((f) => f.severity === "warning" && f.check !== "mtu");
    expect(warnings.map((f) => `${f.host} ${f.check}`).sort()).toEqual(
      ["director arp-flux", "director arp-flux", "director ndp-flux", "rs1 data-path", "rs2 data-path", "rs3 data-path"].sort(),
    );
    expect(warnings.find((f) => f.check === "ndp-flux")!.fix).toMatch(/install ndisc6/);
  });

  it("LRO on the director's NIC and IPVS conntrack with netfilter's table nearly full are warnings", () => {
    const observed = observedAll();
    const director = observed.get("director")!;
    observed.set("director", {
      ...director,
      sysctls: { ...director.sysctls, "net/ipv4/vs/conntrack": "1", "net/netfilter/nf_conntrack_count": "250000" },
      doctor: { listeners: null, offloads: { interface: "eth0", features: { "large-receive-offload": "on", "generic-receive-offload": "on" } } },
    });
    const findings = doctorChecks({ desired: cluster(), observed, probes: new Map() }).filter((f) => f.host === "director");
    expect(summary(findings)).toEqual([
      "warning director conntrack: net.ipv4.vs.conntrack=1, nf_conntrack 250000/262144",
      "warning director offload: eth0 large-receive-offload: on, net.ipv4.ip_forward=0",
    ]);
    expect(findings.find((f) => f.check === "conntrack")!.why).toMatch(/nearly full|90% full/);
  });

  it("a director without ethtool: the offload check says it could not run", () => {
    const observed = observedAll();
    observed.set("director", { ...observed.get("director")!, doctor: { listeners: null, offloads: { interface: "eth0", features: null } } });
    const findings = doctorChecks({ desired: cluster(), observed, probes: new Map() }).filter((f) => f.check === "offload");
    expect(findings.map((f) => f.fix)).toEqual(["install ethtool on the director (Debian: apt-get install ethtool)"]);
  });

  it("a default route through the DIP is an error; none is a warning", () => {
    const observed = observedAll();
    observed.set("rs1", { ...observed.get("rs1")!, defaultRoutes: [{ device: "eth0", gateway: "198.51.100.2" }] });
    observed.set("rs3", { ...observed.get("rs3")!, defaultRoutes: [] });
    const findings = doctorChecks({ desired: cluster(), observed, probes: new Map() }).filter((f) => f.check === "default-route");
    expect(summary(findings)).toEqual(["error rs1 default-route: default via 198.51.100.2 (the DIP of director)", "warning rs3 default-route: no IPv4 default route"]);
  });
});

describe("preflight takes the doctor's checks that decide whether a change is safe", () => {
  it("refuses a real server with the VIP on its NIC or strict rp_filter against its routes", () => {
    const desired = cluster().hosts.find((h) => h.host === "rs2")!;
    const problems = preflightHost(desired, observedAll().get("rs2")!);
    expect(problems.map((p) => p.check).filter((c) => c === "vip-on-nic" || c === "rp-filter")).toEqual(["vip-on-nic", "rp-filter"]);
    expect(problems.find((p) => p.check === "rp-filter")!.message).toMatch(/eth1.*fix: sysctl -w net.ipv4.conf.all.rp_filter=2/);
  });

  it("passes a real server set up right", () => {
    const desired = cluster().hosts.find((h) => h.host === "rs1")!;
    const problems = preflightHost(desired, observedAll().get("rs1")!);
    expect(problems.filter((p) => ["vip-on-nic", "rp-filter", "ipv6-disabled"].includes(p.check))).toEqual([]);
  });

  it("refuses an IPv6 VIP where IPv6 is disabled, or absent from the kernel", () => {
    const base = cluster().hosts.find((h) => h.host === "rs1")!;
    const desired = { ...base, addresses: [...base.addresses, { interface: "lo", address: "2001:db8:a::5", prefix: 128 }] };
    const seen = observedAll().get("rs1")!;
    const disabled = preflightHost(desired, { ...seen, sysctls: { ...seen.sysctls, "net/ipv6/conf/lo/disable_ipv6": "1" } });
    expect(disabled.filter((p) => p.check === "ipv6-disabled").map((p) => p.message)).toEqual([
      "IPv6 is disabled on lo, where the VIP 2001:db8:a::5 must go (fix: sysctl -w net.ipv6.conf.lo.disable_ipv6=0, and the same in /etc/sysctl.d)",
    ]);
    const absent = preflightHost(desired, { ...seen, sysctls: { ...seen.sysctls, "net/ipv6/conf/lo/disable_ipv6": null } });
    expect(absent.filter((p) => p.check === "ipv6-disabled").map((p) => p.message)).toEqual([expect.stringMatching(/boot without ipv6.disable=1/)]);
  });
});
