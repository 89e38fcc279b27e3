/** Small cluster specs for unit tests; every field a test does not name has a sensible value. */
import type { ClusterInput } from "../config/schema";

export const fp = (n: number) => `SHA256:${String(n).padStart(2, "0")}${"A".repeat(41)}`;

export function labLikeSpec(overrides: Partial<ClusterInput> = {}): ClusterInput {
  return {
    name: "test",
    connectionDefaults: { user: "root", knownHostsFile: "/tmp/known_hosts" },
    directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24" }],
    realServers: [
      { name: "rs1", rip: "198.51.100.10", interface: "eth0", gateway: "198.51.100.1" },
      { name: "rs2", rip: "198.51.100.11", interface: "eth0", gateway: "198.51.100.1" },
      { name: "rs3", rip: "198.51.100.12", interface: "eth0", gateway: "198.51.100.1" },
    ],
    virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }, { name: "rs3" }] }],
    ...overrides,
  };
}
