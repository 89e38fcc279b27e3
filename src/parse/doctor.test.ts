/** The doctor's parsers against real output captured in network namespaces (test/fixtures/doctor/README.md). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDoctorProbe, parseEthtoolFeatures, parseProcNetSockets } from "./doctor";
import { ParseError } from "./ipvsadm";
import { parseObservation } from "./observe";

const fixture = (name: string) => readFileSync(join(__dirname, "../../test/fixtures/doctor", name), "utf8");

describe("the observe script's doctor sections", () => {
  it("reads links (MAC, MTU), the default route and the listening sockets of a real server", () => {
    const rs2 = parseObservation("rs2", fixture("observe-rs2.txt"));
    expect(rs2.links).toEqual([
      { name: "lo", mac: "00:00:00:00:00:00", mtu: 65536 },
      { name: "eth0", mac: "62:31:ea:c8:4a:e8", mtu: 1400 },
      { name: "eth1", mac: "b2:77:08:df:d4:f6", mtu: 1500 },
    ]);
    expect(rs2.defaultRoutes).toEqual([{ device: "eth1", gateway: "203.0.113.1" }]);
    expect(rs2.doctor?.listeners).toEqual([
      { protocol: "tcp", family: 4, address: "198.51.100.11", port: 80 },
      { protocol: "udp", family: 4, address: "198.51.100.11", port: 53 },
    ]);
    expect(rs2.sysctls["net/ipv4/conf/all/rp_filter"]).toBe("1");
    expect(rs2.sysctls["net/ipv6/conf/lo/disable_ipv6"]).toBe("0");
  });

  it("reads wildcard and VIP-bound sockets, IPv6 included", () => {
    expect(parseObservation("rs1", fixture("observe-rs1.txt")).doctor?.listeners).toEqual([
      { protocol: "tcp", family: 4, address: "0.0.0.0", port: 80 },
      { protocol: "tcp", family: 6, address: "::", port: 443 },
      { protocol: "udp", family: 4, address: "198.51.100.5", port: 53 },
    ]);
  });

  it("reads a director's offloads, forwarding and conntrack settings", () => {
    const director = parseObservation("director", fixture("observe-director.txt"));
    expect(director.doctor?.offloads?.interface).toBe("eth0");
    expect(director.doctor?.offloads?.features?.["large-receive-offload"]).toBe("off [fixed]");
    expect(director.doctor?.offloads?.features?.["generic-receive-offload"]).toBe("off");
    expect(director.sysctls["net/ipv4/ip_forward"]).toBe("0");
    expect(director.sysctls["net/netfilter/nf_conntrack_max"]).toBe("262144");
    // Not loaded in the namespace: the spec's IPVS keys are absent.
    expect(director.sysctls["net/ipv4/vs/conntrack"]).toBeNull();
  });
});

describe("/proc/net sockets and ethtool", () => {
  it("keeps only LISTEN TCP and bound UDP sockets, and reads an IPv4-mapped address as IPv4", () => {
    const text = [
      "/proc/net/tcp:   0: 0B6433C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
      "/proc/net/tcp:   1: 0B6433C6:0050 0F6433C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0",
      "/proc/net/tcp6:   0: 0000000000000000FFFF0000056433C6:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0",
    ].join("\n");
    expect(parseProcNetSockets(text)).toEqual([
      { protocol: "tcp", family: 4, address: "198.51.100.11", port: 80 },
      { protocol: "tcp", family: 6, address: "198.51.100.5", port: 80 },
    ]);
  });

  it("reads ethtool -k's features, nested ones included", () => {
    const features = parseEthtoolFeatures("Features for eth0:\nrx-checksumming: on\n\ttx-checksum-ipv4: off [fixed]\nlarge-receive-offload: on\n");
    expect(features["large-receive-offload"]).toBe("on");
    expect(features["tx-checksum-ipv4"]).toBe("off [fixed]");
  });
});

describe("the doctor probe's output", () => {
  it("reads who answered for each VIP and which DR paths answered", () => {
    const probe = parseDoctorProbe("director", fixture("probe.txt"));
    // The blocks come in the script's order: each job writes its own file, printed after the last one ends.
    expect(probe.flux).toEqual([
      { vip: "198.51.100.5", family: 4, answers: ["62:31:ea:c8:4a:e8"], error: null },
      { vip: "2001:db8:a::5", family: 6, answers: ["62:31:ea:c8:4a:e8"], error: null },
      { vip: "198.51.100.6", family: 4, answers: [], error: null },
    ]);
    expect(probe.paths).toEqual([
      { vip: "198.51.100.5", mac: "ba:40:30:6f:87:3b", answered: true, error: null },
      { vip: "198.51.100.5", mac: "62:31:ea:c8:4a:e8", answered: true, error: null },
      { vip: "198.51.100.5", mac: "3a:be:96:1b:98:d4", answered: false, error: null },
    ]);
  });

  it("reads no answer from ndisc6 as none, and a missing tool as a probe that did not run", () => {
    expect(parseDoctorProbe("director", fixture("probe-clean.txt")).flux.map((f) => [f.vip, f.answers.length, f.error])).toEqual([
      ["198.51.100.5", 0, null],
      ["2001:db8:a::5", 0, null],
      ["198.51.100.6", 0, null],
    ]);
    const none = parseDoctorProbe("director", fixture("probe-no-tools.txt"));
    expect(none.flux.map((f) => f.error)).toEqual([
      "arping is not installed on the director",
      "ndisc6 is not installed on the director",
      "arping is not installed on the director",
    ]);
    expect(none.paths.every((p) => !p.answered && p.error !== null)).toBe(true);
  });

  it("refuses output cut short", () => {
    expect(() => parseDoctorProbe("director", fixture("probe.txt").replace("@@lvsdr end", ""))).toThrow(ParseError);
  });
});
