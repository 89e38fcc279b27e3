import { parseCluster } from "../config/load";
import { labLikeSpec } from "../testing/specs";
import { desiredClusterState } from "./desired";

function parsed(spec: unknown) {
  const result = parseCluster(spec);
  if (!result.ok) throw new Error(result.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return result.cluster;
}

describe("desired state from the addresses validation parsed", () => {
  const v6 = labLikeSpec({
    directors: [{ name: "director", interface: "eth0", dip: "2001:DB8:0:0::2/64" }],
    realServers: [{ name: "rs1", rip: "2001:db8:0000::a", interface: "eth0" }],
    virtualServices: [
      { name: "web", vip: "2001:DB8::5", protocol: "tcp", port: 80, persistence: { timeout: 60, netmask: 64 }, realServers: [{ name: "rs1" }] },
      { name: "web-sticky", vip: "2001:db8::6", protocol: "tcp", port: 80, persistence: { timeout: 60 }, realServers: [] },
    ],
  });

  it("writes every address in canonical form whatever the spelling in the spec", () => {
    const desired = desiredClusterState(parsed(v6));
    const director = desired.hosts.find((h) => h.host === "director")!;
    expect(director.primaryAddress).toBe("2001:db8::2");
    expect(director.primaryPrefix).toBe(64);
    expect(director.addresses.map((a) => [a.address, a.prefix])).toEqual([
      ["2001:db8::5", 128],
      ["2001:db8::6", 128],
    ]);
    expect(director.services.map((s) => [s.family, s.address, s.persistence?.netmask])).toEqual([
      [6, "2001:db8::5", "64"],
      [6, "2001:db8::6", "128"],
    ]);
    expect(director.destinations.map((d) => d.address)).toEqual(["2001:db8::a"]);
    const rs1 = desired.hosts.find((h) => h.host === "rs1")!;
    expect(rs1.primaryAddress).toBe("2001:db8::a");
    expect(desired.targets.map((t) => t.connection.host)).toEqual(["2001:db8::2", "2001:db8::a"]);
  });

  it("registers a dual-stack real server by its RIP in each service's family", () => {
    const dual = labLikeSpec({
      directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", dip6: "2001:db8:a::2/64" }],
      realServers: [{ name: "rs1", rip: "198.51.100.10", rip6: "2001:DB8:A::10", interface: "eth0" }],
      virtualServices: [
        { name: "web4", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] },
        { name: "web6", vip: "2001:db8:a::5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] },
      ],
    });
    const desired = desiredClusterState(parsed(dual));
    const director = desired.hosts.find((h) => h.host === "director")!;
    expect(director.destinations.map((d) => [d.service, d.address])).toEqual([
      ["tcp:198.51.100.5:80", "198.51.100.10"],
      ["tcp:[2001:db8:a::5]:80", "2001:db8:a::10"],
    ]);
    expect(director.onLinkPeers).toEqual(["198.51.100.10", "2001:db8:a::10"]);
    expect(director.addresses.map((a) => `${a.address}/${a.prefix}`)).toEqual(["198.51.100.5/32", "2001:db8:a::5/128"]);
    const rs1 = desired.hosts.find((h) => h.host === "rs1")!;
    expect(rs1.addresses.map((a) => `${a.interface} ${a.address}/${a.prefix}`)).toEqual(["lo 198.51.100.5/32", "lo 2001:db8:a::5/128"]);
    // The connection goes to the primary addresses; the IPv6 ones only carry traffic.
    expect(desired.targets.map((t) => t.connection.host)).toEqual(["198.51.100.2", "198.51.100.10"]);
  });

  it("writes an IPv4 persistence mask dotted, as ipvsadm prints it, and one client per entry by default", () => {
    const spec = labLikeSpec({
      virtualServices: [
        { name: "web", vip: "198.51.100.5", protocol: "tcp", port: 80, persistence: { timeout: 60, netmask: "255.255.255.0" }, realServers: [{ name: "rs1" }] },
        { name: "web-sticky", vip: "198.51.100.6", protocol: "tcp", port: 80, persistence: { timeout: 60 }, realServers: [] },
      ],
    });
    const director = desiredClusterState(parsed(spec)).hosts[0]!;
    expect(director.services.map((s) => s.persistence?.netmask)).toEqual(["255.255.255.0", "255.255.255.255"]);
  });

  it("keeps the parsed addresses out of the spec's JSON, so digests and Pulumi inputs are the spec alone", () => {
    const cluster = parsed(v6);
    expect(Object.keys(JSON.parse(JSON.stringify(cluster)))).not.toContain("addresses");
    expect(cluster.addresses.vip({ name: "web" }).text).toBe("2001:db8::5");
  });

  it("a validated cluster, changed and validated again, gets its addresses anew", () => {
    const cluster = parsed(v6);
    const again = parsed({ ...cluster, realServers: [{ ...cluster.realServers[0]!, rip: "2001:db8::b" }] });
    expect(again.addresses.rip({ name: "rs1" }).text).toBe("2001:db8::b");
    expect(desiredClusterState(again).hosts.find((h) => h.host === "rs1")!.primaryAddress).toBe("2001:db8::b");
  });

  it("refuses a name validation never saw instead of guessing", () => {
    const cluster = parsed(v6);
    expect(() => desiredClusterState({ ...cluster, realServers: [...cluster.realServers, { ...cluster.realServers[0]!, name: "rs9" }] })).toThrow(
      'real server "rs9" is not in the validated spec',
    );
  });
});
