/** Parsers against real output captured in the lab (test/fixtures/README.md says how). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { textSha256 } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { parseIpAddr, parseNeighbours, parseRouteGet } from "./ip";
import { parseIpvsRules, parseIpvsThresholds, ParseError } from "./ipvsadm";
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
    expect(table.destinations[2]).toEqual({ service: "tcp:198.51.100.5:80", address: "198.51.100.12", port: 80, forwarding: "dr", weight: 0, upperThreshold: 0, lowerThreshold: 0 });
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
  it("gives thresholds and counters per destination key", () => {
    const t = parseIpvsThresholds(fixture("director", "ipvsadm-Ln-exact-thresholds.txt"));
    expect(t.size).toBe(9);
    expect(t.get("tcp:198.51.100.6:443/198.51.100.11:443")).toEqual({ upperThreshold: 100, lowerThreshold: 10, activeConnections: 0, inactiveConnections: 0 });
    expect(t.get("tcp:198.51.100.5:80/198.51.100.10:80")).toEqual({ upperThreshold: 0, lowerThreshold: 0, activeConnections: 0, inactiveConnections: 3 });
    expect(t.get("fwmark:7/198.51.100.12:0")?.upperThreshold).toBe(100);
  });
});

describe("iproute2 JSON", () => {
  it("reads addresses on a real server, the VIP on lo as /32", () => {
    const { addresses, interfaces } = parseIpAddr(fixture("real-server", "ip-j-addr.txt"));
    expect(addresses).toEqual(expect.arrayContaining([{ interface: "lo", address: "198.51.100.5", prefix: 32 }, { interface: "eth0", address: "198.51.100.10", prefix: 24 }]));
    expect(interfaces.map((i) => i.name)).toEqual(["lo", "eth0"]);
  });

  it("reads the director's addresses and MAC", () => {
    const { addresses, interfaces } = parseIpAddr(fixture("director", "ip-j-addr.txt"));
    expect(addresses).toContainEqual({ interface: "eth0", address: "198.51.100.2", prefix: 24 });
    expect(interfaces.find((i) => i.name === "eth0")?.mac).toBe("52:54:00:c6:33:02");
  });

  it("tells on-link routes from routes through a gateway", () => {
    expect(parseRouteGet("198.51.100.10", fixture("director", "ip-j-route-get-onlink.txt"))).toEqual({ destination: "198.51.100.10", device: "eth0", gateway: null, source: "198.51.100.2" });
    expect(parseRouteGet("203.0.113.10", fixture("director", "ip-j-route-get-via.txt"))).toEqual({ destination: "203.0.113.10", device: "eth0", gateway: "198.51.100.1", source: "198.51.100.2" });
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
    // Files come back whole. The rules file the tool wrote is what `ipvsadm -Sn` prints for the same table.
    const rules = state.files[hostPaths.ipvsRules];
    const listed = /@@lvsdr ipvs loaded\n([\s\S]*?)IP Virtual Server version/.exec(fixture("observe", "director-managed.txt"))?.[1];
    expect(listed).toContain("-A -t 198.51.100.5:80 -s rr\n");
    expect(rules).toEqual({ isLink: false, sha256: textSha256(listed ?? ""), content: listed });
    expect(state.files[hostPaths.ownership]).toMatchObject({ isLink: false, content: expect.stringContaining('"cluster": "lab"') });
  });

  it("fingerprints the IPVS table exactly as `ipvsadm -Sn | sha256sum` does on the host", () => {
    // Captured beside it: what the director's own `ipvsadm -Sn | sha256sum` printed.
    const text = fixture("observe", "director-managed.txt");
    const onHost = /^([0-9a-f]{64}) {2}-$/m.exec(fixture("observe", "director-managed-ipvs-sha256sum.txt"))?.[1];
    expect(onHost).toMatch(/^[0-9a-f]{64}$/);
    expect(parseObservation("director", text).ipvs.fingerprint).toBe(onHost);
    // An empty table is the digest of no bytes, as `ipvsadm -Sn | sha256sum` prints for it.
    const empty = text.replace(/(@@lvsdr ipvs loaded\n)[\s\S]*?(?=IP Virtual Server version)/, "$1");
    expect(parseObservation("director", empty).ipvs.fingerprint).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("reads both IPVS listings from the one ipvsadm run, and refuses a run that printed only one", () => {
    const text = fixture("observe", "director-managed.txt");
    const withThresholds = text.replace("  -> 198.51.100.11:80             0          0          0          3", "  -> 198.51.100.11:80             500        100        7          3");
    const destination = parseObservation("director", withThresholds).ipvs.destinations.find((d) => d.address === "198.51.100.11");
    expect(destination).toMatchObject({ weight: 1, upperThreshold: 500, lowerThreshold: 100, activeConnections: 7, inactiveConnections: 3 });
    const rulesOnly = text.replace(/IP Virtual Server version[\s\S]*?(?=@@lvsdr file)/, "");
    expect(() => parseObservation("director", rulesOnly)).toThrow(/thresholds listing is missing/);
  });

  it("refuses output that was cut short", () => {
    const text = fixture("observe", "director.txt");
    expect(() => parseObservation("director", text.slice(0, text.indexOf("@@lvsdr end")))).toThrow(/cut short/);
    expect(() => parseObservation("director", "bash: ip: command not found\n")).toThrow(/observe marker/);
  });
});

describe("ownership record", () => {
  it("reads what it writes and refuses anything else", () => {
    const record = { version: 1, cluster: "lab", host: "rs1", addresses: ["lo/198.51.100.5/32"], services: [], destinations: [], sysctls: { "net/ipv4/conf/all/arp_ignore": "0" }, files: [hostPaths.sysctlConf] };
    expect(parseOwnershipRecord(JSON.stringify(record))).toEqual(record);
    expect(() => parseOwnershipRecord(JSON.stringify({ ...record, version: 2 }))).toThrow(/version/);
    expect(() => parseOwnershipRecord("{")).toThrow(/ownership record/);
  });
});
