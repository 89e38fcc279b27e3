import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { utils } from "ssh2";
import {
  defaultTrustStore,
  fingerprintOf,
  hashHostName,
  hostFieldMatches,
  knownHostsLineFor,
  knownHostsName,
  parseKnownHosts,
  recordTrustedKey,
  verifyHostKey,
  wildcardMatches,
} from "./host-key";

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
    expect(hostFieldMatches("[10.0.0.?]:22?2", "10.0.0.5", 2222)).toBe(true);
    expect(hostFieldMatches("*.Example.COM", "web1.example.com", 22)).toBe(true);
  });

  it("wildcards: * any run, ? one character, the whole name, case ignored", () => {
    const cases: Array<[string, string, boolean]> = [
      ["*", "", true],
      ["*", "anything", true],
      ["", "", true],
      ["", "a", false],
      ["?", "", false],
      ["?", "a", true],
      ["a*b", "ab", true],
      ["a*b", "axxb", true],
      ["a*b", "axxbc", false],
      ["*a*b", "xaxbxb", true],
      ["*ab*", "xaxb", false],
      ["a?c", "abc", true],
      ["a?c", "ac", false],
      ["**x", "yx", true],
      ["web*.example.com", "WEB12.example.com", true],
      ["web*.example.com", "web12.example.org", false],
      ["10.0.0.*", "10.0.0.", true],
      ["*.*.*", "a.b", false],
    ];
    for (const [pattern, name, expected] of cases) expect([pattern, name, wildcardMatches(pattern, name)]).toEqual([pattern, name, expected]);
  });

  it("wildcards: a pattern built to make a backtracking matcher take seconds takes well under one", () => {
    // Took about 26 s with the regular expression it replaces; linear now in the line's length.
    const pattern = "*a".repeat(14) + "*b";
    const name = "a".repeat(200);
    const started = performance.now();
    expect(wildcardMatches(pattern, name)).toBe(false);
    expect(hostFieldMatches(`${pattern},${"*a?".repeat(30)}c`, name, 22)).toBe(false);
    expect(parseKnownHosts(`${Array.from({ length: 50 }, () => pattern).join(",")} ${LINE}`).length).toBe(1);
    expect(verifyHostKey(name, 22, BLOB, { knownHostsFile: "kh" }, { knownHostsText: `${pattern} ${LINE}\n`.repeat(100) }).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
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

  it("skips a line whose key is cut short or names another type, as ssh does", () => {
    const data = LINE.split(" ")[1]!;
    const text = [`h1 ssh-ed25519 ${data.slice(0, -8)}`, `h2 ssh-rsa ${data}`, `h3 ${LINE}`].join("\n");
    expect(parseKnownHosts(text).map((e) => e.hosts)).toEqual(["h3"]);
  });

  it("writes the known_hosts line OpenSSH writes: host, or [host]:port off 22, the key's type, the key", () => {
    expect(knownHostsLineFor("Web1.Example", 22, BLOB)).toBe(`web1.example ${LINE}`);
    expect(knownHostsLineFor("10.0.0.5", 2222, BLOB)).toBe(`[10.0.0.5]:2222 ${LINE}`);
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

  it("a pinned line is read by the config's parser: what validate refuses is refused here too", () => {
    const data = LINE.split(" ")[1]!;
    expect(verifyHostKey("h", 22, BLOB, { hostKey: `ssh-rsa ${data}` })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/^hostKey: the key says it is "ssh-ed25519" but the line names ssh-rsa.*SHA256:/),
    });
    expect(verifyHostKey("h", 22, BLOB, { hostKey: `ssh-dss ${data}` })).toMatchObject({
      ok: false,
      message: expect.stringContaining('key type "ssh-dss" cannot be a host key here'),
    });
  });

  it("no setting at all refuses", () => {
    const v = verifyHostKey("h", 22, BLOB, {});
    expect(v).toMatchObject({ ok: false, message: expect.stringContaining(FP) });
  });
});

describe("trust on first use", () => {
  const other = otherKey();
  const otherFp = fingerprintOf(other.blob);
  const store = "/var/lib/x/known_hosts";
  const tofu = { trustOnFirstUse: true };

  it("accepts an unknown host and says what to record, and where", () => {
    expect(verifyHostKey("10.0.0.4", 2222, BLOB, tofu, { trustStore: store, knownHostsText: "" })).toEqual({
      ok: true,
      fingerprint: FP,
      trustedOnFirstUse: true,
      record: { file: store, line: `[10.0.0.4]:2222 ${LINE}` },
    });
  });

  it("accepts a recorded key silently, as a known host", () => {
    expect(verifyHostKey("10.0.0.4", 22, BLOB, tofu, { trustStore: store, knownHostsText: `10.0.0.4 ${LINE}\n` })).toEqual({ ok: true, fingerprint: FP, trustedOnFirstUse: false });
  });

  it("refuses a key other than the recorded one: both fingerprints, the file and line, and how to remove it", () => {
    const v = verifyHostKey("10.0.0.4", 2222, other.blob, tofu, { trustStore: store, knownHostsText: `# mine\n[10.0.0.4]:2222 ${LINE}\n` });
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.message).toContain(`host key for [10.0.0.4]:2222 has CHANGED: ${store} line 2 has ${FP} (ssh-ed25519), but the host presented ${otherFp}`);
    expect(v.message).toContain(`remove line 2 of ${store} (ssh-keygen -R '[10.0.0.4]:2222' -f ${store})`);
  });

  it("records in knownHostsFile when the connection names one, resolved from baseDir", () => {
    const v = verifyHostKey("h", 22, BLOB, { trustOnFirstUse: true, knownHostsFile: "kh" }, { baseDir: "/srv/p", knownHostsText: `other ${other.line}\n` });
    expect(v).toMatchObject({ ok: true, trustedOnFirstUse: true, record: { file: "/srv/p/kh", line: `h ${LINE}` } });
  });

  it("reads the store itself, a missing one as empty", () => {
    const dir = mkdtempSync(join(tmpdir(), "tofu-"));
    try {
      const file = join(dir, "known_hosts");
      expect(verifyHostKey("h", 22, BLOB, tofu, { trustStore: file })).toMatchObject({ ok: true, trustedOnFirstUse: true });
      writeFileSync(file, `h ${other.line}\n`);
      expect(verifyHostKey("h", 22, BLOB, tofu, { trustStore: file })).toMatchObject({ ok: false, message: expect.stringContaining("CHANGED") });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the store: LVSDR_KNOWN_HOSTS, else XDG_CONFIG_HOME (if absolute), else ~/.config", () => {
    expect(defaultTrustStore({ LVSDR_KNOWN_HOSTS: "/etc/lvsdr/kh", XDG_CONFIG_HOME: "/x", HOME: "/home/u" })).toBe("/etc/lvsdr/kh");
    expect(defaultTrustStore({ XDG_CONFIG_HOME: "/x", HOME: "/home/u" })).toBe("/x/lvs-dr/known_hosts");
    expect(defaultTrustStore({ XDG_CONFIG_HOME: "rel", HOME: "/home/u" })).toBe("/home/u/.config/lvs-dr/known_hosts");
    expect(defaultTrustStore({ HOME: "/home/u" })).toBe("/home/u/.config/lvs-dr/known_hosts");
  });

  describe("recordTrustedKey", () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "tofu-"));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("creates the directory 0700 and the file 0600, and appends one line per host", () => {
      const file = join(dir, "a", "b", "known_hosts");
      const first = recordTrustedKey({ file, line: `h1 ${LINE}` }, "h1", 22, BLOB);
      expect(first).toMatchObject({ ok: true, trustedOnFirstUse: true, record: { file } });
      recordTrustedKey({ file, line: `[h2]:2222 ${other.line}` }, "h2", 2222, other.blob);
      expect(readFileSync(file, "utf8")).toBe(`h1 ${LINE}\n[h2]:2222 ${other.line}\n`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, "a", "b")).mode & 0o777).toBe(0o700);
    });

    it("starts a line of its own after a last line without a newline", () => {
      const file = join(dir, "known_hosts");
      writeFileSync(file, `# hand-edited`);
      recordTrustedKey({ file, line: `h1 ${LINE}` }, "h1", 22, BLOB);
      expect(readFileSync(file, "utf8")).toBe(`# hand-edited\nh1 ${LINE}\n`);
    });

    it("defers to a record another run made meanwhile: the same key is known, another key is refused", () => {
      const file = join(dir, "known_hosts");
      writeFileSync(file, `h1 ${LINE}\n`);
      expect(recordTrustedKey({ file, line: `h1 ${LINE}` }, "h1", 22, BLOB)).toEqual({ ok: true, fingerprint: FP, trustedOnFirstUse: false });
      const v = recordTrustedKey({ file, line: `h1 ${other.line}` }, "h1", 22, other.blob);
      expect(v).toMatchObject({ ok: false, message: expect.stringContaining(`${file} line 1 has ${FP}`) });
      expect(readFileSync(file, "utf8")).toBe(`h1 ${LINE}\n`);
    });
  });
});
