/**
 * The planner against real hosts' state: what the lab's director and a real server held right
 * after the tool applied stacks/Pulumi.lab.yaml (test/fixtures/observe/*-managed.txt) is exactly
 * what the desired state says, so the plan is empty; on the fresh hosts it is the full plan. The
 * same for the director in keepalived mode (stacks/Pulumi.lab-ha.yaml, *-keepalived.txt), seen
 * while rs2's HTTP server was stopped: its check failed, which is health, not drift.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { parseObservation } from "../parse/observe";
import { planHost } from "./host-plan";

const fixture = (name: string) => readFileSync(join(__dirname, "../../test/fixtures/observe", name), "utf8");
const desired = desiredClusterState(loadCluster({ stack: "lab", stacksDir: join(__dirname, "../../stacks") }));
const host = (name: string) => desired.hosts.find((h) => h.host === name)!;
const ha = desiredClusterState(loadCluster({ stack: "lab-ha", stacksDir: join(__dirname, "../../stacks") }));

describe("plans from real observations", () => {
  it("finds nothing to do on hosts the tool just applied", () => {
    const director = planHost(host("director"), parseObservation("director", fixture("director-managed.txt")));
    expect(director.diff.drift.items).toEqual([]);
    expect(director.waves).toEqual([]);
    const rs1 = planHost(host("rs1"), parseObservation("rs1", fixture("real-server-managed.txt")));
    expect(rs1.diff.drift.items).toEqual([]);
    expect(rs1.waves).toEqual([]);
  });

  it("plans the whole setup on fresh hosts", () => {
    const director = planHost(host("director"), parseObservation("director", fixture("director.txt")));
    // ip_vs is not loaded yet on a fresh director: its parameters are set from the module's defaults.
    expect(director.waves[0]?.steps.map((s) => s.op)).toEqual([
      "record-ownership",
      "set-sysctl",
      "set-sysctl",
      "set-sysctl",
      "set-sysctl",
      "set-ipvs-timeouts",
      "add-service",
      "add-destination",
      "add-destination",
      "add-destination",
      "add-destination",
      "add-address",
      "write-file",
      "write-file",
      "write-file",
      "write-file",
      "write-file",
    ]);
    const rs1 = planHost(host("rs1"), parseObservation("rs1", fixture("real-server.txt")));
    expect(rs1.waves[0]?.steps.filter((s) => s.op === "set-sysctl")).toHaveLength(6);
  });

  it("finds nothing to do on a director in keepalived mode whose real server fails its check", () => {
    const seen = parseObservation("director", fixture("director-keepalived.txt"));
    expect(seen.keepalived).toEqual({ installed: true, running: true, enabled: true });
    expect(seen.ipvs.timeouts).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect(seen.sysctls["net/ipv4/vs/expire_nodest_conn"]).toBe("1");
    // keepalived quiesced rs2 (inhibit_on_failure): weight 0 in the table.
    expect(seen.ipvs.destinations.find((d) => d.address === "198.51.100.11")?.weight).toBe(0);
    const director = planHost(
      ha.hosts.find((h) => h.host === "director")!,
      seen,
    );
    expect(director.diff.drift.items).toEqual([]);
    expect(director.waves).toEqual([]);
    expect(director.vrrp).toEqual({ group: "front", directors: 2, vips: ["198.51.100.5"], held: ["198.51.100.5"] });
    const fingerprint = fixture("director-keepalived-ipvs-sha256sum.txt").split(" ")[0];
    expect(seen.ipvs.fingerprint).toBe(fingerprint);
  });
});
