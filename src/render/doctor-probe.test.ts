/** The doctor probe script: what it runs, and that nothing unvalidated reaches the shell. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderDoctorProbeScript } from "./doctor-probe";
import { renderObserveScript } from "./observe-script";
import { RenderError } from "./shell";

const request = {
  interface: "eth0",
  dip: "198.51.100.2",
  vips: ["198.51.100.5", "2001:db8:a::5", "198.51.100.6"],
  paths: [
    { vip: "198.51.100.5", mac: "ba:40:30:6f:87:3b" },
    { vip: "198.51.100.5", mac: "62:31:ea:c8:4a:e8" },
    { vip: "198.51.100.5", mac: "3a:be:96:1b:98:d4" },
  ],
};

describe("renderDoctorProbeScript", () => {
  it("is the script the fixtures were captured with", () => {
    expect(renderDoctorProbeScript(request)).toBe(readFileSync(join(__dirname, "../../test/fixtures/doctor/probe-script.sh"), "utf8"));
  });

  it("refuses values that are not what they claim", () => {
    expect(() => renderDoctorProbeScript({ ...request, interface: "eth0;reboot" })).toThrow(RenderError);
    expect(() => renderDoctorProbeScript({ ...request, vips: ["198.51.100.5 -h"] })).toThrow(RenderError);
    expect(() => renderDoctorProbeScript({ ...request, paths: [{ vip: "198.51.100.5", mac: "$(reboot)" }] })).toThrow(RenderError);
    expect(() => renderDoctorProbeScript({ ...request, paths: [{ vip: "2001:db8:a::5", mac: "ba:40:30:6f:87:3b" }] })).toThrow(/IPv4 only/);
    expect(() => renderDoctorProbeScript({ ...request, dip: null })).toThrow(RenderError);
  });
});

describe("the observe script's doctor reads", () => {
  const base = { sysctlKeys: [], filePaths: [], tools: false, routeTargets: [], ipvs: false, linkTargets: {} };

  it("are absent from a plain observation", () => {
    const plain = renderObserveScript(base);
    expect(plain).not.toMatch(/listeners|ethtool|route show default/);
  });

  it("filter the sockets on the host by port and state, and read offloads only with ethtool", () => {
    const script = renderObserveScript({ ...base, defaultRoute: true, listeners: [{ protocol: "udp", port: 53 }], offloads: "eth0" });
    expect(script).toContain("grep -E -H -s '^ *[0-9]+: [0-9A-F]+:(0035) [0-9A-F]+:[0-9A-F]+ (0A|07) ' /proc/net/udp /proc/net/udp6");
    expect(script).toContain("route show default");
    expect(script).toContain("ethtool -k eth0");
    expect(() => renderObserveScript({ ...base, offloads: "eth0 x" })).toThrow(RenderError);
    expect(() => renderObserveScript({ ...base, listeners: [{ protocol: "tcp", port: 70000 }] })).toThrow(RenderError);
  });
});
