import { broadcastAddress, canonicalAddress, cidrContains, netmaskToPrefix, networkAddress, parseAddress, parseCidr, prefixToNetmask } from "./ip";

describe("addresses", () => {
  it("parses IPv4 and IPv6 into canonical text", () => {
    expect(parseAddress("198.51.100.5")?.text).toBe("198.51.100.5");
    expect(canonicalAddress("2001:DB8:0:0:0:0:0:5")).toBe("2001:db8::5");
    expect(canonicalAddress("2001:db8:0:1:0:0:0:1")).toBe("2001:db8:0:1::1");
    expect(canonicalAddress("::ffff:192.0.2.1")).toBe("::ffff:c000:201");
    expect(canonicalAddress("2001:db8:1:1:1:1:1:1")).toBe("2001:db8:1:1:1:1:1:1");
  });

  it("refuses what is not an address", () => {
    for (const bad of ["198.51.100", "198.51.100.256", "eth0", "", "fe80::1%eth0", "198.51.100.5/24"]) {
      expect(parseAddress(bad)).toBeUndefined();
    }
  });

  it("knows which addresses a subnet holds", () => {
    const net = parseCidr("198.51.100.2/24");
    expect(net).toBeDefined();
    expect(cidrContains(net!, parseAddress("198.51.100.254")!)).toBe(true);
    expect(cidrContains(net!, parseAddress("198.51.101.1")!)).toBe(false);
    expect(cidrContains(net!, parseAddress("2001:db8::1")!)).toBe(false);
    expect(networkAddress(net!).text).toBe("198.51.100.0");
    expect(broadcastAddress(net!).text).toBe("198.51.100.255");
    const v6 = parseCidr("2001:db8:1::2/64")!;
    expect(cidrContains(v6, parseAddress("2001:db8:1::ffff")!)).toBe(true);
    expect(cidrContains(v6, parseAddress("2001:db8:2::1")!)).toBe(false);
  });

  it("refuses malformed prefixes", () => {
    expect(parseCidr("198.51.100.2/33")).toBeUndefined();
    expect(parseCidr("198.51.100.2")).toBeUndefined();
    expect(parseCidr("198.51.100.2/x")).toBeUndefined();
    expect(parseCidr("2001:db8::1/129")).toBeUndefined();
  });

  it("converts netmasks and prefixes both ways", () => {
    expect(prefixToNetmask(24)).toBe("255.255.255.0");
    expect(prefixToNetmask(32)).toBe("255.255.255.255");
    expect(netmaskToPrefix("255.255.254.0")).toBe(23);
    expect(netmaskToPrefix("255.0.255.0")).toBeUndefined();
  });
});
