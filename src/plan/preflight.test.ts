import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { parseNeighbours } from "../parse/ip";
import { parseObservation } from "../parse/observe";
import { labLikeSpec } from "../testing/specs";
import { planClusterHost } from "./cluster-plan";
import { foreignOwnership, preflightHost, ripsToJudge } from "./preflight";
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

  it("a dual-stack director must hold its dip6 on the NIC too", () => {
    const dual = parseCluster(
      labLikeSpec({
        directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", dip6: "2001:db8:100::2/64" }],
        virtualServices: [],
      }),
    );
    if (!dual.ok) throw new Error(dual.issues[0]!.message);
    const dualDirector = desiredClusterState(dual.cluster).hosts.find((h) => h.host === "director")!;
    expect(preflightHost(dualDirector, healthyDirector()).map((p) => p.message)).toEqual(["interface eth0 does not hold the DIP 2001:db8:100::2 (it has 198.51.100.2/24)"]);
    const held = healthyDirector();
    held.addresses = [...held.addresses, { interface: "eth0", address: "2001:db8:100::2", prefix: 64 }];
    expect(preflightHost(dualDirector, held)).toEqual([]);
    held.addresses = held.addresses.map((a) => (a.address === "2001:db8:100::2" ? { ...a, prefix: 48 } : a));
    expect(preflightHost(dualDirector, held).map((p) => p.message)).toEqual(["the DIP 2001:db8:100::2 is /48 on eth0, the spec says /64"]);
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

  it("refuses to destroy on a host another cluster manages, and names that cluster", () => {
    const host = blankHost("rs1", { role: "real-server", address: "198.51.100.10" });
    expect(foreignOwnership(rs1, host, "destroy it")).toEqual([]);
    host.ownership = { version: 1, cluster: "other", host: "rs1", addresses: [], services: [], destinations: [], sysctls: {}, files: [] };
    expect(foreignOwnership(rs1, host, "destroy it")).toEqual([
      { host: "rs1", check: "ownership", message: `this host is managed by cluster "other", not "${rs1.cluster}": refusing to destroy it` },
    ]);
  });

  it("judges by ARP only the RIPs a director is about to register and does not serve yet, and asks only those without a resolved neighbour entry", () => {
    const host = blankHost("director", { role: "director", address: "198.51.100.2" });
    // The director's neighbour table as captured in the lab: .10 and .11 reachable, no .12.
    host.neighbours = parseNeighbours(readFileSync(join(__dirname, "../../test/fixtures/director/ip-j-neigh.txt"), "utf8"));
    const steps = planClusterHost(director, host).waves.flatMap((w) => w.steps);
    expect(steps.filter((s) => s.op === "add-destination")).toHaveLength(3);
    expect(ripsToJudge(director, host, steps)).toEqual({ answered: ["198.51.100.10", "198.51.100.11"], ask: ["198.51.100.12"] });
    // An entry on another interface, or one that never resolved, is no answer.
    host.neighbours = host.neighbours.map((n) => (n.address === "198.51.100.10" ? { ...n, device: "eth1" } : n.address === "198.51.100.11" ? { ...n, resolved: false } : n));
    expect(ripsToJudge(director, host, steps)).toEqual({ answered: [], ask: ["198.51.100.10", "198.51.100.11", "198.51.100.12"] });
    // A served RIP is not judged, even while its destination is added to another service.
    const served = steps.find((s) => s.op === "add-destination" && s.destination.address === "198.51.100.12")!;
    if (served.op !== "add-destination") throw new Error("step");
    host.ipvs.destinations = [{ ...served.destination, service: "tcp:198.51.100.9:80", activeConnections: 0, inactiveConnections: 0 }];
    expect(ripsToJudge(director, host, steps).ask).toEqual(["198.51.100.10", "198.51.100.11"]);
    // Nothing to add, nothing to judge.
    expect(ripsToJudge(director, host, [])).toEqual({ answered: [], ask: [] });
  });
});
