/** Parsers against real output captured in the lab (test/fixtures/README.md says how). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { textSha256 } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { parseIpAddr, parseNeighbours, parseRouteGet } from "./ip";
import { kernelTableListing, parseIpvsListing, parseIpvsRules, parseKernelTable, ParseError } from "./ipvsadm";
import { destinationKey, serviceKey } from "../model/keys";
import { parseObservation } from "./observe";
import { parseOwnershipRecord } from "./ownership";
import { parseSysctlOutput } from "./sysctl";

const fixture = (...parts: string[]) => readFileSync(join(__dirname, "../../test/fixtures", ...parts), "utf8");

describe("ipvsadm -Sn", () => {
  const table = parseIpvsRules(fixture("director", "ipvsadm-save.txt"));

  it("reads every service with scheduler, sorted flags and persistence", () => {
    expect(table.services).toEqual([
      { protocol: "tcp", family: 4, address: "198.51.100.5", port: 80, fwmark: 0, scheduler: "rr", flags: [], persistence: null },
      { protocol: "tcp", family: 4, address: "198.51.100.6", port: 443, fwmark: 0, scheduler: "mh", flags: ["mh-port"], persistence: null },
      { protocol: "udp", family: 4, address: "198.51.100.5", port: 53, fwmark: 0, scheduler: "wrr", flags: [], persistence: { timeout: 300, netmask: "255.255.255.0" } },
      { protocol: "fwmark", family: 4, address: "", port: 0, fwmark: 7, scheduler: "sh", flags: ["sh-fallback", "sh-port"], persistence: null },
    ]);
  });

  it("reads destinations with forwarding and weight (0 included), fwmark ones on port 0", () => {
    expect(table.destinations).toHaveLength(9);
    expect(table.destinations[2]).toEqual({
      service: "tcp:198.51.100.5:80",
      address: "198.51.100.12",
      port: 80,
      forwarding: "dr",
      weight: 0,
      upperThreshold: 0,
      lowerThreshold: 0,
    });
    expect(table.destinations[8]).toEqual({ service: "fwmark:7", address: "198.51.100.12", port: 0, forwarding: "dr", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  });

  it("reads an empty table (empty output) as no entries", () => {
    expect(fixture("director", "ipvsadm-save-empty.txt")).toBe("");
    expect(parseIpvsRules("")).toEqual({ services: [], destinations: [] });
  });

  it("refuses a line it does not understand, saying which", () => {
    expect(() => parseIpvsRules("-A -t 198.51.100.5:80 -s rr\n-Z nonsense")).toThrow(ParseError);
    expect(() => parseIpvsRules("-Q -t 198.51.100.5:80")).toThrow(/line 1/);
  });
});

describe("ipvsadm -Ln --exact --thresholds", () => {
  const listed = parseIpvsListing(fixture("director", "ipvsadm-Ln-exact-thresholds.txt"));

  it("gives every service as the rules form does: scheduler, flags, persistence", () => {
    // The same table's rules form, captured beside it.
    const rules = parseIpvsRules(fixture("director", "ipvsadm-S-n.txt"));
    expect([...listed.services].sort((a, b) => serviceKey(a).localeCompare(serviceKey(b)))).toEqual([...rules.services].sort((a, b) => serviceKey(a).localeCompare(serviceKey(b))));
    expect(listed.destinations.map(destinationKey).sort()).toEqual(rules.destinations.map(destinationKey).sort());
  });

  it("gives thresholds and counters per destination (the rules form has neither)", () => {
    const byKey = new Map(listed.destinations.map((d) => [destinationKey(d), d]));
    expect(byKey.size).toBe(9);
    expect(byKey.get("tcp:198.51.100.6:443/198.51.100.11:443")).toMatchObject({ upperThreshold: 100, lowerThreshold: 10, activeConnections: 0, inactiveConnections: 0 });
    expect(byKey.get("tcp:198.51.100.5:80/198.51.100.10:80")).toMatchObject({ upperThreshold: 0, lowerThreshold: 0, activeConnections: 0, inactiveConnections: 3 });
    expect(byKey.get("fwmark:7/198.51.100.12:0")?.upperThreshold).toBe(100);
  });
});

describe("iproute2 JSON", () => {
  it("reads addresses on a real server, the VIP on lo as /32", () => {
    const { addresses, interfaces } = parseIpAddr(fixture("real-server", "ip-j-addr.txt"));
    expect(addresses).toEqual(
      expect.arrayContaining([
        { interface: "lo", address: "198.51.100.5", prefix: 32 },
        { interface: "eth0", address: "198.51.100.10", prefix: 24 },
      ]),
    );
    expect(interfaces.map((i) => i.name)).toEqual(["lo", "eth0"]);
  });

  it("reads the director's addresses and MAC", () => {
    const { addresses, interfaces } = parseIpAddr(fixture("director", "ip-j-addr.txt"));
    expect(addresses).toContainEqual({ interface: "eth0", address: "198.51.100.2", prefix: 24 });
    expect(interfaces.find((i) => i.name === "eth0")?.mac).toBe("52:54:00:c6:33:02");
  });

  it("tells on-link routes from routes through a gateway", () => {
    expect(parseRouteGet("198.51.100.10", fixture("director", "ip-j-route-get-onlink.txt"))).toEqual({
      destination: "198.51.100.10",
      device: "eth0",
      gateway: null,
      source: "198.51.100.2",
    });
    expect(parseRouteGet("203.0.113.10", fixture("director", "ip-j-route-get-via.txt"))).toEqual({
      destination: "203.0.113.10",
      device: "eth0",
      gateway: "198.51.100.1",
      source: "198.51.100.2",
    });
    expect(parseRouteGet("203.0.113.99", "RTNETLINK answers: Network is unreachable\n")).toEqual({ destination: "203.0.113.99", device: null, gateway: null, source: null });
  });

  it("tells resolved neighbours (reachable, stale, permanent) from unresolved ones (incomplete, failed)", () => {
    const resolved = (file: string) => Object.fromEntries(parseNeighbours(fixture("director", file)).map((n) => [`${n.device}/${n.address}`, n.resolved]));
    expect(resolved("ip-j-neigh.txt")).toEqual({ "eth0/198.51.100.254": true, "eth0/198.51.100.10": true, "eth0/198.51.100.11": true, "eth0/198.51.100.240": true });
    expect(resolved("ip-j-neigh-states.txt")).toEqual({
      "eth0/198.51.100.97": true,
      "eth0/198.51.100.98": false,
      "eth0/198.51.100.99": false,
      "eth0/198.51.100.10": true,
      "eth0/198.51.100.11": true,
      "eth0/198.51.100.12": true,
      "eth0/198.51.100.254": true,
    });
    expect(() => parseNeighbours("RTNETLINK answers: Operation not permitted")).toThrow(/ip -j neigh show/);
  });
});

describe("sysctl", () => {
  it("reads `sysctl` output into slash keys", () => {
    expect(parseSysctlOutput(fixture("real-server", "sysctl.txt"))).toMatchObject({
      "net/ipv4/conf/all/arp_ignore": "1",
      "net/ipv4/conf/all/arp_announce": "2",
      "net/ipv4/conf/lo/arp_ignore": "1",
      "net/ipv4/conf/eth0/arp_announce": "2",
      "net/ipv4/conf/all/rp_filter": "0",
    });
  });
});

describe("the observe script's output", () => {
  it("turns a real director's observation into structured state", () => {
    const state = parseObservation("director", fixture("observe", "director.txt"));
    expect(state.tools).toEqual(expect.arrayContaining(["ip", "ipvsadm", "flock", "grep", "sha256sum"]));
    expect(state.interfaces).toEqual(["lo", "eth0"]);
    // A freshly booted director: ipvsadm is there, the ip_vs module not yet loaded.
    expect(state.ipvs.status).toBe("not-loaded");
    expect(state.ipvs.fingerprint).toBeNull();
    expect(state.sysctls["net/ipv4/conf/eth0/arp_ignore"]).toBe("0");
    expect(state.files[hostPaths.ownership]).toBeNull();
    expect(state.ownership).toBeNull();
    expect(state.routes.find((r) => r.destination === "203.0.113.10")?.gateway).toBe("198.51.100.1");
    expect(state.routes).toHaveLength(5);
    expect(state.routes.filter((r) => r.gateway === null).map((r) => r.destination)).toEqual(["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.230"]);
    // Its neighbour table, captured before any RIP was talked to: only the router.
    expect(state.neighbours).toEqual([{ address: "198.51.100.254", device: "eth0", resolved: true }]);
  });

  it("turns a real server's observation into structured state", () => {
    const state = parseObservation("rs1", fixture("observe", "real-server.txt"));
    expect(state.ipvs.status).toBe("not-observed");
    expect(Object.keys(state.sysctls)).toEqual(expect.arrayContaining(["net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/eth0/arp_announce"]));
  });

  it("reads what the tool wrote on a real director after applying the lab stack", () => {
    const state = parseObservation("director", fixture("observe", "director-managed.txt"));
    expect(state.ownership?.cluster).toBe("lab");
    expect(state.ipvs.services.map((s) => s.address)).toEqual(["198.51.100.5"]);
    expect(state.ipvs.destinations.map((d) => `${d.address} ${d.weight}`)).toEqual(["198.51.100.10 1", "198.51.100.11 1", "198.51.100.12 1", "198.51.100.230 1"]);
    expect(state.addresses).toContainEqual({ interface: "eth0", address: "198.51.100.5", prefix: 32 });
    expect(state.files[hostPaths.systemdUnitLink]).toEqual({ isLink: true, target: hostPaths.systemdUnit });
    // Files come back whole. The rules file the tool wrote holds the table observed.
    const rules = state.files[hostPaths.ipvsRules] as { isLink: false; sha256: string; content: string };
    expect(rules.sha256).toBe(textSha256(rules.content));
    const persisted = parseIpvsRules(rules.content);
    expect(persisted.services).toEqual(state.ipvs.services);
    expect(persisted.destinations).toEqual(state.ipvs.destinations.map(({ activeConnections: _a, inactiveConnections: _i, ...d }) => d));
    expect(state.files[hostPaths.ownership]).toMatchObject({ isLink: false, content: expect.stringContaining('"cluster": "lab"') });
  });

  it("fingerprints the IPVS table exactly as the apply script's check does on the host", () => {
    // Captured beside it: what the director's own `awk ... /proc/net/ip_vs | sha256sum` printed.
    for (const name of ["director-managed", "director-keepalived"]) {
      const onHost = /^([0-9a-f]{64}) {2}-$/m.exec(fixture("observe", `${name}-ipvs-sha256sum.txt`))?.[1];
      expect(onHost).toMatch(/^[0-9a-f]{64}$/);
      expect(parseObservation("director", fixture("observe", name + ".txt")).ipvs.fingerprint).toBe(onHost);
    }
  });

  it("takes services, thresholds and counters from ipvsadm's listing, weights from the kernel's, and refuses listings that disagree", () => {
    const text = fixture("observe", "director-managed.txt");
    // rs2 with connections, 7 active and 3 inactive, in both listings.
    const busy = text
      .replace(/( {2}-> 198\.51\.100\.11:80 +0 +0 +)0( +)0/, "$17$23")
      .replace("  -> C633640B:0050      Route   1      0          0", "  -> C633640B:0050      Route   1      7          3");
    expect(busy).not.toBe(text);
    expect(parseObservation("director", busy).ipvs.destinations.find((d) => d.address === "198.51.100.11")).toMatchObject({
      weight: 1,
      activeConnections: 7,
      inactiveConnections: 3,
    });
    // Counters are no change of the table; a weight is.
    expect(parseObservation("director", busy).ipvs.fingerprint).toBe(parseObservation("director", text).ipvs.fingerprint);
    // The weight is the kernel's.
    const heavier = parseObservation("director", text.replace("  -> C633640B:0050      Route   1 ", "  -> C633640B:0050      Route   4 "));
    expect(heavier.ipvs.destinations.find((d) => d.address === "198.51.100.11")?.weight).toBe(4);
    expect(heavier.ipvs.fingerprint).not.toBe(parseObservation("director", text).ipvs.fingerprint);
    // The table changed between the two reads: the kernel lists a destination ipvsadm did not, or not one it did.
    expect(() => parseObservation("director", text.replace("  -> C633640A:0050", "  -> C633640D:0050      Route   1      0          0         \n  -> C633640A:0050"))).toThrow(
      /the IPVS table changed while it was observed/,
    );
    expect(() => parseObservation("director", text.replace(/\n {2}-> C633640A:0050[^\n]*/, ""))).toThrow(/the IPVS table changed while it was observed/);
    expect(() => parseObservation("director", text.replace(/\0\/proc\/net\/ip_vs:[^\0]*/, ""))).toThrow(/\/proc\/net\/ip_vs was not read/);
  });

  it("reads the kernel's listing in hex: IPv4, IPv6 and firewall-mark services", () => {
    const proc = [
      "IP Virtual Server version 1.2.1 (size=4096)",
      "Prot LocalAddress:Port Scheduler Flags",
      "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn",
      "TCP  C6336405:0050 rr  ",
      "  -> C633640A:0050      Route   3      2          1         ",
      "UDP  [2001:0db8:0000:0000:0000:0000:0000:0005]:0035 wrr ",
      "  -> [2001:0db8:0000:0000:0000:0000:0000:000a]:0035      Route   1      0          4         ",
      "FWM  00000007 sh ",
      "  -> [2001:0db8:0000:0000:0000:0000:0000:000b]:0000      Route   2      5          0         ",
      "",
    ].join("\n");
    expect([...parseKernelTable(proc)]).toEqual([
      ["tcp:198.51.100.5:80/198.51.100.10:80", { forwarding: "dr", weight: 3, activeConnections: 2, inactiveConnections: 1 }],
      ["udp:[2001:db8::5]:53/[2001:db8::a]:53", { forwarding: "dr", weight: 1, activeConnections: 0, inactiveConnections: 4 }],
      ["fwmark6:7/[2001:db8::b]:0", { forwarding: "dr", weight: 2, activeConnections: 5, inactiveConnections: 0 }],
    ]);
    expect(kernelTableListing(proc).split("\n").slice(3, 5)).toEqual(["TCP  C6336405:0050 rr  ", "-> C633640A:0050 Route 3"]);
  });

  it("refuses output that was cut short", () => {
    const text = fixture("observe", "director.txt");
    expect(() => parseObservation("director", text.slice(0, text.indexOf("@@lvsdr end")))).toThrow(/cut short/);
    expect(() => parseObservation("director", "bash: ip: command not found\n")).toThrow(/observe marker/);
  });
});

describe("ownership record", () => {
  it("reads what it writes and refuses anything else", () => {
    const record = {
      version: 1,
      cluster: "lab",
      host: "rs1",
      addresses: ["lo/198.51.100.5/32"],
      services: [],
      destinations: [],
      sysctls: { "net/ipv4/conf/all/arp_ignore": "0" },
      files: [hostPaths.sysctlConf],
    };
    expect(parseOwnershipRecord(JSON.stringify(record))).toEqual(record);
    expect(() => parseOwnershipRecord(JSON.stringify({ ...record, version: 2 }))).toThrow(/version/);
    expect(() => parseOwnershipRecord("{")).toThrow(/ownership record/);
  });
});
