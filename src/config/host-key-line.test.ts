import { utils } from "ssh2";
import { connectionSchema } from "./connection";
import { decodePublicKey, hostKeyProblem, parseHostKeyLine, parseKnownHostsLine } from "./host-key-line";
import { parseCluster } from "./load";
import { labLikeSpec } from "../testing/specs";

// A real key (the vector host-key.test.ts checks against ssh-keygen).
const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPK7//w1tV8qpm3KBI0dx13+CvNYxe4XPm+DT4jpFyMe";
const ED25519_DATA = ED25519.split(" ")[1]!;
const publicLine = (type: "ecdsa" | "rsa", bits: number) => utils.generateKeyPairSync(type, { bits }).public.trim();

describe("parseHostKeyLine: a pinned hostKey that is a key line", () => {
  const ecdsa384 = publicLine("ecdsa", 384);
  const rsa = publicLine("rsa", 2048);

  it("accepts a public key line and a known_hosts line, with or without a comment, of every host key type", () => {
    for (const line of [ED25519, `${ED25519} root@web1`, `web1,10.0.0.4 ${ED25519}`, `[10.0.0.4]:2222 ${ED25519} a comment`, ecdsa384, rsa, `|1|abc=|def= ${rsa}`]) {
      const parsed = parseHostKeyLine(line);
      expect([line, parsed.ok]).toEqual([line, true]);
    }
    const parsed = parseHostKeyLine(`web1 ${ED25519}`);
    expect(parsed.ok && [parsed.value.keyType, parsed.value.keyBlob.toString("base64")]).toEqual(["ssh-ed25519", ED25519_DATA]);
  });

  it.each([
    ["two lines", `${ED25519}\nweb2 ${ED25519}`, /must be one line/],
    ["a marker", `@revoked * ${ED25519}`, /@revoked or @cert-authority line cannot pin a host key/],
    ["an unknown key type", `web1 ssh-foo ${ED25519_DATA}`, /key type "ssh-foo" cannot be a host key here: use one of ssh-ed25519, ecdsa-sha2-nistp256, .*ssh-rsa/],
    ["a DSA key", `ssh-dss ${ED25519_DATA}`, /key type "ssh-dss" cannot be a host key here/],
    ["a security key", `sk-ssh-ed25519@openssh.com ${ED25519_DATA}`, /cannot be a host key here/],
    ["invalid base64", "ssh-ed25519 AAAA!!!", /not valid base64/],
    ["a blob of another type", `ssh-rsa ${ED25519_DATA}`, /the key says it is "ssh-ed25519" but the line names ssh-rsa: a corrupt or mispasted line/],
    ["a blob cut short", `ssh-ed25519 ${ED25519_DATA.slice(0, -12)}`, /cut short or corrupt/],
    ["a type and no key", "web1 ssh-ed25519", /names the key type ssh-ed25519 but no key follows it/],
    ["neither fingerprint nor key", "not a key", /must be a SHA256 fingerprint \(SHA256:\.\.\.\), a public key line .* or a known_hosts line/],
  ])("refuses %s, saying the rule", (_what, line, reason) => {
    const parsed = parseHostKeyLine(line);
    expect(parsed.ok ? "accepted" : parsed.reason).toMatch(reason);
  });

  it("checks the fields of the key, not only its type name: ECDSA curve and point size", () => {
    const ecdsa256 = publicLine("ecdsa", 256).split(" ")[1]!;
    expect(decodePublicKey("ecdsa-sha2-nistp256", ecdsa256).ok).toBe(true);
    expect(decodePublicKey("ecdsa-sha2-nistp384", ecdsa256)).toMatchObject({ ok: false, reason: expect.stringContaining("but the line names ecdsa-sha2-nistp384") });
    // The same blob with its curve name rewritten: the type agrees, the fields do not.
    const blob = Buffer.from(ecdsa256, "base64");
    blob.write("nistp999", 4 + "ecdsa-sha2-nistp256".length + 4, "latin1");
    const bad = blob.toString("base64");
    expect(decodePublicKey("ecdsa-sha2-nistp256", bad)).toMatchObject({ ok: false, reason: expect.stringContaining("not the fields a ecdsa-sha2-nistp256 key has") });
  });

  it("known_hosts lines: markers, and every type ssh writes, parse; an unknown marker does not", () => {
    expect(parseKnownHostsLine(`@cert-authority *.example ${ED25519}`)).toMatchObject({ ok: true, value: { marker: "cert-authority", hosts: "*.example" } });
    expect(parseKnownHostsLine(`@foo h ${ED25519}`)).toMatchObject({ ok: false, reason: expect.stringContaining("unknown marker @foo") });
    expect(parseKnownHostsLine(ED25519)).toMatchObject({ ok: false });
  });
});

describe("connection.hostKey is validated by that parser", () => {
  const problem = (hostKey: string) => {
    const r = connectionSchema.safeParse({ hostKey });
    return r.success ? undefined : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  };

  it("accepts fingerprints and key lines, refuses the rest at the field with the rule", () => {
    expect(problem(`SHA256:${"A".repeat(43)}`)).toBeUndefined();
    expect(problem(`  web1 ${ED25519}  `)).toBeUndefined();
    expect(problem("SHA256:short")).toBe("hostKey: a SHA256 fingerprint is SHA256: and 43 base64 characters, as `ssh-keygen -lf` prints it");
    expect(problem(`ssh-rsa ${ED25519_DATA}`)).toBe('hostKey: the key says it is "ssh-ed25519" but the line names ssh-rsa: a corrupt or mispasted line');
    expect(hostKeyProblem(`ssh-dss ${ED25519_DATA}`)).toMatch(/cannot be a host key here/);
  });

  it("validate names the host's path", () => {
    const result = parseCluster(
      labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", connection: { hostKey: `web1 ssh-ed25519 ${ED25519_DATA.slice(0, 30)}` } }] }),
    );
    expect(result.ok ? [] : result.issues.map((i) => [i.path, i.message])).toContainEqual([
      "directors[0].connection.hostKey",
      expect.stringMatching(/ssh-ed25519 key is (not valid base64|cut short)/),
    ]);
  });
});

describe("how the host key is checked: one choice, or knownHostsFile with trustOnFirstUse", () => {
  const director = (connection: object) => labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", connection }] });
  const hostKeyIssues = (spec: unknown) => {
    const result = parseCluster(spec);
    return result.ok ? [] : result.issues.filter((i) => i.path.endsWith("hostKey")).map((i) => i.message);
  };

  it("knownHostsFile with trustOnFirstUse adds new hosts to the file, and is allowed", () => {
    expect(hostKeyIssues(director({ knownHostsFile: "kh", trustOnFirstUse: true }))).toEqual([]);
    expect(hostKeyIssues(labLikeSpec({ connectionDefaults: { knownHostsFile: "kh", trustOnFirstUse: true } }))).toEqual([]);
  });

  it("a pinned hostKey with either of the others is refused", () => {
    expect(hostKeyIssues(director({ hostKey: `SHA256:${"A".repeat(43)}`, knownHostsFile: "kh" }))).toEqual([
      expect.stringMatching(/^give only one of hostKey, knownHostsFile and trustOnFirstUse/),
    ]);
  });

  it("legacyAlgorithms is a connection field, shared through connectionDefaults", () => {
    const result = parseCluster(labLikeSpec({ connectionDefaults: { knownHostsFile: "kh", legacyAlgorithms: true } }));
    expect(result.ok).toBe(true);
    expect(connectionSchema.safeParse({ legacyAlgorithms: "yes" }).success).toBe(false);
  });
});
