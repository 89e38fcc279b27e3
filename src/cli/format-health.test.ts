import { formatHealth } from "./format";

describe("lvsdr status text", () => {
  it("shows each real server's health and weight, the sorry server, and the master (or split brain)", () => {
    const health = {
      services: [
        {
          service: "tcp:198.51.100.5:80",
          director: "director",
          managedBy: "keepalived" as const,
          present: true,
          realServers: [
            { name: "rs1", address: "198.51.100.10", health: "down" as const, weight: 0, configuredWeight: 1, activeConnections: 2, inactiveConnections: 9 },
            { name: "rs2", address: "198.51.100.11", health: "up" as const, weight: 1, configuredWeight: 1, activeConnections: 0, inactiveConnections: 4 },
          ],
          sorryServer: { name: "rs3", address: "198.51.100.12", active: false },
        },
      ],
      groups: [
        {
          group: "front",
          vips: ["198.51.100.5"],
          master: "director",
          holders: ["director"],
          directors: [
            { name: "director", priority: 150, keepalivedRunning: true },
            { name: "director2", priority: 100, keepalivedRunning: false },
          ],
        },
      ],
    };
    const text = formatHealth(health);
    expect(text).toMatch(/tcp:198\.51\.100\.5:80\s+director\s+keepalived\s+rs1 198\.51\.100\.10\s+down\s+0\/1\s+2\s+9/);
    expect(text).toMatch(/rs2 198\.51\.100\.11\s+up\s+1\/1/);
    expect(text).toMatch(/rs3 198\.51\.100\.12\s+sorry server, idle/);
    expect(text).toMatch(/front\s+198\.51\.100\.5\s+director\s+director \(priority 150\), director2 \(priority 100, keepalived stopped\)/);
    const split = formatHealth({ ...health, groups: [{ ...health.groups[0]!, master: null, holders: ["director", "director2"] }] });
    expect(split).toContain("SPLIT BRAIN: director, director2");
  });
});
