/** check and diff: pure, no host contacted; invalid specs fail with property paths and rules. */
import { resolve } from "node:path";
import { readClusterValue } from "../config/load";
import type { ClusterInput } from "../config/schema";
import { checkInputs, desiredOf, diffInputs, fieldsFromDesired, splitConnections, type HostResourceInputs, type HostResourceOutputs } from "./state";

const REPO = resolve(__dirname, "../..");

function inputs(host: string, edit: (c: ClusterInput) => void = () => undefined): HostResourceInputs {
  const raw = structuredClone(readClusterValue({ stack: "lab", stacksDir: resolve(REPO, "stacks") }).value) as ClusterInput;
  edit(raw);
  return { ...splitConnections(raw), host, baseDir: REPO };
}

function created(i: HostResourceInputs): HostResourceOutputs {
  return { ...checkInputs("real-server", i).inputs, ...fieldsFromDesired(desiredOf(i).host) };
}

describe("check", () => {
  it("passes the lab spec and writes defaults out", () => {
    const r = checkInputs("real-server", inputs("rs1"));
    expect(r.failures).toEqual([]);
    expect(r.inputs.cluster.virtualServices?.[0]?.realServers?.[0]).toEqual({ name: "rs1", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    expect(JSON.stringify(r.inputs.cluster)).not.toContain("connection");
  });

  it("maps every zod issue to a property path and the rule", () => {
    const r = checkInputs(
      "director",
      inputs("director", (c) => {
        c.virtualServices![0]!.port = 70000;
        c.realServers![1]!.rip = "203.0.113.9";
        c.connectionDefaults = { ...c.connectionDefaults!, knownHostsFile: undefined } as ClusterInput["connectionDefaults"];
      }),
    );
    expect(r.failures).toEqual(
      expect.arrayContaining([
        { property: "cluster.virtualServices[0].port", reason: expect.stringMatching(/65535/) },
        { property: "cluster.virtualServices[0].realServers[1].name", reason: expect.stringMatching(/outside director "director".s subnet/) },
        { property: "cluster.directors[0].connection.hostKey", reason: expect.stringMatching(/is required/) },
      ]),
    );
  });

  it("refuses a host that is not of the resource's role", () => {
    expect(checkInputs("director", inputs("rs1")).failures).toEqual([{ property: "host", reason: 'must name one of cluster.directors (director); got "rs1"' }]);
  });
});

describe("diff (no host contacted)", () => {
  it("sees no change for the same spec, even with lists reordered", () => {
    const old = created(inputs("rs1"));
    expect(
      diffInputs(
        "real-server",
        old,
        inputs("rs1", (c) => c.realServers!.reverse()),
      ),
    ).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
  });

  it("updates in place when the host's desired state changes, and only then", () => {
    const old = created(inputs("director"));
    const weight = (c: ClusterInput) => (c.virtualServices![0]!.realServers![0]!.weight = 5);
    expect(diffInputs("director", { ...old, ...fieldsFromDesired(desiredOf(inputs("director")).host) }, inputs("director", weight))).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    // A weight lives on the director only: a real server sees no change.
    expect(diffInputs("real-server", created(inputs("rs1")), inputs("rs1", weight)).changes).toBe(false);
  });

  it("turns drift recorded by refresh into an update", () => {
    const old = created(inputs("rs1"));
    const refreshed = { ...old, sysctls: { ...old.sysctls, "net/ipv4/conf/all/arp_ignore": "0" } };
    expect(diffInputs("real-server", refreshed, inputs("rs1")).changes).toBe(true);
  });

  it("replaces (old released first) when the connection target or the cluster changes", () => {
    const old = created(inputs("rs1"));
    const moved = inputs("rs1", (c) => (c.realServers![0]!.connection = { host: "rs1.example.net" }));
    expect(diffInputs("real-server", old, moved)).toEqual({ changes: true, replaces: ["connections"], deleteBeforeReplace: true });
    const renamed = inputs("rs1", (c) => (c.name = "lab2"));
    expect(diffInputs("real-server", old, renamed).replaces).toEqual(["cluster"]);
  });

  it("a release changes only when the VIPs the real server keeps change", () => {
    const i = inputs("rs3");
    const old = { ...i, addresses: fieldsFromDesired(desiredOf(i).host).addresses } as unknown as HostResourceOutputs;
    expect(diffInputs("real-server-release", old, inputs("rs3")).changes).toBe(false);
    const dropped = inputs("rs3", (c) => (c.virtualServices![0]!.realServers = c.virtualServices![0]!.realServers!.filter((d) => d.name !== "rs3")));
    expect(diffInputs("real-server-release", old, dropped).changes).toBe(true);
  });
});
