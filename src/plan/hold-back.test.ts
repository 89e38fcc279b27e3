import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { destinationKey } from "../model/keys";
import { labLikeSpec } from "../testing/specs";
import { planCluster } from "./cluster-plan";
import { holdBackUnready, realServerNotReady } from "./hold-back";
import { applyPlan, blankCluster } from "./testing/cluster";

const parsed = parseCluster(labLikeSpec());
if (!parsed.ok) throw new Error("spec");
const desired = desiredClusterState(parsed.cluster);
const host = (name: string) => desired.hosts.find((h) => h.host === name)!;
const director = host("director");
const rs3 = host("rs3");
const blank = blankCluster(desired);
const applied = applyPlan(planCluster(desired, blank), blank);

describe("a real server's readiness", () => {
  it("is ready once it suppresses ARP and holds the VIPs on lo", () => {
    expect(realServerNotReady(rs3, applied.get("rs3")!)).toBeNull();
  });

  it("says which setting is missing on an untouched host", () => {
    expect(realServerNotReady(rs3, blank.get("rs3")!)).toBe("net/ipv4/conf/all/arp_ignore is 0, not 1");
  });

  it("says which VIP is missing when ARP is suppressed but the VIP is not on lo", () => {
    const seen = { ...applied.get("rs3")!, addresses: applied.get("rs3")!.addresses.filter((a) => a.interface !== "lo" || a.address !== rs3.addresses[0]!.address) };
    expect(realServerNotReady(rs3, seen)).toBe(`the VIP ${rs3.addresses[0]!.address} is not on lo`);
  });
});

describe("holding back real servers that are not ready", () => {
  const notReady = new Map([[rs3.primaryAddress, { realServer: "rs3", reason: "net/ipv4/conf/all/arp_ignore is 0, not 1" }]]);
  const rs3Destinations = director.destinations.filter((d) => d.address === rs3.primaryAddress);

  it("leaves a new destination out of the director's state, its rules file and the plan, and says why", () => {
    expect(rs3Destinations.length).toBeGreaterThan(0);
    const { desired: held, heldBack } = holdBackUnready(director, blank.get("director")!, notReady);
    expect(heldBack).toEqual(
      rs3Destinations.map((d) => ({ director: "director", realServer: "rs3", destination: destinationKey(d), reason: "net/ipv4/conf/all/arp_ignore is 0, not 1" })),
    );
    expect(held.destinations.some((d) => d.address === rs3.primaryAddress)).toBe(false);
    expect(held.destinations).toHaveLength(director.destinations.length - rs3Destinations.length);
    const rules = held.files.find((f) => f.content.kind === "ipvs-rules")!.content as { destinations: { address: string }[] };
    expect(rules.destinations.some((d) => d.address === rs3.primaryAddress)).toBe(false);
  });

  it("keeps a destination the director already sends traffic to", () => {
    const { desired: kept, heldBack } = holdBackUnready(director, applied.get("director")!, notReady);
    expect(heldBack).toEqual([]);
    expect(kept).toBe(director);
  });
});
