import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { labLikeSpec } from "../testing/specs";
import { observedFiles } from "./observe";

describe("observing a host", () => {
  it("reads every file the tool can write, so none is ever missing after an apply or left behind after a destroy", () => {
    const spec = labLikeSpec({
      directors: [
        { name: "director", interface: "eth0", dip: "198.51.100.2/24", ipvs: {} },
        { name: "director2", interface: "eth0", dip: "198.51.100.3/24" },
      ],
      failoverGroups: [
        {
          name: "front",
          virtualRouterId: 1,
          directors: [
            { name: "director", priority: 2 },
            { name: "director2", priority: 1 },
          ],
        },
      ],
      virtualServices: [{ name: "http", failoverGroup: "front", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }], healthCheck: { type: "tcp" } }],
    });
    const parsed = parseCluster(spec);
    if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
    const written = new Set(desiredClusterState(parsed.cluster).hosts.flatMap((h) => h.files.map((f) => f.path)));
    expect(written.size).toBeGreaterThanOrEqual(8);
    expect([...written].filter((p) => !(observedFiles as readonly string[]).includes(p))).toEqual([]);
  });
});
