/**
 * What the transport trusts from a host, against in-process SSH servers that misbehave: one
 * that floods output, one that asks odd keyboard-interactive questions. And the inline-script
 * limit, held on the command as sent (quoting included).
 */
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Server, type ServerChannel, type Connection as ServerConnection } from "ssh2";
import type { Connection } from "../config/connection";
import { inlineScriptLimit, remoteInvocation, travelsInline } from "./invocation";
import { answerPrompts, defaultOutputLimitBytes, SshTransport } from "./ssh";
import { generateKey, startTestServer, type TestServer } from "./testing/ssh-server";
import { TransportError, type HostSession } from "./types";

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
/** No ssh-agent from the environment: the methods tried are the ones the connection names. */
const transport = (options: ConstructorParameters<typeof SshTransport>[0] = {}) => new SshTransport({ env: {}, ...options });

interface Misbehaving {
  port: number;
  fingerprint: string;
  /** Per exec: what the server wrote, and whether the client closed the channel. */
  execs: { sent: number; closed: boolean }[];
  /** Per keyboard-interactive round: the answers received. */
  answers: string[][];
  close(): Promise<void>;
}

/**
 * An SSH server that accepts anyone, or only a keyboard-interactive login that answers
 * `prompts` with `expect`; every exec gets `flood` bytes of `a` on stdout or stderr, written as
 * fast as the client takes them (SSH's window is the only brake), then exit 0.
 */
async function misbehaving(options: {
  flood?: { bytes: number; on: "stdout" | "stderr" };
  prompts?: { prompt: string; echo: boolean }[];
  expect?: string[];
}): Promise<Misbehaving> {
  const host = generateKey();
  const blob = Buffer.from(host.publicLine.split(" ")[1]!, "base64");
  const clients = new Set<ServerConnection>();
  const state: Misbehaving = {
    port: 0,
    fingerprint: `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`,
    execs: [],
    answers: [],
    close: async () => undefined,
  };
  const server = new Server({ hostKeys: [host.privateKey] }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (!options.prompts) return ctx.accept();
      if (ctx.method !== "keyboard-interactive") return ctx.reject(["keyboard-interactive"]);
      ctx.prompt(options.prompts, (answers) => {
        state.answers.push(answers);
        return JSON.stringify(answers) === JSON.stringify(options.expect) ? ctx.accept() : ctx.reject();
      });
    });
    client.on("session", (acceptSession) => {
      acceptSession().on("exec", (accept) => {
        const channel: ServerChannel = accept();
        // Its stdin is read (and dropped): ssh2 reports the channel closed only once it ended.
        channel.resume();
        const exec = { sent: 0, closed: false };
        state.execs.push(exec);
        channel.on("error", () => undefined);
        channel.stderr.on("error", () => undefined);
        channel.on("close", () => (exec.closed = true));
        const out = options.flood?.on === "stderr" ? channel.stderr : channel;
        const total = options.flood?.bytes ?? 0;
        const chunk = Buffer.alloc(64 * 1024, "a");
        const pump = (): void => {
          while (exec.sent < total && !exec.closed) {
            exec.sent += chunk.length;
            if (!out.write(chunk)) {
              out.once("drain", pump);
              return;
            }
          }
          if (!exec.closed) {
            channel.exit(0);
            channel.end();
          }
        };
        pump();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      for (const c of clients) c.end();
      server.close(() => r());
    });
  return state;
}

function conn(port: number, extra: Partial<Connection> = {}): Connection {
  return { host: "127.0.0.1", port, user: "tester", dialErrorLimit: 1, perDialTimeout: 5, sudo: false, password: "not-used", ...extra };
}

async function failure(p: Promise<unknown>): Promise<TransportError> {
  const err = await p.then(
    () => new Error("expected a rejection"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransportError);
  return err as TransportError;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function open(server: { port: number; fingerprint: string }, via = transport(), extra: Partial<Connection> = {}): Promise<HostSession> {
  const session = await via.connect("rs1", conn(server.port, { hostKey: server.fingerprint, ...extra }));
  cleanups.push(() => session.close());
  return session;
}

describe("output from a host is capped", () => {
  it("a host that floods stdout: reading stops at 64 MiB, the command fails saying so, and memory stays bounded", async () => {
    expect(defaultOutputLimitBytes).toBe(64 * MiB);
    const server = await misbehaving({ flood: { bytes: 256 * MiB, on: "stdout" } });
    cleanups.push(server.close);
    const session = await open(server);
    const before = process.memoryUsage.rss();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
    try {
      const err = await failure(session.runScript("observe", { what: "observe" }));
      expect(err.message).toBe("rs1: run: the host sent more than 64 MiB of output for observe; stopped reading");
    } finally {
      clearInterval(sampler);
    }
    // The channel was closed: the host could write little more than the limit and SSH's window.
    await new Promise((r) => setTimeout(r, 100));
    expect(server.execs[0]!.closed).toBe(true);
    expect(server.execs[0]!.sent).toBeLessThan(72 * MiB);
    // Reading all 256 MiB grew the tool by 581 MiB; with at most 64 MiB kept it grows by about 90.
    expect((peak - before) / MiB).toBeLessThan(256);
  });

  it("counts stderr too, with the limit the transport is given; the session stays usable, and output at the limit is kept whole", async () => {
    const flood = await misbehaving({ flood: { bytes: 8 * MiB, on: "stderr" } });
    cleanups.push(flood.close);
    const limited = transport({ outputLimitBytes: 1 * MiB });
    const session = await open(flood, limited);
    const err = await failure(session.runScript("x"));
    expect(err.message).toBe("rs1: run: the host sent more than 1 MiB of output; stopped reading");
    await failure(session.runScript("again"));
    expect(flood.execs).toHaveLength(2);
    expect(flood.execs[1]!.sent).toBeLessThan(6 * MiB);

    const exact = await misbehaving({ flood: { bytes: 1 * MiB, on: "stdout" } });
    cleanups.push(exact.close);
    const r = await (await open(exact, limited)).runScript("x");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toHaveLength(1 * MiB);
  });

  it("a long line without an end, fed to onLine, is split once, not per chunk", async () => {
    const server = await misbehaving({ flood: { bytes: 32 * MiB, on: "stdout" } });
    cleanups.push(server.close);
    const lines: number[] = [];
    const started = Date.now();
    const r = await (await open(server)).runScript("x", { onLine: (l) => lines.push(l.length) });
    expect(lines).toEqual([32 * MiB]);
    expect(r.stdout).toHaveLength(32 * MiB);
    // Splitting what came so far again at every 32 KiB packet: 500 GB of copying.
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe("keyboard-interactive answers only password prompts with the password", () => {
  const password = "s3cret-pw";

  it("answers an unechoed password prompt, and logs in", async () => {
    const server = await misbehaving({ prompts: [{ prompt: "tester@rs1's password: ", echo: false }], expect: [password] });
    cleanups.push(server.close);
    await open(server, transport(), { password });
    expect(server.answers).toEqual([[password]]);
  });

  it.each([
    ["a one-time code", [{ prompt: "Verification code: ", echo: false }], ['"Verification code:"']],
    ["an echoed prompt, even one that says password", [{ prompt: "Password: ", echo: true }], ['"Password:"']],
    ["a new password", [{ prompt: "New password: ", echo: false }], ['"New password:"']],
    ["control characters in the prompt", [{ prompt: "Code\x1b[31m\x07:", echo: false }], ['"Code [31m :"']],
  ])("does not answer %s, and the refusal names the prompt", async (_what, prompts, named) => {
    const server = await misbehaving({ prompts, expect: [password] });
    cleanups.push(server.close);
    const err = await failure(transport().connect("rs1", conn(server.port, { hostKey: server.fingerprint, password })));
    expect(err.step).toBe("authenticate");
    for (const text of named) expect(err.message).toContain(`keyboard-interactive asked ${text}, not a password prompt`);
    expect(err.message).not.toContain(password);
    expect([...err.message].filter((c) => c.charCodeAt(0) < 0x20)).toEqual([]);
    expect(server.answers.flat()).not.toContain(password);
  });

  it("with a password prompt and a code prompt, gives the password only to the first", async () => {
    const server = await misbehaving({
      prompts: [
        { prompt: "Password: ", echo: false },
        { prompt: "Verification code: ", echo: false },
      ],
      expect: [password, "123456"],
    });
    cleanups.push(server.close);
    const err = await failure(transport().connect("rs1", conn(server.port, { hostKey: server.fingerprint, password })));
    expect(err.message).toMatch(
      /^rs1: authenticate: 127\.0\.0\.1:\d+ refused user tester \(tried password, keyboard-interactive\); keyboard-interactive asked "Verification code:", not a password prompt/,
    );
    expect(server.answers).toEqual([[password, ""]]);
  });

  it("answerPrompts: by prompt text and echo", () => {
    const unanswered: string[] = [];
    const answers = answerPrompts(
      [
        { prompt: "Password:", echo: false },
        { prompt: "PASSWORD for tester: ", echo: false },
        { prompt: "Retype new password: ", echo: false },
        { prompt: "OTP: ", echo: false },
        { prompt: "password (shown): ", echo: true },
      ],
      "pw",
      unanswered,
    );
    expect(answers).toEqual(["pw", "pw", "", "", ""]);
    expect(unanswered).toEqual(["Retype new password: ", "OTP: ", "password (shown): "]);
  });
});

describe("the inline-script limit is held on the command as sent", () => {
  /** A script that prints n single quotes: each is 4 bytes once quoted for the exec request. */
  const quotes = (n: number) => `printf '%s' "${"'".repeat(n)}" | wc -c\n`;

  it("a script under the limit that its quoting takes over it goes on stdin; every inline command fits", () => {
    const script = quotes(20_000);
    expect(Buffer.byteLength(script)).toBeLessThan(inlineScriptLimit);
    for (const sudo of [false, true]) {
      const { command, stdin } = remoteInvocation(script, sudo);
      expect(stdin).toBe(script);
      expect(command.length).toBeLessThan(300);
      expect(travelsInline(script)).toBe(false);
    }
  });

  it("at the boundary: the largest script that travels inline makes a command of at most the limit, one quote more does not travel inline", () => {
    // Quoted, n quotes take about 4n bytes: search near limit / 4.
    let n = Math.floor(inlineScriptLimit / 4) - 200;
    while (travelsInline(quotes(n + 1))) n++;
    expect(travelsInline(quotes(n))).toBe(true);
    for (const sudo of [false, true]) {
      const inline = remoteInvocation(quotes(n), sudo);
      expect(inline.stdin).toBe("");
      expect(Buffer.byteLength(inline.command)).toBeLessThanOrEqual(inlineScriptLimit);
      expect(remoteInvocation(quotes(n + 1), sudo).stdin).toBe(quotes(n + 1));
    }
    // Without sudo the command is the longer one: it reaches the limit within a quote's growth.
    expect(Buffer.byteLength(remoteInvocation(quotes(n), false).command)).toBeGreaterThan(inlineScriptLimit - 4);
    // With a timeout the host deadline is part of what is measured.
    expect(travelsInline(quotes(n), 10_000)).toBe(false);
  });

  describe("on a real shell", () => {
    let server: TestServer;
    let session: HostSession;
    const clientKey = generateKey();
    beforeEach(async () => {
      server = await startTestServer({ authorizedKey: clientKey.publicLine });
      cleanups.push(server.close);
      const s = await transport().connect("rs1", conn(server.port, { hostKey: server.fingerprint, privateKey: clientKey.privateKey, password: undefined }));
      cleanups.push(() => s.close());
      session = s;
    });

    it("runs scripts full of quotes, inline and on stdin, exactly", async () => {
      // 40,000 quotes once made a 160 KB inline command: over Linux's 128 KiB for one argument
      // (and over the 35,000-byte packets ssh2's server takes, which bounds the inline one here).
      for (const n of [8_000, 40_000]) {
        const r = await session.runScript(quotes(n));
        expect(r).toEqual({ code: 0, stdout: `${n}\n`, stderr: "" });
      }
      expect(server.commands[0]!.length).toBeGreaterThan(32_000);
      expect(server.commands[1]!.length).toBeLessThan(300);
    });
  });
});
