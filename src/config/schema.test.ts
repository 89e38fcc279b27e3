import { parseCluster, type SpecIssue } from "./load";
import type { ClusterInput } from "./schema";
import { fp, labLikeSpec } from "../testing/specs";

function issues(spec: unknown): SpecIssue[] {
  const result = parseCluster(spec);
  return result.ok ? [] : result.issues;
}

function expectIssue(spec: unknown, path: string, fragment: string | RegExp): void {
  const found = issues(spec);
  const match = found.find((i) => i.path === path);
  if (!match) throw new Error(`expected an issue at ${path}, got:\n${found.map((i) => `${i.path}: ${i.message}`).join("\n") || "(none)"}`);
  expect(match.message).toMatch(fragment);
}

const withService = (svc: Record<string, unknown>, extra: Partial<ClusterInput> = {}) =>
  labLikeSpec({ virtualServices: [{ name: "svc", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }], ...svc } as never], ...extra });

describe("cluster spec: good specs", () => {
  it("accepts the lab-like spec and fills defaults", () => {
    const result = parseCluster(labLikeSpec());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.cluster.drain).toEqual({ timeoutSeconds: 300, pollSeconds: 2 });
    expect(result.cluster.virtualServices[0]?.realServers[0]).toEqual({ name: "rs1", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  });

  it("accepts fwmark, udp, persistence, flags, thresholds and IPv6", () => {
    const spec = labLikeSpec({
      directors: [
        { name: "d4", interface: "eth0", dip: "198.51.100.2/24" },
        { name: "d6", interface: "eth1", dip: "2001:db8::2/64", connection: { host: "d6.example.net", hostKey: fp(6) } },
      ],
      realServers: [
        { name: "rs1", rip: "198.51.100.10" },
        { name: "rs6", rip: "2001:db8::10" },
      ],
      virtualServices: [
        { name: "mark", director: "d4", vip: "198.51.100.6", fwmark: 7, scheduler: "sh", schedulerFlags: ["sh-port", "sh-fallback"], realServers: [{ name: "rs1" }] },
        {
          name: "dns",
          director: "d4",
          vip: "198.51.100.6",
          protocol: "udp",
          port: 53,
          scheduler: "wrr",
          persistence: { timeout: 300, netmask: "255.255.255.0" },
          realServers: [{ name: "rs1", weight: 0, upperThreshold: 100, lowerThreshold: 10, port: 53 }],
        },
        {
          name: "web6",
          director: "d6",
          vip: "2001:db8::5",
          protocol: "tcp",
          port: 443,
          scheduler: "mh",
          persistence: { timeout: 60, netmask: 64 },
          realServers: [{ name: "rs6" }],
        },
      ],
    });
    expect(issues(spec)).toEqual([]);
  });
});

describe("cluster spec: every rule names its field", () => {
  it("RIP outside the director's subnet (same broadcast domain)", () => {
    const spec = labLikeSpec({ realServers: [{ name: "rs1", rip: "203.0.113.10" }] });
    expectIssue(
      { ...spec, virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] }] },
      "virtualServices[0].realServers[0].name",
      /outside director "director"'s subnet 198\.51\.100\.0\/24.*broadcast domain/,
    );
  });

  it("VIP equal to a DIP or a RIP", () => {
    expectIssue(withService({ vip: "198.51.100.2" }), "virtualServices[0].vip", /is the DIP of directors\[0\]/);
    expectIssue(withService({ vip: "198.51.100.11" }), "virtualServices[0].vip", /is the RIP of realServers\[1\]/);
  });

  it("(VIP, protocol, port) unique; fwmark unique", () => {
    const svc = { name: "a", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [] };
    expectIssue(labLikeSpec({ virtualServices: [svc, { ...svc, name: "b" }] as never }), "virtualServices[1].port", /is also used by virtualServices\[0\]/);
    const mark = { name: "m1", vip: "198.51.100.5", fwmark: 3, realServers: [] };
    expectIssue(labLikeSpec({ virtualServices: [mark, { ...mark, name: "m2", vip: "198.51.100.6" }] as never }), "virtualServices[1].fwmark", /fwmark 3 is also used/);
  });

  it("fwmark > 0 and not mixed with protocol/port", () => {
    expectIssue(withService({ protocol: undefined, port: undefined, fwmark: 0 }), "virtualServices[0].fwmark", />=1|too small|at least/i);
    expectIssue(withService({ fwmark: 5 }), "virtualServices[0].protocol", /fwmark service/);
    expectIssue(withService({ protocol: undefined }), "virtualServices[0].protocol", /is required/);
    expectIssue(withService({ port: undefined }), "virtualServices[0].port", /is required/);
  });

  it("no port mapping", () => {
    expectIssue(withService({ realServers: [{ name: "rs1", port: 8080 }] }), "virtualServices[0].realServers[0].port", /cannot map ports/);
  });

  it("a real server's gateway is not the DIP", () => {
    const spec = labLikeSpec();
    spec.realServers = [{ name: "rs1", rip: "198.51.100.10", gateway: "198.51.100.2" }];
    expectIssue(
      { ...spec, virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] }] },
      "realServers[0].gateway",
      /front gateway/,
    );
  });

  it("one address family per virtual service", () => {
    expectIssue(withService({ vip: "2001:db8::5" }), "virtualServices[0].vip", /one address family/);
  });

  describe("dual stack: dip6, rip6, gateway6", () => {
    const dual = (extra: Partial<ClusterInput> = {}) =>
      labLikeSpec({
        directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", dip6: "2001:db8:a::2/64" }],
        realServers: [
          { name: "rs1", rip: "198.51.100.10", rip6: "2001:db8:a::10", gateway: "198.51.100.1", gateway6: "2001:db8:a::1" },
          { name: "rs2", rip: "198.51.100.11" },
        ],
        virtualServices: [
          { name: "web4", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }, { name: "rs2" }] },
          { name: "web6", vip: "2001:db8:a::5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] },
        ],
        ...extra,
      });

    it("accepts IPv4 and IPv6 services on one director with the same real servers", () => {
      expect(issues(dual())).toEqual([]);
    });

    it("an IPv6 service needs a director with dip6 and real servers with rip6", () => {
      const spec = dual();
      spec.virtualServices![1]!.realServers = [{ name: "rs2" }];
      expectIssue(spec, "virtualServices[1].realServers[0].name", /"rs2" has no IPv6 RIP .*give it rip6/);
      const noDip6 = dual({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24" }] });
      expectIssue(noDip6, "virtualServices[1].vip", /only an IPv4 DIP: give the director dip6/);
    });

    it("dip6, rip6 and gateway6 are IPv6, beside IPv4, in the director's IPv6 subnet", () => {
      expectIssue(dual({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", dip6: "198.51.100.3/24" }] }), "directors[0].dip6", /must be an IPv6 address/);
      expectIssue(dual({ directors: [{ name: "director", interface: "eth0", dip: "2001:db8:a::2/64", dip6: "2001:db8:a::3/64" }] }), "directors[0].dip6", /IPv6 already/);
      expectIssue(
        dual({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", dip6: "2001:db8:a::2/48" }] }),
        "directors[0].dip6",
        /wider than one broadcast domain/,
      );
      const spec = dual();
      spec.realServers![0]!.rip6 = "2001:db8:b::10";
      expectIssue(spec, "virtualServices[1].realServers[0].name", /outside director "director"'s subnet 2001:db8:a::\/64/);
      const clash = dual();
      clash.realServers![1]!.rip6 = "2001:db8:a::10";
      expectIssue(clash, "realServers[1].rip6", /also the RIP of realServers\[0\]/);
      const gw = dual();
      gw.realServers![0]!.gateway6 = "2001:db8:a::2";
      expectIssue(gw, "realServers[0].gateway6", /DIP of director "director"/);
      const noRip6 = dual();
      noRip6.realServers![1]!.gateway6 = "2001:db8:a::1";
      expectIssue(noRip6, "realServers[1].gateway6", /needs rip6/);
      const v4gw6 = dual();
      v4gw6.realServers![0]!.gateway6 = "198.51.100.1";
      expectIssue(v4gw6, "realServers[0].gateway6", /is IPv4 but the RIP 2001:db8:a::10 is IPv6/);
    });
  });

  it("no duplicate names or RIPs", () => {
    const spec = labLikeSpec();
    spec.realServers = [
      { name: "rs1", rip: "198.51.100.10" },
      { name: "rs1", rip: "198.51.100.10", connection: { host: "other.example.net" } },
    ];
    spec.virtualServices = [];
    expectIssue(spec, "realServers[1].name", /duplicate host name "rs1"/);
    expectIssue(spec, "realServers[1].rip", /also the RIP of realServers\[0\]/);
    expectIssue(withService({ realServers: [{ name: "rs1" }, { name: "rs1" }] }), "virtualServices[0].realServers[1].name", /listed twice/);
    expectIssue(withService({ realServers: [{ name: "ghost" }] }), "virtualServices[0].realServers[0].name", /not a real server/);
  });

  it("weights and thresholds in range", () => {
    expectIssue(withService({ realServers: [{ name: "rs1", weight: 65536 }] }), "virtualServices[0].realServers[0].weight", /65535/);
    expectIssue(withService({ realServers: [{ name: "rs1", weight: -1 }] }), "virtualServices[0].realServers[0].weight", /must be at least 0/);
    expectIssue(
      withService({ realServers: [{ name: "rs1", upperThreshold: 10, lowerThreshold: 10 }] }),
      "virtualServices[0].realServers[0].lowerThreshold",
      /below upperThreshold/,
    );
    expectIssue(withService({ realServers: [{ name: "rs1", lowerThreshold: 5 }] }), "virtualServices[0].realServers[0].lowerThreshold", /needs an upperThreshold/);
  });

  it("interface names are Linux names without shell metacharacters", () => {
    for (const bad of ["eth0;reboot", "a/b", "has space", "", "sixteen-chars-xx", "$(id)"]) {
      expectIssue(labLikeSpec({ directors: [{ name: "director", interface: bad, dip: "198.51.100.2/24" }] }), "directors[0].interface", /Linux interface name/);
    }
    expectIssue(labLikeSpec({ directors: [{ name: "director", interface: "lo", dip: "198.51.100.2/24" }] }), "directors[0].interface", /not the loopback/);
  });

  it("director and real server are not the same host", () => {
    const spec = labLikeSpec();
    spec.realServers = [{ name: "rs1", rip: "198.51.100.10", connection: { host: "198.51.100.2" } }];
    spec.virtualServices = [];
    expectIssue(spec, "realServers[0].connection.host", /director and a real server must be separate hosts/);
  });

  it("schedulers and flags", () => {
    expectIssue(withService({ scheduler: "random" }), "virtualServices[0].scheduler", /rr.*twos|Invalid option/);
    expectIssue(withService({ scheduler: "rr", schedulerFlags: ["sh-port"] }), "virtualServices[0].schedulerFlags[0]", /only applies to the sh scheduler/);
    expectIssue(withService({ persistence: { timeout: 300, netmask: "255.0.255.0" } }), "virtualServices[0].persistence.netmask", /contiguous/);
  });

  it("host keys are required, and exclusive", () => {
    const spec = labLikeSpec({ connectionDefaults: { user: "root" } });
    expectIssue(spec, "directors[0].connection.hostKey", /is required: pin the host key/);
    expectIssue(labLikeSpec({ connectionDefaults: { hostKey: fp(1) } }), "connectionDefaults.hostKey", /cannot be shared/);
    const both = labLikeSpec();
    both.directors = [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", connection: { hostKey: fp(2), trustOnFirstUse: true } }];
    expectIssue(both, "directors[0].connection.hostKey", /only one of hostKey, knownHostsFile/);
    expectIssue(
      labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", connection: { hostKey: "SHA256:short" } }] }),
      "directors[0].connection.hostKey",
      /SHA256 fingerprint/,
    );
  });

  it("the director of a service must exist, and two directors never share a VIP", () => {
    const two = labLikeSpec({
      directors: [
        { name: "a", interface: "eth0", dip: "198.51.100.2/24" },
        { name: "b", interface: "eth0", dip: "198.51.100.3/24" },
      ],
      virtualServices: [
        { name: "s1", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [] },
        { name: "s2", director: "a", vip: "198.51.100.6", protocol: "tcp", port: 80, realServers: [] },
        { name: "s3", director: "b", vip: "198.51.100.6", protocol: "tcp", port: 443, realServers: [] },
        { name: "s4", director: "zz", vip: "198.51.100.7", protocol: "tcp", port: 443, realServers: [] },
      ],
    });
    expectIssue(two, "virtualServices[0].director", /required when the cluster has more than one director/);
    expectIssue(two, "virtualServices[2].director", /both answer ARP/);
    expectIssue(two, "virtualServices[3].director", /not a director/);
  });

  it("unknown fields are refused rather than ignored", () => {
    expectIssue({ ...labLikeSpec(), directorz: [] }, "directorz", /^unknown key; did you mean directors\?$/);
    // A key that is not a plain name is quoted, so even an empty or blank key has a path.
    expectIssue({ ...labLikeSpec(), "": 1 }, '[""]', /^unknown key/);
    expectIssue({ ...labLikeSpec(), directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", "a b": 1 }] }, 'directors[0]["a b"]', /^unknown key/);
  });

  it("collects every problem in one pass", () => {
    const spec = labLikeSpec({
      directors: [{ name: "Director", interface: "eth0;x", dip: "198.51.100.0/24" }],
      virtualServices: [{ name: "http", vip: "198.51.100.10", protocol: "tcp", port: 80, realServers: [{ name: "rs1", port: 81, weight: 70000 }] }],
    });
    const paths = issues(spec).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(["directors[0].name", "directors[0].interface", "virtualServices[0].realServers[0].weight"]));
    expect(paths.length).toBeGreaterThanOrEqual(3);
  });
});

describe("cluster spec: one pass, field errors and DR rules together", () => {
  it("reports a field error and a cross-field rule from the same run, without a second issue at a failed path", () => {
    const spec = labLikeSpec({
      realServers: [{ name: "rs1", rip: "203.0.113.10" }],
      virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "zz" as never, realServers: [{ name: "rs1" }, { name: "ghost" }] }],
    });
    const found = issues(spec);
    expect(found.map((i) => i.path).sort()).toEqual(["virtualServices[0].realServers[0].name", "virtualServices[0].realServers[1].name", "virtualServices[0].scheduler"]);
    expect(found.find((i) => i.path === "virtualServices[0].realServers[0].name")?.message).toMatch(/outside director "director"'s subnet/);
  });

  it("speaks plainly: 'is required', the kind of value expected and given, the allowed values; never 'undefined'", () => {
    const spec = labLikeSpec({
      directors: [{ name: "director", dip: "198.51.100.2/24", ipvs: { connReuseMode: 5 } } as never],
      realServers: [{ name: "rs1", rip: 5 as never }],
      virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "sctp" as never, port: 80.5, persistence: { timeout: 5, netmask: true as never } } as never],
    });
    const byPath = Object.fromEntries(issues(spec).map((i) => [i.path, i.message]));
    expect(byPath).toMatchObject({
      "directors[0].interface": "is required",
      "directors[0].ipvs.connReuseMode": "must be one of 0, 1, 2",
      "realServers[0].rip": "must be a string, not a number",
      "virtualServices[0].protocol": 'must be one of "tcp", "udp"',
      "virtualServices[0].port": "must be a whole number, not a fraction",
      "virtualServices[0].persistence.netmask": "must be a string or a number",
      "virtualServices[0].realServers": "is required",
    });
    expect(Object.values(byPath).join("\n")).not.toMatch(/undefined/);
  });

  it("a service's realServers is required; an explicit empty list is allowed", () => {
    expectIssue(withService({ realServers: undefined }), "virtualServices[0].realServers", /^is required$/);
    expect(issues(withService({ realServers: [] }))).toEqual([]);
  });
});

describe("cluster spec: addresses no host can have", () => {
  const v6 = (overrides: Partial<ClusterInput> = {}) =>
    labLikeSpec({
      directors: [{ name: "director", interface: "eth0", dip: "2001:db8::2/64" }],
      realServers: [{ name: "rs1", rip: "2001:db8::10" }],
      virtualServices: [{ name: "web", vip: "2001:db8::5", protocol: "tcp", port: 80, realServers: [{ name: "rs1" }] }],
      ...overrides,
    });

  it.each([
    ["0.0.0.0", /0\.0\.0\.0\/8/],
    ["127.0.0.5", /loopback/],
    ["224.0.0.18", /multicast/],
    ["240.0.0.1", /reserved/],
    ["255.255.255.255", /limited broadcast/],
    ["198.51.100.0", /network address of director "director"'s subnet 198\.51\.100\.0\/24/],
    ["198.51.100.255", /broadcast address of director "director"'s subnet/],
  ])("VIP %s", (vip, rule) => {
    expectIssue(withService({ vip }), "virtualServices[0].vip", rule);
  });

  it("RIPs and DIPs, by the same classes", () => {
    expectIssue(labLikeSpec({ realServers: [{ name: "rs1", rip: "198.51.100.255" }], virtualServices: [] }), "realServers[0].rip", /broadcast address/);
    expectIssue(labLikeSpec({ realServers: [{ name: "rs1", rip: "198.51.100.0" }], virtualServices: [] }), "realServers[0].rip", /network address/);
    expectIssue(labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "127.0.0.2/24" }], realServers: [], virtualServices: [] }), "directors[0].dip", /loopback/);
  });

  it("IPv6: unspecified, loopback, multicast, IPv4-mapped, the subnet-router anycast address", () => {
    expectIssue(v6({ virtualServices: [{ name: "web", vip: "::", protocol: "tcp", port: 80, realServers: [] }] }), "virtualServices[0].vip", /unspecified/);
    expectIssue(v6({ virtualServices: [{ name: "web", vip: "::1", protocol: "tcp", port: 80, realServers: [] }] }), "virtualServices[0].vip", /loopback/);
    expectIssue(v6({ virtualServices: [{ name: "web", vip: "ff02::1", protocol: "tcp", port: 80, realServers: [] }] }), "virtualServices[0].vip", /multicast/);
    expectIssue(v6({ virtualServices: [{ name: "web", vip: "::ffff:198.51.100.5", protocol: "tcp", port: 80, realServers: [] }] }), "virtualServices[0].vip", /IPv4-mapped/);
    expectIssue(v6({ realServers: [{ name: "rs1", rip: "2001:db8::" }] }), "realServers[0].rip", /subnet-router anycast/);
    expect(issues(v6())).toEqual([]);
  });

  it("a DIP prefix no wider than a broadcast domain, and without a leading zero", () => {
    expectIssue(labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/0" }] }), "directors[0].dip", /prefix \/0 is wider than one broadcast domain/);
    expectIssue(labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/15" }] }), "directors[0].dip", /wider than \/16 \(IPv4\)/);
    expect(issues(labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/16" }] }))).toEqual([]);
    expectIssue(v6({ directors: [{ name: "director", interface: "eth0", dip: "2001:db8::2/48" }] }), "directors[0].dip", /wider than \/64 \(IPv6\)/);
    expectIssue(
      labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/024" }] }),
      "directors[0].dip",
      /leading zero, which iproute2 reads as octal: write 24/,
    );
  });

  it("gateways: on the RIP's segment, in its family, not the RIP, a VIP or a DIP", () => {
    const gw = (gateway: string) => labLikeSpec({ realServers: [{ name: "rs1", rip: "198.51.100.10", gateway }], virtualServices: [] });
    expectIssue(gw("2001:db8::1"), "realServers[0].gateway", /is IPv6 but the RIP 198\.51\.100\.10 is IPv4/);
    expectIssue(gw("203.0.113.1"), "realServers[0].gateway", /outside the real server's segment 198\.51\.100\.0\/24/);
    expectIssue(gw("198.51.100.10"), "realServers[0].gateway", /own RIP/);
    expectIssue(gw("198.51.100.2"), "realServers[0].gateway", /is the DIP of director "director"/);
    expectIssue(gw("198.51.100.255"), "realServers[0].gateway", /broadcast address/);
    expectIssue(
      labLikeSpec({
        realServers: [{ name: "rs1", rip: "198.51.100.10", gateway: "198.51.100.5" }],
        virtualServices: [{ name: "web", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [] }],
      }),
      "realServers[0].gateway",
      /VIP of virtual service "web"/,
    );
    expect(issues(gw("198.51.100.1"))).toEqual([]);
  });
});

describe("cluster spec: SSH hosts", () => {
  const rsHost = (host: string, extra: Partial<ClusterInput> = {}) =>
    labLikeSpec({ realServers: [{ name: "rs1", rip: "198.51.100.10", connection: { host } }], virtualServices: [], ...extra });

  it.each([
    ["1.2.3", /not an IPv4 address/],
    ["198.51.100.256", /not an IPv4 address/],
    [":::", /not an IPv6 address/],
  ])("%s is neither an address nor a host name", (host, rule) => {
    expectIssue(rsHost(host), "realServers[0].connection.host", rule);
  });

  it("accepts addresses and RFC 1123 names", () => {
    for (const host of ["198.51.100.10", "2001:db8::10", "rs1.example.net", "rs1", "RS-1.Example.NET."]) expect(issues(rsHost(host))).toEqual([]);
  });

  it("one machine written two ways is one host", () => {
    const twice = labLikeSpec({
      realServers: [
        { name: "rs1", rip: "198.51.100.10", connection: { host: "RS1.example.net" } },
        { name: "rs2", rip: "198.51.100.11", connection: { host: "rs1.example.net." } },
        { name: "rs3", rip: "198.51.100.12", connection: { host: "2001:db8:0::10" } },
        { name: "rs4", rip: "198.51.100.13", connection: { host: "2001:DB8::10" } },
      ],
      virtualServices: [],
    });
    expectIssue(twice, "realServers[1].connection.host", /realServers\[1\] and realServers\[0\] connect to the same host \(rs1\.example\.net:22\)/);
    expectIssue(twice, "realServers[3].connection.host", /same host \(2001:db8::10:22\)/);
  });

  it("a connection host that is a VIP is refused", () => {
    expectIssue(
      rsHost("198.51.100.5", { virtualServices: [{ name: "web", vip: "198.51.100.5", protocol: "tcp", port: 80, realServers: [] }] }),
      "realServers[0].connection.host",
      /is the VIP of virtual service "web"/,
    );
  });

  it("what comes from connectionDefaults is reported once, at connectionDefaults", () => {
    const shared = labLikeSpec({ connectionDefaults: { user: "root", knownHostsFile: "/tmp/k", privateKey: "x", privateKeyPath: "/k", proxy: { user: "root" } } });
    const found = issues(shared);
    expect(found.filter((i) => i.path.startsWith("connectionDefaults")).map((i) => i.path)).toEqual([
      "connectionDefaults.privateKeyPath",
      "connectionDefaults.proxy.host",
      "connectionDefaults.proxy.hostKey",
    ]);
    expect(found.filter((i) => !i.path.startsWith("connectionDefaults"))).toEqual([]);
  });
});
