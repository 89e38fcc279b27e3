import { randomBytes } from "node:crypto";
import { utils } from "ssh2";
import { fingerprintOf, hashHostName, hostFieldMatches, knownHostsName, parseKnownHosts, verifyHostKey } from "./host-key";

// A real key and what `ssh-keygen -lf` and `ssh-keygen -H` printed for it (vectors from OpenSSH).
const LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPK7//w1tV8qpm3KBI0dx13+CvNYxe4XPm+DT4jpFyMe";
const BLOB = Buffer.from(LINE.split(" ")[1]!, "base64");
const FP = "SHA256:D6KLLROKTihPXNJAImX3hqHtYzBzYKY89yga8//2nxw";
const HASHED_10_0_0_4 = "|1|Bs8r8783zXkFHZEZxOXJtYUfgC0=|Koje2EFmU8m/jCMylW1ql1nt2bg=";
const HASHED_10_0_0_5_PORT_2222 = "|1|+chYkFh2WBqBm95+1J9EpzYkIj0=|m962kfFbgX8eFLgFlW3WPRTLNVw=";

function otherKey(): { line: string; blob: Buffer } {
  const line = utils.generateKeyPairSync("ed25519", {}).public.trim();
  return { line, blob: Buffer.from(line.split(" ")[1]!, "base64") };
}

describe("fingerprintOf", () => {
  it("prints SHA256 without padding, exactly as ssh-keygen -lf", () => {
    expect(fingerprintOf(BLOB)).toBe(FP);
  });
});

describe("known_hosts parsing and host matching", () => {
  it("uses [host]:port off port 22", () => {
    expect(knownHostsName("Host.Example", 22)).toBe("host.example");
    expect(knownHostsName("10.0.0.5", 2222)).toBe("[10.0.0.5]:2222");
  });

  it("matches OpenSSH's hashed names, with and without a port", () => {
    expect(hostFieldMatches(HASHED_10_0_0_4, "10.0.0.4", 22)).toBe(true);
    expect(hostFieldMatches(HASHED_10_0_0_4, "10.0.0.3", 22)).toBe(false);
    expect(hostFieldMatches(HASHED_10_0_0_5_PORT_2222, "10.0.0.5", 2222)).toBe(true);
    expect(hostFieldMatches(HASHED_10_0_0_5_PORT_2222, "10.0.0.5", 22)).toBe(false);
    const salt = randomBytes(20);
    expect(hostFieldMatches(hashHostName("[h]:23", salt), "h", 23)).toBe(true);
  });

  it("matches comma lists, wildcards and negations", () => {
    expect(hostFieldMatches("a.example,10.0.0.4", "10.0.0.4", 22)).toBe(true);
    expect(hostFieldMatches("a.example,[10.0.0.4]:2200", "10.0.0.4", 2200)).toBe(true);
    expect(hostFieldMatches("a.example,10.0.0.4", "10.0.0.4", 2200)).toBe(false);
    expect(hostFieldMatches("10.0.0.*", "10.0.0.9", 22)).toBe(true);
    expect(hostFieldMatches("10.0.0.*,!10.0.0.9", "10.0.0.9", 22)).toBe(false);
  });

  it("parses markers and skips comments and junk", () => {
    const text = [
      "# comment",
      "",
      `h1 ${LINE} comment words`,
      `@revoked * ${LINE}`,
      `@cert-authority *.example ${LINE}`,
      "@unknown h ssh-ed25519 AAAA",
      "h2 ssh-ed25519 notbase64!",
      LINE, // bare key line: no host field, not an entry
    ].join("\n");
    const entries = parseKnownHosts(text);
    expect(entries.map((e) => [e.marker, e.hosts, e.line])).toEqual([
      [undefined, "h1", 3],
      ["revoked", "*", 4],
      ["cert-authority", "*.example", 5],
    ]);
    expect(entries[0]!.keyBlob.equals(BLOB)).toBe(true);
  });
});

describe("verifyHostKey", () => {
  const other = otherKey();
  const otherFp = fingerprintOf(other.blob);

  it("accepts a pinned fingerprint, with or without padding", () => {
    expect(verifyHostKey("h", 22, BLOB, { hostKey: FP })).toEqual({ ok: true, fingerprint: FP, trustedOnFirstUse: false });
    expect(verifyHostKey("h", 22, BLOB, { hostKey: FP + "=" }).ok).toBe(true);
  });

  it("refuses a wrong pin and shows the fingerprint seen and the one expected", () => {
    const v = verifyHostKey("h", 22, other.blob, { hostKey: FP });
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.message).toContain(otherFp);
    expect(v.message).toContain(FP);
    expect(v.fingerprint).toBe(otherFp);
  });

  it("accepts a pinned key line or known_hosts line, refuses a different key", () => {
    expect(verifyHostKey("h", 22, BLOB, { hostKey: LINE }).ok).toBe(true);
    expect(verifyHostKey("h", 22, BLOB, { hostKey: `h,10.0.0.1 ${LINE} c` }).ok).toBe(true);
    const v = verifyHostKey("h", 22, BLOB, { hostKey: other.line });
    expect(v).toMatchObject({ ok: false, message: expect.stringContaining(FP) });
  });

  const kh = (knownHostsText: string) => ({ knownHostsText });
  const file = { knownHostsFile: "known_hosts" };

  it("known_hosts: plain, hashed and [host]:port entries are accepted", () => {
    expect(verifyHostKey("10.0.0.4", 22, BLOB, file, kh(`10.0.0.4 ${LINE}`)).ok).toBe(true);
    expect(verifyHostKey("10.0.0.4", 22, BLOB, file, kh(`${HASHED_10_0_0_4} ${LINE}`)).ok).toBe(true);
    expect(verifyHostKey("10.0.0.5", 2222, BLOB, file, kh(`${HASHED_10_0_0_5_PORT_2222} ${LINE}`)).ok).toBe(true);
    expect(verifyHostKey("10.0.0.5", 2222, BLOB, file, kh(`[10.0.0.5]:2222 ${LINE}`)).ok).toBe(true);
  });

  it("known_hosts: an unknown host is refused, naming the key seen", () => {
    const v = verifyHostKey("10.0.0.9", 22, BLOB, file, kh(`10.0.0.4 ${LINE}`));
    expect(v).toMatchObject({ ok: false, message: expect.stringContaining("not in known_hosts") });
    expect(v.ok || v.message.includes(FP)).toBe(true);
    // Same host, different port: a different known_hosts name.
    expect(verifyHostKey("10.0.0.4", 2200, BLOB, file, kh(`10.0.0.4 ${LINE}`)).ok).toBe(false);
  });

  it("known_hosts: a changed key is refused with expected and seen fingerprints", () => {
    const v = verifyHostKey("10.0.0.4", 22, other.blob, file, kh(`10.0.0.4 ${LINE}`));
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.message).toMatch(/CHANGED/);
    expect(v.message).toContain(FP);
    expect(v.message).toContain(otherFp);
  });

  it("known_hosts: a @revoked key is refused even when also listed for the host", () => {
    const v = verifyHostKey("10.0.0.4", 22, BLOB, file, kh(`10.0.0.4 ${LINE}\n@revoked * ${LINE}`));
    expect(v).toMatchObject({ ok: false, message: expect.stringMatching(/revoked.*line 2/) });
  });

  it("known_hosts: @cert-authority lines never accept a plain key", () => {
    expect(verifyHostKey("10.0.0.4", 22, BLOB, file, kh(`@cert-authority 10.0.0.4 ${LINE}`)).ok).toBe(false);
  });

  it("known_hosts: an unreadable file is refused", () => {
    const v = verifyHostKey("h", 22, BLOB, { knownHostsFile: "/nonexistent/known_hosts" });
    expect(v).toMatchObject({ ok: false, message: expect.stringContaining("cannot read knownHostsFile") });
  });

  it("trust-on-first-use accepts and says so; no setting at all refuses", () => {
    expect(verifyHostKey("h", 22, BLOB, { trustOnFirstUse: true })).toEqual({ ok: true, fingerprint: FP, trustedOnFirstUse: true });
    const v = verifyHostKey("h", 22, BLOB, {});
    expect(v).toMatchObject({ ok: false, message: expect.stringContaining(FP) });
  });
});
