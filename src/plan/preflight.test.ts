import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { parseObservation } from "../parse/observe";
import { labLikeSpec } from "../testing/specs";
import { preflightHost } from "./preflight";
import { blankHost } from "./testing/simulated-host";

const parsed = parseCluster(labLikeSpec());
if (!parsed.ok) throw new Error("spec");
const desired = desiredClusterState(parsed.cluster);
const director = desired.hosts.find((h) => h.host === "director")!;
const rs1 = desired.hosts.find((h) => h.host === "rs1")!;
const onLink = (rip: string) => ({ destination: rip, device: "eth0", gateway: null, source: "198.51.100.2" });

function healthyDirector() {
  const host = blankHost("director", { role: "director", address: "198.51.100.2" });
  host.routes = director.onLinkPeers.map(onLink);
  host.arpReplies = Object.fromEntries(director.onLinkPeers.map((r) => [r, true]));
  return host;
}

describe("preflight", () => {
  it("passes a healthy director and real server", () => {
    expect(preflightHost(director, healthyDirector())).toEqual([]);
    expect(preflightHost(rs1, blankHost("rs1", { role: "real-server", address: "198.51.100.10" }))).toEqual([]);
  });

  it("passes the real director observed in the lab (fixture)", () => {
    const observed = parseObservation("director", readFileSync(join(__dirname, "../../test/fixtures/observe/director.txt"), "utf8"));
    expect(preflightHost(director, observed)).toEqual([]);
  });

  it("refuses a missing interface, a missing DIP, or a different prefix", () => {
    const noNic = healthyDirector();
    noNic.interfaces = ["lo"];
    expect(preflightHost(director, noNic)).toContainEqual({ host: "director", check: "interface", message: "interface eth0 does not exist (the host has lo)" });
    const noDip = healthyDirector();
    noDip.addresses = noDip.addresses.filter((a) => a.interface !== "eth0");
    expect(preflightHost(director, noDip).map((p) => p.message)).toContain("interface eth0 does not hold the DIP 198.51.100.2 (it has no address)");
    const prefix = healthyDirector();
    prefix.addresses = prefix.addresses.map((a) => (a.interface === "eth0" ? { ...a, prefix: 16 } : a));
    expect(preflightHost(director, prefix).map((p) => p.check)).toContain("address");
  });

  it("refuses a director without ipvsadm", () => {
    const host = healthyDirector();
    host.tools = host.tools.filter((t) => t !== "ipvsadm");
    expect(preflightHost(director, host)).toContainEqual(expect.objectContaining({ check: "tools", message: expect.stringContaining("ipvsadm") }));
  });

  it("refuses real servers behind a gateway, off the director's NIC, or silent to ARP", () => {
    const host = healthyDirector();
    host.routes = [
      { destination: "198.51.100.10", device: "eth0", gateway: "198.51.100.1", source: null },
      { destination: "198.51.100.11", device: "eth1", gateway: null, source: null },
      { destination: "198.51.100.12", device: "eth0", gateway: null, source: null },
    ];
    host.arpReplies["198.51.100.12"] = false;
    const messages = preflightHost(director, host).map((p) => `${p.check}: ${p.message}`);
    expect(messages).toEqual([
      "same-broadcast-domain: real server 198.51.100.10 is reached through gateway 198.51.100.1, not on-link: LVS-DR needs the director and real servers in one broadcast domain",
      "same-broadcast-domain: real server 198.51.100.11 is on-link through eth1, not through the director's interface eth0",
      "arp: real server 198.51.100.12 does not answer ARP on eth0: is it up, and on this segment?",
    ]);
  });

  it("refuses to take over a host another cluster manages", () => {
    const host = blankHost("rs1", { role: "real-server", address: "198.51.100.10" });
    host.ownership = { version: 1, cluster: "other", host: "rs1", addresses: [], services: [], destinations: [], sysctls: {}, files: [] };
    expect(preflightHost(rs1, host)).toContainEqual(expect.objectContaining({ check: "ownership" }));
  });
});
