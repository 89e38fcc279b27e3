import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "../config/connection";
import { Server, utils, type Connection as ServerConnection, type ServerConfig } from "ssh2";
import { fingerprintOf, hashHostName } from "./host-key";
import { runOnHosts, SessionPool } from "./pool";
import { inlineScriptLimit } from "./invocation";
import { backoffMs, dialAttempts, SshTransport, type SshSession } from "./ssh";
import { generateKey, startTestServer, type TestServer } from "./testing/ssh-server";
import { TransportError, type DialRetry, type HostSession, type Transport } from "./types";

jest.setTimeout(15_000);

const clientKey = generateKey();
const encryptedKey = generateKey("correct horse");
// Trust on first use records what it trusts: every test gets a store of its own, never the user's.
const env: NodeJS.ProcessEnv = { ...process.env };
let storeDir: string;
beforeEach(() => {
  storeDir = mkdtempSync(join(tmpdir(), "lvsdr-tofu-"));
  env.LVSDR_KNOWN_HOSTS = join(storeDir, "config", "lvs-dr", "known_hosts");
});
afterEach(() => rmSync(storeDir, { recursive: true, force: true }));
// Small backoff keeps the retry tests fast; the schedule itself is tested separately.
const transport = new SshTransport({ initialBackoffMs: 20, maxBackoffMs: 100, env });

function conn(port: number, extra: Partial<Connection> = {}): Connection {
  return { host: "127.0.0.1", port, user: "tester", dialErrorLimit: 1, perDialTimeout: 5, sudo: false, ...extra };
}

async function expectTransportError(p: Promise<unknown>, step: TransportError["step"]): Promise<TransportError> {
  const err = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransportError);
  const te = err as TransportError;
  expect({ step: te.step, message: te.message }).toMatchObject({ step });
  return te;
}

const servers: TestServer[] = [];
const sessions: HostSession[] = [];
async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const s = await startTestServer({ authorizedKey: clientKey.publicLine, ...options });
  servers.push(s);
  return s;
}
async function open(...args: Parameters<Transport["connect"]>): Promise<HostSession> {
  const s = await transport.connect(...args);
  sessions.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Running (not gone, not a zombie: orphans may wait a while for a reaper that is not init). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A port with nothing listening (a just-closed ephemeral port). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe("host key", () => {
  it("accepts a pinned fingerprint and reports it on the session", async () => {
    const s = await server();
    const session = await open("web1", conn(s.port, { hostKey: s.fingerprint, privateKey: clientKey.privateKey }));
    expect(session.hostKeyFingerprint).toBe(s.fingerprint);
    expect(session.host).toBe("web1");
  });

  it("refuses a wrong fingerprint, shows the one seen, and does not retry", async () => {
    const s = await server();
    const wrong = generateKey().publicLine;
    const err = await expectTransportError(transport.connect("web1", conn(s.port, { hostKey: wrong, privateKey: clientKey.privateKey, dialErrorLimit: 5 })), "host-key");
    expect(err.message).toContain(s.fingerprint);
    expect(err.message).toMatch(/^web1: host-key: /);
    expect(s.connections).toBe(1);
  });

  describe("known_hosts file", () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "kh-"));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const withFile = (s: TestServer, text: string) => {
      writeFileSync(join(dir, "known_hosts"), text);
      return conn(s.port, { knownHostsFile: "known_hosts", privateKey: clientKey.privateKey });
    };

    it("accepts plain [host]:port and hashed entries (relative to baseDir)", async () => {
      const s = await server();
      await open("a", withFile(s, `[127.0.0.1]:${s.port} ${s.hostKeyLine}\n`), { baseDir: dir });
      const hashed = hashHostName(`[127.0.0.1]:${s.port}`, randomBytes(20));
      await open("b", withFile(s, `other ${generateKey().publicLine}\n${hashed} ${s.hostKeyLine}\n`), { baseDir: dir });
    });

    it("refuses an unknown host, a changed key and a revoked key", async () => {
      const s = await server();
      const unknown = await expectTransportError(transport.connect("a", withFile(s, `127.0.0.1 ${s.hostKeyLine}\n`), { baseDir: dir }), "host-key");
      expect(unknown.message).toContain("is not in known_hosts");
      expect(unknown.message).toContain(s.fingerprint);
      const changed = await expectTransportError(transport.connect("a", withFile(s, `[127.0.0.1]:${s.port} ${generateKey().publicLine}\n`), { baseDir: dir }), "host-key");
      expect(changed.message).toContain(s.fingerprint);
      const revoked = await expectTransportError(
        transport.connect("a", withFile(s, `[127.0.0.1]:${s.port} ${s.hostKeyLine}\n@revoked * ${s.hostKeyLine}\n`), { baseDir: dir }),
        "host-key",
      );
      expect(revoked.message).toContain("@revoked");
    });
  });

  describe("trust on first use", () => {
    const tofu = (port: number, extra: Partial<Connection> = {}) => conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, ...extra });

    it("records the key in the tool's known_hosts (dir 0700, file 0600), reports it once, then knows the host silently", async () => {
      const s = await server();
      const trusted: Array<[string, string, string]> = [];
      const onTrust = (h: string, fp: string, file: string) => trusted.push([h, fp, file]);
      await open("web1", tofu(s.port), { onTrust });
      const store = env.LVSDR_KNOWN_HOSTS!;
      expect(trusted).toEqual([["web1", s.fingerprint, store]]);
      expect(readFileSync(store, "utf8")).toBe(`[127.0.0.1]:${s.port} ${s.hostKeyLine}\n`);
      expect(statSync(store).mode & 0o777).toBe(0o600);
      expect(statSync(join(storeDir, "config", "lvs-dr")).mode & 0o777).toBe(0o700);
      await open("web1", tofu(s.port), { onTrust });
      expect(trusted).toHaveLength(1);
      expect(readFileSync(store, "utf8").split("\n")).toHaveLength(2);
    });

    it("refuses a different key for a host it trusted, with both fingerprints, the file and line, and the fix", async () => {
      const first = await server();
      const port = first.port;
      await open("web1", tofu(port));
      await Promise.all(sessions.splice(0).map((x) => x.close()));
      await first.close();
      const second = await server({ port });
      const err = await expectTransportError(transport.connect("web1", tofu(port, { dialErrorLimit: 3 })), "host-key");
      const store = env.LVSDR_KNOWN_HOSTS!;
      expect(err.message).toContain("CHANGED");
      expect(err.message).toContain(first.fingerprint);
      expect(err.message).toContain(second.fingerprint);
      expect(err.message).toContain(`${store} line 1 has ${first.fingerprint}`);
      expect(err.message).toContain(`ssh-keygen -R '[127.0.0.1]:${port}' -f ${store}`);
      expect(second.connections).toBe(1);
      // Nothing was added for the refused key.
      expect(readFileSync(store, "utf8")).toBe(`[127.0.0.1]:${port} ${first.hostKeyLine}\n`);
    });

    it("with knownHostsFile, checks that file and adds new hosts to it (on a line of their own)", async () => {
      const s = await server();
      const dir = mkdtempSync(join(tmpdir(), "kh-"));
      try {
        const other = `other.example ${generateKey().publicLine.split(" ").slice(0, 2).join(" ")}`;
        writeFileSync(join(dir, "known_hosts"), other); // no newline at the end, as a hand edit may leave it
        const trusted: string[] = [];
        await open("web1", tofu(s.port, { knownHostsFile: "known_hosts" }), { baseDir: dir, onTrust: (_h, _fp, file) => trusted.push(file) });
        expect(trusted).toEqual([join(dir, "known_hosts")]);
        expect(readFileSync(join(dir, "known_hosts"), "utf8")).toBe(`${other}\n[127.0.0.1]:${s.port} ${s.hostKeyLine}\n`);
        expect(() => statSync(env.LVSDR_KNOWN_HOSTS!)).toThrow();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("refuses the connection when the key cannot be recorded", async () => {
      const s = await server();
      // A store that reads as missing but cannot be created: a link into a directory that does not exist.
      mkdirSync(join(storeDir, "config", "lvs-dr"), { recursive: true });
      symlinkSync(join(storeDir, "no-such-dir", "known_hosts"), env.LVSDR_KNOWN_HOSTS!);
      const err = await expectTransportError(transport.connect("web1", tofu(s.port)), "host-key");
      expect(err.message).toContain(`cannot record the host key ${s.fingerprint} that trust on first use accepted in ${env.LVSDR_KNOWN_HOSTS}: ENOENT`);
    });
  });
});

describe("private key file permissions", () => {
  it("warns once per key file that group or others can read, and not for a 0600 one", async () => {
    const s = await server();
    const dir = mkdtempSync(join(tmpdir(), "key-"));
    try {
      writeFileSync(join(dir, "open"), clientKey.privateKey);
      chmodSync(join(dir, "open"), 0o644);
      writeFileSync(join(dir, "closed"), clientKey.privateKey);
      chmodSync(join(dir, "closed"), 0o600);
      const t = new SshTransport({ env });
      const warnings: Array<[string, string]> = [];
      const options = { baseDir: dir, onWarning: (h: string, m: string) => warnings.push([h, m]) };
      sessions.push(await t.connect("web1", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "open" }), options));
      sessions.push(await t.connect("web2", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "open" }), options));
      sessions.push(await t.connect("web3", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "closed" }), options));
      expect(warnings).toEqual([["web1", expect.stringContaining(`privateKeyPath open (${join(dir, "open")}) is accessible by group or others (mode 0644)`)]]);
      expect(warnings[0]![1]).toContain("chmod 600");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("SSH algorithms", () => {
  // An RSA host key: its SHA-1 signature (ssh-rsa) is what old hosts offer.
  const rsa = utils.generateKeyPairSync("rsa", { bits: 2048 });
  const ed25519 = generateKey();
  const fingerprintOfPrivate = (privateKey: string) => {
    const parsed = utils.parseKey(privateKey);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) throw new Error("unparseable test key");
    return fingerprintOf(key.getPublicSSH());
  };
  const rsaFingerprint = fingerprintOfPrivate(rsa.private);
  const ed25519Fingerprint = fingerprintOfPrivate(ed25519.privateKey);

  /** An ssh2 server offering only `algorithms`, that lets anyone in: the handshake is what is tested. */
  async function oldServer(hostKey: string, algorithms: ServerConfig["algorithms"]): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
    const clients = new Set<ServerConnection>();
    let connections = 0;
    const srv = new Server({ hostKeys: [hostKey], algorithms }, (client) => {
      connections++;
      clients.add(client);
      client.on("error", () => undefined);
      client.on("close", () => clients.delete(client));
      client.on("authentication", (ctx) => ctx.accept());
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    return {
      port,
      connections: () => connections,
      close: async () => {
        clients.forEach((c) => c.end());
        await new Promise((r) => srv.close(r));
      },
    };
  }

  const cases: Array<[string, string, string, ServerConfig["algorithms"], RegExp]> = [
    [
      "only ssh-rsa (SHA-1) host key signatures",
      rsa.private,
      rsaFingerprint,
      { serverHostKey: ["ssh-rsa"] },
      /offers no host key algorithm this tool accepts: the host offers ssh-rsa;/,
    ],
    // With an AEAD cipher (GCM, ChaCha20-Poly1305) no MAC is used at all: only a host without one needs hmac-sha1.
    ["only hmac-sha1", ed25519.privateKey, ed25519Fingerprint, { cipher: ["aes128-ctr"], hmac: ["hmac-sha1"] }, /offers no MAC this tool accepts: the host offers hmac-sha1;/],
    [
      "only SHA-1 key exchange",
      ed25519.privateKey,
      ed25519Fingerprint,
      { kex: ["diffie-hellman-group14-sha1"] },
      /offers no key exchange this tool accepts: the host offers diffie-hellman-group14-sha1;/,
    ],
    [
      "only CBC ciphers",
      ed25519.privateKey,
      ed25519Fingerprint,
      { cipher: ["aes128-cbc", "3des-cbc"] },
      /offers no cipher this tool accepts: the host offers aes128-cbc,3des-cbc;/,
    ],
  ];

  it.each(cases)("a host offering %s is refused by default, once, saying how to allow it; legacyAlgorithms: true connects", async (_what, key, fingerprint, algorithms, why) => {
    const old = await oldServer(key, algorithms);
    try {
      const c = conn(old.port, { hostKey: fingerprint, password: "x", dialErrorLimit: 3 });
      const err = await expectTransportError(transport.connect("old1", c), "negotiate");
      expect(err.message).toMatch(/^old1: negotiate: 127\.0\.0\.1:\d+ /);
      expect(err.message).toMatch(why);
      expect(err.message).toContain("set connection.legacyAlgorithms: true");
      expect(old.connections()).toBe(1);
      const session = await open("old1", { ...c, legacyAlgorithms: true });
      expect(session.hostKeyFingerprint).toBe(fingerprint);
    } finally {
      await Promise.all(sessions.splice(0).map((x) => x.close()));
      await old.close();
    }
  });

  it("an RSA host key signed with SHA-2 (any OpenSSH since 7.2) connects by default", async () => {
    const modern = await oldServer(rsa.private, undefined);
    try {
      const session = await open("rsa1", conn(modern.port, { hostKey: rsaFingerprint, password: "x" }));
      expect(session.hostKeyFingerprint).toBe(rsaFingerprint);
    } finally {
      await Promise.all(sessions.splice(0).map((x) => x.close()));
      await modern.close();
    }
  });
});

describe("authentication", () => {
  it("by private key file with a passphrase", async () => {
    const s = await server({ authorizedKey: encryptedKey.publicLine });
    const dir = mkdtempSync(join(tmpdir(), "key-"));
    try {
      writeFileSync(join(dir, "id"), encryptedKey.privateKey, { mode: 0o600 });
      await open("a", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "id", privateKeyPassword: "correct horse" }), { baseDir: dir });
      const bad = await expectTransportError(
        transport.connect("a", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "id", privateKeyPassword: "not-it-xyz" }), { baseDir: dir }),
        "resolve-credentials",
      );
      expect(bad.message).not.toContain("not-it-xyz");
      await expectTransportError(transport.connect("a", conn(s.port, { hostKey: s.fingerprint, privateKeyPath: "id" }), { baseDir: dir }), "resolve-credentials");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("by password, and by keyboard-interactive answered with the password", async () => {
    const s = await server({ password: "s3cret" });
    await open("a", conn(s.port, { hostKey: s.fingerprint, password: "s3cret" }));
    const k = await server({ password: "s3cret", keyboardInteractiveOnly: true });
    await open("b", conn(k.port, { hostKey: k.fingerprint, password: "s3cret" }));
  });

  it("a wrong password fails at authenticate, once, without the password in the message", async () => {
    const s = await server({ password: "s3cret" });
    const err = await expectTransportError(transport.connect("a", conn(s.port, { hostKey: s.fingerprint, password: "guess-me", dialErrorLimit: 5 })), "authenticate");
    expect(err.message).not.toContain("guess-me");
    expect(err.message).toContain("tester");
    expect(s.connections).toBe(1);
  });

  it("an encrypted (Pulumi secure) value fails before dialing", async () => {
    const err = await expectTransportError(transport.connect("a", conn(1, { hostKey: "SHA256:" + "A".repeat(43), password: { secure: "v1:abc" } })), "resolve-credentials");
    expect(err.message).toMatch(/encrypted.*Pulumi.*privateKeyPath or an ssh-agent/);
  });

  it("no credentials at all fails before dialing", async () => {
    const t = new SshTransport({ env: {} });
    await expectTransportError(t.connect("a", conn(1, { trustOnFirstUse: true })), "resolve-credentials");
  });
});

describe("connect retries", () => {
  it("schedule: exponential from 250 ms capped at 5 s; -1 is capped, 0 tries once", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect(dialAttempts(-1)).toBe(100);
    expect(dialAttempts(0)).toBe(1);
    expect(dialAttempts(10)).toBe(10);
  });

  it("keeps dialing until a server starts listening", async () => {
    const port = await freePort();
    const started = new Promise<TestServer>((r) => setTimeout(() => void server({ port }).then(r), 400));
    const session = await open("late", conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, dialErrorLimit: 30 }));
    expect(session.hostKeyFingerprint).toBe((await started).fingerprint);
  });

  it("gives up after dialErrorLimit attempts with step connect", async () => {
    const port = await freePort();
    const err = await expectTransportError(transport.connect("gone", conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, dialErrorLimit: 3 })), "connect");
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain("after 3 attempt(s)");
  });

  it("reports each failed attempt as it happens, with its error and the wait before the next", async () => {
    const port = await freePort();
    const retries: (DialRetry & { at: number })[] = [];
    const started = Date.now();
    await expectTransportError(
      transport.connect("gone", conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, dialErrorLimit: 3 }), {
        onDialRetry: (d) => retries.push({ ...d, at: Date.now() - started }),
      }),
      "connect",
    );
    // Attempts 1 and 2 are reported (the third is the error itself); the first at once, before any wait.
    expect(retries.map((r) => [r.host, r.attempt, r.attempts])).toEqual([
      ["gone", 1, 3],
      ["gone", 2, 3],
    ]);
    expect(retries[0]!.message).toMatch(/ECONNREFUSED/);
    expect(retries[0]!.at).toBeLessThan(200);
    expect(retries.map((r) => r.delayMs)).toEqual([20, 40]); // this suite's transport starts its backoff at 20 ms
  });

  it("counts attempts against a server that hangs up, and times out a silent one", async () => {
    let accepted = 0;
    const hangup: NetServer = createServer((sock) => {
      accepted++;
      sock.destroy();
    });
    await new Promise<void>((r) => hangup.listen(0, "127.0.0.1", r));
    const silentSockets: import("node:net").Socket[] = [];
    const silent: NetServer = createServer((sock) => silentSockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const port = (hangup.address() as AddressInfo).port;
      await expectTransportError(transport.connect("h", conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, dialErrorLimit: 4 })), "connect");
      expect(accepted).toBe(4);
      const silentPort = (silent.address() as AddressInfo).port;
      const t0 = Date.now();
      const err = await expectTransportError(
        transport.connect("s", conn(silentPort, { trustOnFirstUse: true, privateKey: clientKey.privateKey, perDialTimeout: 1, dialErrorLimit: 1 })),
        "connect",
      );
      expect(err.message).toMatch(/Timed out/);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silentSockets.forEach((s) => s.destroy());
      await Promise.all([new Promise((r) => hangup.close(r)), new Promise((r) => silent.close(r))]);
    }
  });
});

describe("bastion", () => {
  it("reaches the target through the bastion's forwarded channel, checking both host keys", async () => {
    const bastion = await server({ allowForwarding: true });
    const target = await server();
    const proxy = conn(bastion.port, { hostKey: bastion.fingerprint, privateKey: clientKey.privateKey });
    const session = await open("rs1", conn(target.port, { hostKey: target.fingerprint, privateKey: clientKey.privateKey, proxy }));
    expect(session.hostKeyFingerprint).toBe(target.fingerprint);
    expect((await session.runScript("echo via")).stdout).toBe("via\n");
    expect(bastion.connections).toBe(1);
    expect(target.connections).toBe(1);
  });

  it("a wrong bastion key fails at proxy, naming the inner step and the fingerprint seen", async () => {
    const bastion = await server({ allowForwarding: true });
    const target = await server();
    const proxy = conn(bastion.port, { hostKey: target.fingerprint, privateKey: clientKey.privateKey });
    const err = await expectTransportError(transport.connect("rs1", conn(target.port, { hostKey: target.fingerprint, privateKey: clientKey.privateKey, proxy })), "proxy");
    expect(err.message).toContain("host-key");
    expect(err.message).toContain(bastion.fingerprint);
    expect(target.connections).toBe(0);
  });

  it("a target the bastion cannot reach fails at connect after its attempts", async () => {
    const bastion = await server({ allowForwarding: true });
    const port = await freePort();
    const proxy = conn(bastion.port, { hostKey: bastion.fingerprint, privateKey: clientKey.privateKey });
    const err = await expectTransportError(transport.connect("rs1", conn(port, { trustOnFirstUse: true, privateKey: clientKey.privateKey, proxy, dialErrorLimit: 2 })), "connect");
    expect(err.message).toMatch(/through the bastion after 2 attempt/);
  });
});

describe("runScript", () => {
  let s: TestServer;
  let session: HostSession;
  beforeEach(async () => {
    s = await server();
    session = await open("web1", conn(s.port, { hostKey: s.fingerprint, privateKey: clientKey.privateKey }));
  });

  it("runs a small script in the login shell itself, with nothing to read on stdin", async () => {
    const r = await session.runScript('set -eu\nx=héllo\necho "$x"\necho err >&2\nexit 3\n');
    expect(r).toEqual({ code: 3, stdout: "héllo\n", stderr: "err\n" });
    expect(s.commands).toEqual([
      `lvsdr_script='set -eu\nx=héllo\necho "$x"\necho err >&2\nexit 3\n'; [ -z "\${ZSH_VERSION-}" ] || exec /bin/sh -c "$lvsdr_script"; eval "$lvsdr_script"`,
    ]);
  });

  it("sends a script over the inline limit on stdin, run once all of it has arrived", async () => {
    const big = `set -eu\nx='${"y".repeat(inlineScriptLimit)}'\necho "\${#x}"\nexit 4\n`;
    const r = await session.runScript(big, { timeoutMs: 10_000 });
    expect(r).toEqual({ code: 4, stdout: `${inlineScriptLimit}\n`, stderr: "" });
    expect(s.commands[0]).toContain(`'lvsdr_script=$(cat) || exit 125; eval "$lvsdr_script"'`);
    expect(s.commands[0]!.length).toBeLessThan(300);
  });

  it("quotes an inline script so the login shell passes it through untouched", async () => {
    const r = await session.runScript("printf '%s|' \"it's\" '$HOME' \"\\$x\"; echo\n", { timeoutMs: 5000 });
    expect(r.stdout).toBe("it's|$HOME|$x|\n");
  });

  it("runs the bare `true` the benchmark floor measures, with no shell reading stdin", async () => {
    expect(await (session as SshSession).runCommand("true")).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(s.commands).toEqual(["true"]);
  });

  it("keeps set -e, heredocs and exit codes of the script, inline or on stdin", async () => {
    const r = await session.runScript("set -eu\ncat <<'EOF'\nin heredoc $HOME\nEOF\nfalse\necho never\n", { timeoutMs: 5000 });
    const padded = await session.runScript(`set -eu\n#${"-".repeat(inlineScriptLimit)}\ncat <<'EOF'\nin heredoc $HOME\nEOF\nfalse\necho never\n`);
    expect(padded).toEqual(r);
    expect(r).toEqual({ code: 1, stdout: "in heredoc $HOME\n", stderr: "" });
    const unset = await session.runScript('set -eu\necho "$lvsdr_nothing"\necho never\n');
    expect(unset.code).not.toBe(0);
    expect(unset.stdout).toBe("");
  });

  it("carries a large script and output intact", async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `echo line-${i}`).join("\n");
    const r = await session.runScript(lines + "\n");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toHaveLength(20_001);
  });

  it("calls onLine once per line, including an unterminated last line", async () => {
    const seen: string[] = [];
    await session.runScript("printf 'a\\nb'; sleep 0.1; printf 'c\\n\\nd'", { onLine: (l) => seen.push(l) });
    expect(seen).toEqual(["a", "bc", "", "d"]);
  });

  it("runs scripts concurrently on one session", async () => {
    const rs = await Promise.all([1, 2, 3].map((n) => session.runScript(`sleep 0.2; echo ${n}`)));
    expect(rs.map((r) => r.stdout)).toEqual(["1\n", "2\n", "3\n"]);
  });

  it("on timeout rejects with step timeout, and the host kills the whole script", async () => {
    const pids: string[] = [];
    const t0 = Date.now();
    await expectTransportError(session.runScript("echo $$; sleep 30; echo never", { timeoutMs: 200, onLine: (l) => pids.push(l) }), "timeout");
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(s.commands[0]).toContain("sleep 2 & lvsdr_sleep=$!");
    const pid = Number(pids[0]);
    expect(pid).toBeGreaterThan(0);
    // Neither OpenSSH 9.2 nor ssh2's Server acts on a signal request after stdin EOF, so the
    // kill is the script's own watchdog, 1 s after ours (ceil(0.2 s) + 1 s).
    await new Promise((r) => setTimeout(r, 2300));
    expect(alive(pid)).toBe(false);
    // The session is still usable.
    expect((await session.runScript("echo ok")).stdout).toBe("ok\n");
  });

  it("on timeout the watchdog also kills what the script started, and the host lock is free again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-watchdog-"));
    try {
      const lock = join(dir, "lock");
      const pids: string[] = [];
      const script = `sleep 30 & echo $!\nexec 9>>${lock}\nflock 9\nsleep 31\n`;
      await expectTransportError(session.runScript(script, { timeoutMs: 200, onLine: (l) => pids.push(l) }), "timeout");
      await new Promise((r) => setTimeout(r, 2300));
      expect(pids).toHaveLength(1);
      expect(alive(Number(pids[0]))).toBe(false);
      const r = await session.runScript(`exec 9>>${lock}\nflock -n 9 && echo free\n`);
      expect(r.stdout).toBe("free\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops its watchdog when the script ends, and keeps the script's exit code", async () => {
    const r = await session.runScript("echo $$\nexit 7\n", { timeoutMs: 60_000 });
    expect(r.code).toBe(7);
    // Nothing of the script is left behind: no sleeping watchdog holds the channel or a process.
    await new Promise((res) => setTimeout(res, 200));
    // Command lines from /proc (procps may not be installed before the lab's prerequisites are).
    const commandLines = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").join(" ").trim();
        } catch {
          return "";
        }
      });
    const left = commandLines.filter((l) => l === "sleep 61");
    expect(left).toEqual([]);
  });

  it("without killOnHost a read-only script times out locally, with no watchdog on the host", async () => {
    await expectTransportError(session.runScript("sleep 5", { timeoutMs: 200, killOnHost: false }), "timeout");
    expect(s.commands[0]).toBe(`lvsdr_script='sleep 5'; [ -z "\${ZSH_VERSION-}" ] || exec /bin/sh -c "$lvsdr_script"; eval "$lvsdr_script"`);
  });

  it("writes a script's input when it is known, while the script waits for it", async () => {
    let tell: (text: string) => void = () => undefined;
    const input = new Promise<string>((r) => (tell = r));
    const seen: string[] = [];
    const running = session.runScript('echo ready\nread -r answer\necho "got $answer"\n', { timeoutMs: 10_000, input, onLine: (l) => seen.push(l) });
    // The script is running and waiting before the input exists.
    while (!seen.includes("ready")) await new Promise((r) => setTimeout(r, 20));
    tell("go\n");
    expect((await running).stdout).toBe("ready\ngot go\n");
    const big = `#${"-".repeat(inlineScriptLimit)}\necho hi\n`;
    await expectTransportError(session.runScript(big, { input: Promise.resolve("go\n") }), "run");
  });

  it("fails with step run after the session is closed", async () => {
    await session.close();
    await expectTransportError(session.runScript("true"), "run");
  });
});

describe("sudo", () => {
  it("runs through sudo -n when the connection says so", async () => {
    const s = await server({ sudo: "strip" });
    const session = await open("a", conn(s.port, { hostKey: s.fingerprint, privateKey: clientKey.privateKey, sudo: true }));
    expect((await session.runScript("echo hi")).stdout).toBe("hi\n");
    expect(s.commands).toEqual(["exec sudo -n /bin/sh -c 'echo hi'"]);
  });

  it("says passwordless sudo is needed when sudo asks for a password", async () => {
    const s = await server({ sudo: "refuse" });
    const session = await open("a", conn(s.port, { hostKey: s.fingerprint, privateKey: clientKey.privateKey, sudo: true }));
    const err = await expectTransportError(session.runScript("echo hi"), "sudo");
    expect(err.message).toMatch(/user tester needs passwordless sudo.*a password is required/);
  });
});

describe("pool", () => {
  it("runOnHosts keeps input order, isolates failures and respects the bound", async () => {
    let active = 0;
    let peak = 0;
    const results = await runOnHosts(
      Array.from({ length: 25 }, (_, i) => i),
      4,
      async (n) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5 + (n % 3) * 5));
        active--;
        if (n === 7) throw new Error("seven");
        return n * 2;
      },
    );
    expect(peak).toBe(4);
    expect(results[7]).toEqual({ ok: false, error: new Error("seven") });
    expect(results.filter((r) => r.ok).map((r) => (r.ok ? r.value : -1))).toEqual(Array.from({ length: 25 }, (_, i) => i * 2).filter((v) => v !== 14));
  });

  it("bounds simultaneous connects and opens one session per host", async () => {
    let active = 0;
    let peak = 0;
    const connects: string[] = [];
    const fake: Transport = {
      async connect(host) {
        connects.push(host);
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 10));
        active--;
        return { host, hostKeyFingerprint: "SHA256:x", runScript: async () => ({ code: 0, stdout: "", stderr: "" }), close: async () => undefined };
      },
    };
    const pool = new SessionPool(fake, { connectConcurrency: 3 });
    const hosts = Array.from({ length: 12 }, (_, i) => `h${i}`);
    const first = await Promise.all(hosts.map((h) => pool.session(h, conn(22))));
    const again = await Promise.all(hosts.map((h) => pool.session(h, conn(22))));
    expect(peak).toBe(3);
    expect(connects).toHaveLength(12);
    again.forEach((s, i) => expect(s).toBe(first[i]));
    await pool.closeAll();
    expect(pool.hosts).toEqual([]);
  });

  it("reuses one real SSH connection per host, opens a new one after release, and retries a failed connect later", async () => {
    const s = await server();
    const pool = new SessionPool(transport);
    const c = conn(s.port, { hostKey: s.fingerprint, privateKey: clientKey.privateKey });
    const [a, b] = await Promise.all([pool.session("web1", c), pool.session("web1", c)]);
    expect(a).toBe(b);
    await a!.runScript("true");
    await (await pool.session("web1", c)).runScript("true");
    expect(s.connections).toBe(1);
    // Released: closed at once, and the next use connects anew.
    await pool.release("web1");
    expect(pool.hosts).not.toContain("web1");
    await expect(a!.runScript("true")).rejects.toThrow(/closed/);
    await (await pool.session("web1", c)).runScript("true");
    expect(s.connections).toBe(2);
    const bad = { ...c, hostKey: "SHA256:" + "A".repeat(43) };
    await expect(pool.session("web2", bad)).rejects.toThrow(/host-key/);
    await pool.session("web2", c);
    await pool.closeAll();
  });
});
