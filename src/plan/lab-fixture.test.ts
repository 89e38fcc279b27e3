/**
 * The planner against real hosts' state: what the lab's director and a real server held right
 * after the tool applied stacks/Pulumi.lab.yaml (test/fixtures/observe/*-managed.txt) is exactly
 * what the desired state says, so the plan is empty; on the fresh hosts it is the full plan.
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
    expect(director.waves[0]?.steps.map((s) => s.op)).toEqual([
      "add-service", "add-destination", "add-destination", "add-destination", "add-destination", "add-address",
      "write-file", "write-file", "write-file", "write-file", "record-ownership",
    ]);
    const rs1 = planHost(host("rs1"), parseObservation("rs1", fixture("real-server.txt")));
    expect(rs1.waves[0]?.steps.filter((s) => s.op === "set-sysctl")).toHaveLength(6);
  });
});
