/**
 * Names a host chooses (interfaces, sysctl keys, file paths, RIPs, tokens) that a plain object
 * would answer for itself: `__proto__`, `constructor`, `toString`. Parsed as ordinary names.
 * And output with 20,000 of something parses in time in proportion.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { marker } from "../model/script-protocol";
import { parseIpvsRules, parseKernelTable, ParseError } from "./ipvsadm";
import { parseArpProbes, parseObservation } from "./observe";
import { parseOwnershipRecord } from "./ownership";
import { own } from "./records";
import { parseSysctlOutput } from "./sysctl";

const realServer = readFileSync(join(__dirname, "../../test/fixtures/observe/real-server.txt"), "utf8");

/** The real server's capture with more links in its `ip -j addr` line, more records read and more sections. */
function edited(options: { links?: object[]; records?: string[]; absentKeys?: string[]; files?: string[] }): string {
  const lines = realServer.split("\n");
  const at = lines.indexOf(`${marker} section ip`) + 1;
  lines[at] = JSON.stringify([...(JSON.parse(lines[at]!) as object[]), ...(options.links ?? [])]);
  let text = lines.join("\n");
  const absent = `${marker} section sysctl-absent\n`;
  text = text.replace(absent, [...(options.files ?? []), absent.trimEnd(), ...(options.absentKeys ?? [])].join("\n") + "\n");
  text = text.replace(`${marker} end`, `${(options.records ?? []).map((r) => `${r}\0`).join("")}${marker} end`);
  return text;
}

const link = (ifname: string, local: string) => ({ ifindex: 9, ifname, flags: ["UP"], addr_info: [{ family: "inet", local, prefixlen: 32 }] });

describe("host names that are also Object's", () => {
  const text = edited({
    links: [link("__proto__", "192.0.2.1"), link("constructor", "192.0.2.2")],
    records: ["/proc/sys/net/ipv4/conf/__proto__/arp_ignore:1\n", "/proc/sys/net/ipv4/conf/constructor/arp_ignore:1\n", "/proc/sys/__proto__:7\n", "/proc/sys/constructor:8\n"],
    absentKeys: ["toString", "net/ipv4/conf/constructor/arp_announce"],
    files: [`${marker} file link constructor`, "/etc/lvs-dr/restore.sh", `${marker} file absent __proto__`],
  });
  const state = parseObservation("rs1", text, { interfaces: ["lo", "__proto__", "constructor"], sysctlKeys: ["__proto__", "constructor", "toString"], files: ["constructor"] });

  it("interfaces and their addresses", () => {
    expect(state.interfaces).toEqual(["lo", "eth0", "__proto__", "constructor"]);
    expect(state.addresses).toEqual(
      expect.arrayContaining([
        { interface: "__proto__", address: "192.0.2.1", prefix: 32 },
        { interface: "constructor", address: "192.0.2.2", prefix: 32 },
      ]),
    );
    expect(state.state?.addresses).toEqual(expect.arrayContaining(["__proto__ 192.0.2.1/32", "constructor 192.0.2.2/32"]));
  });

  it("sysctl keys, present and absent, as own keys with their values; nothing inherited", () => {
    expect(Object.getPrototypeOf(state.sysctls)).toBeNull();
    expect(own(state.sysctls, "__proto__")).toBe("7");
    expect(own(state.sysctls, "constructor")).toBe("8");
    expect(own(state.sysctls, "toString")).toBeNull();
    expect(own(state.sysctls, "net/ipv4/conf/__proto__/arp_ignore")).toBe("1");
    expect(own(state.sysctls, "net/ipv4/conf/constructor/arp_announce")).toBeNull();
    expect(Object.keys(state.sysctls)).toEqual(expect.arrayContaining(["__proto__", "constructor", "toString"]));
    // An unknown key is absent, not a function from Object.prototype.
    expect(state.sysctls["hasOwnProperty"]).toBeUndefined();
  });

  it("file paths", () => {
    expect(Object.getPrototypeOf(state.files)).toBeNull();
    expect(own(state.files, "constructor")).toEqual({ isLink: true, target: "/etc/lvs-dr/restore.sh" });
    expect(own(state.files, "__proto__")).toBeNull();
    expect(Object.keys(state.files)).toEqual(expect.arrayContaining(["constructor", "__proto__"]));
    expect(state.files["toString"]).toBeUndefined();
  });

  it("the state digest counts them as the apply script would: present keys and files, by position", () => {
    // Same names, values changed: a different digest (the values are read, not Object's members).
    const other = parseObservation("rs1", text.replace("/proc/sys/constructor:8", "/proc/sys/constructor:9"), {
      interfaces: ["lo"],
      sysctlKeys: ["__proto__", "constructor", "toString"],
      files: ["constructor"],
    });
    expect(other.state?.sha256).not.toBe(state.state?.sha256);
  });

  it("RIPs in ARP probe answers", () => {
    const replies = parseArpProbes("director", [`${marker} probe`, `${marker} arp __proto__ ok`, `${marker} arp constructor fail`, `${marker} end`, ""].join("\n"));
    expect(Object.entries(replies)).toEqual([
      ["__proto__", true],
      ["constructor", false],
    ]);
    expect(replies["toString"]).toBeUndefined();
  });

  it("keys in `sysctl` output", () => {
    const out = parseSysctlOutput("__proto__ = 1\nconstructor = 2\n");
    expect(Object.entries(out)).toEqual([
      ["__proto__", "1"],
      ["constructor", "2"],
    ]);
  });

  it("ipvsadm tokens: `constructor` is no forwarding method", () => {
    const rules = parseIpvsRules("-A -t 198.51.100.5:80 -s rr\n-a -t 198.51.100.5:80 -r 198.51.100.10:80 constructor -w 1\n");
    expect(rules.destinations[0]!.forwarding).toBe("dr");
    const proc = ["IP Virtual Server version 1.2.1 (size=4096)", "TCP  C6336405:0050 rr", "  -> C633640A:0050      constructor   1      0          0", ""].join("\n");
    expect(() => parseKernelTable(proc)).toThrow(ParseError);
  });

  it("sysctl keys in an ownership record", () => {
    const record = parseOwnershipRecord(
      JSON.stringify({
        version: 1,
        cluster: "c",
        host: "rs1",
        addresses: [],
        services: [],
        destinations: [],
        sysctls: { constructor: "0", "net/ipv4/conf/all/arp_ignore": "0" },
        files: [],
      }),
    );
    expect(Object.getPrototypeOf(record.sysctls)).toBeNull();
    expect(Object.entries(record.sysctls)).toEqual([
      ["constructor", "0"],
      ["net/ipv4/conf/all/arp_ignore", "0"],
    ]);
    expect(record.sysctls["toString"]).toBeUndefined();
  });
});

describe("output with 20,000 of something", () => {
  const N = 20_000;
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

  it("parses addresses, absent keys and a file of many NUL-separated parts in linear time", () => {
    const text = edited({
      links: [{ ifindex: 9, ifname: "dummy0", addr_info: Array.from({ length: N }, (_, i) => ({ family: "inet", local: address(i), prefixlen: 32 })) }],
      absentKeys: Array.from({ length: N }, (_, i) => `net/ipv4/conf/x${i}/arp_ignore`),
      files: [`${marker} file read /etc/lvs-dr/ipvs.rules`],
      records: Array.from({ length: N }, (_, i) => `/etc/lvs-dr/ipvs.rules:part ${i}`),
    }).replace(`${marker} file absent /etc/lvs-dr/ipvs.rules\n`, "");
    const started = performance.now();
    const state = parseObservation("rs1", text, { interfaces: ["lo", "dummy0"], sysctlKeys: [], files: ["/etc/lvs-dr/ipvs.rules"] });
    const ms = performance.now() - started;
    expect(state.addresses.filter((a) => a.interface === "dummy0")).toHaveLength(N);
    expect(Object.keys(state.sysctls).length).toBeGreaterThanOrEqual(N);
    const rules = own(state.files, "/etc/lvs-dr/ipvs.rules");
    expect(rules?.isLink === false && rules.content.split("\0")).toHaveLength(N);
    // Generous: a regression guard for quadratic work, not a benchmark.
    expect(ms).toBeLessThan(2_000);
  });
});
