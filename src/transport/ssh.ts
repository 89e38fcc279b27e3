/**
 * The SSH transport over `ssh2`: host key checked during the handshake, key/agent/password
 * auth, an optional bastion hop through a forwarded channel, connect retries with backoff, and
 * scripts run by the login shell (by `sudo -n /bin/sh` when asked) as `remoteInvocation` renders them.
 */
import { readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { Duplex } from "node:stream";
import { Client, utils, type ClientChannel, type ConnectConfig, type AuthenticationType } from "ssh2";
import type { Connection, EncryptedValue } from "../config/connection";
import { remoteInvocation } from "./invocation";
import { verifyHostKey, loadKnownHosts, type HostKeyVerdict } from "./host-key";
import { TransportError, type ConnectOptions, type HostSession, type RunOptions, type ScriptResult, type Transport } from "./types";

export interface SshTransportOptions {
  /** SSH-level keepalive interval; a dead peer is noticed after interval x countMax. Default 10 s. */
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection is dropped. Default 3. */
  keepaliveCountMax?: number;
  /** First retry delay; doubles per attempt. Default 250 ms. */
  initialBackoffMs?: number;
  /** Largest retry delay. Default 5 s. */
  maxBackoffMs?: number;
  /** Attempts used when `dialErrorLimit` is -1 (unlimited), so a dead host cannot hang a run forever. Default 100. */
  unlimitedDialCap?: number;
  /** Environment to read `SSH_AUTH_SOCK` from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

type Secret = string | EncryptedValue | undefined;

interface Credentials {
  privateKey?: Buffer;
  passphrase?: string;
  password?: string;
  agent?: string;
}

/** A path as the spec wrote it, and where it led when that differs: `.lab/key (/srv/x/.lab/key)`. */
function asWrittenAndResolved(written: string, resolved: string): string {
  return written === resolved ? written : `${written} (${resolved})`;
}

/** Attempts for a `dialErrorLimit`: -1 is unlimited (capped), 0 still tries once. */
export function dialAttempts(dialErrorLimit: number, unlimitedCap = 100): number {
  if (dialErrorLimit < 0) return unlimitedCap;
  return Math.max(1, dialErrorLimit);
}

/** Delay before retry number `attempt` (1-based): 250, 500, 1000, ... capped. */
export function backoffMs(attempt: number, initial = 250, max = 5000): number {
  return Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
}

function secret(host: string, field: string, value: Secret): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return value;
  throw new TransportError(host, "resolve-credentials", `${field} is encrypted (secure: ...) and can only be read by Pulumi; outside Pulumi use privateKeyPath or an ssh-agent`);
}

function resolveCredentials(host: string, c: Connection, baseDir: string | undefined, env: NodeJS.ProcessEnv): Credentials {
  const creds: Credentials = {};
  const password = secret(host, "password", c.password);
  const passphrase = secret(host, "privateKeyPassword", c.privateKeyPassword);
  let key: Buffer | undefined;
  const inline = secret(host, "privateKey", c.privateKey);
  if (inline !== undefined) key = Buffer.from(inline);
  else if (c.privateKeyPath !== undefined) {
    const path = isAbsolute(c.privateKeyPath) ? c.privateKeyPath : resolve(baseDir ?? process.cwd(), c.privateKeyPath);
    try {
      key = readFileSync(path);
    } catch (err) {
      throw new TransportError(
        host,
        "resolve-credentials",
        `cannot read privateKeyPath ${asWrittenAndResolved(c.privateKeyPath, path)}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
        err,
      );
    }
  }
  if (key !== undefined) {
    // Parse here rather than letting Client.connect throw, so a bad passphrase is one clear error.
    const parsed = utils.parseKey(key, passphrase);
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (first instanceof Error || first === undefined || !first.isPrivateKey()) {
      const why = first instanceof Error ? first.message : "not a private key";
      const hint = /passphrase|encrypted|decrypt/i.test(why) ? (passphrase === undefined ? " (the key is encrypted: set privateKeyPassword)" : " (wrong privateKeyPassword?)") : "";
      // ssh2's messages describe the format, never the key bytes, so they are safe to show.
      throw new TransportError(host, "resolve-credentials", `cannot use the private key: ${why}${hint}`);
    }
    creds.privateKey = key;
    if (passphrase !== undefined) creds.passphrase = passphrase;
  }
  if (password !== undefined) creds.password = password;
  const agent = c.agentSocketPath ?? env.SSH_AUTH_SOCK;
  if (agent !== undefined && agent !== "") creds.agent = agent;
  if (creds.privateKey === undefined && creds.password === undefined && creds.agent === undefined) {
    throw new TransportError(
      host,
      "resolve-credentials",
      `no credentials for ${c.user}@${c.host}: set privateKey, privateKeyPath or password, or run an ssh-agent (SSH_AUTH_SOCK)`,
    );
  }
  return creds;
}

/** Key first, as pulumi-command prefers it; password also answers keyboard-interactive. */
function authMethods(creds: Credentials): AuthenticationType[] {
  const methods: AuthenticationType[] = [];
  if (creds.privateKey) methods.push("publickey");
  if (creds.agent) methods.push("agent");
  if (creds.password !== undefined) methods.push("password", "keyboard-interactive");
  return methods;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Dialed {
  client: Client;
  fingerprint: string;
  trustedOnFirstUse: boolean;
}

/** A failure worth another attempt (network, handshake timeout), as opposed to a refusal. */
class RetryableDialError extends Error {}

export class SshTransport implements Transport {
  private readonly opts: Required<Omit<SshTransportOptions, "env">> & { env: NodeJS.ProcessEnv };

  constructor(options: SshTransportOptions = {}) {
    this.opts = {
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      initialBackoffMs: options.initialBackoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 5_000,
      unlimitedDialCap: options.unlimitedDialCap ?? 100,
      env: options.env ?? process.env,
    };
  }

  async connect(host: string, connection: Connection, options: ConnectOptions = {}): Promise<HostSession> {
    let bastion: Dialed | undefined;
    if (connection.proxy) {
      const p = connection.proxy;
      try {
        bastion = await this.dialWithRetry(`bastion ${p.host}`, p, options);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new TransportError(host, "proxy", `through ${p.user}@${p.host}:${p.port}: ${msg}`, err);
      }
      if (bastion.trustedOnFirstUse) options.onTrust?.(p.host, bastion.fingerprint);
    }
    let target: Dialed;
    try {
      target = await this.dialWithRetry(host, connection, options, bastion?.client);
    } catch (err) {
      bastion?.client.end();
      throw err;
    }
    if (target.trustedOnFirstUse) options.onTrust?.(host, target.fingerprint);
    return new SshSession(host, connection, target.client, target.fingerprint, bastion?.client);
  }

  private async dialWithRetry(label: string, c: Connection, options: ConnectOptions, via?: Client): Promise<Dialed> {
    const creds = resolveCredentials(label, c, options.baseDir, this.opts.env);
    // Read known_hosts once per connect, and fail before dialing if it is unreadable.
    let knownHostsText: string | undefined;
    if (c.hostKey === undefined && c.knownHostsFile !== undefined) {
      try {
        knownHostsText = loadKnownHosts(c.knownHostsFile, options.baseDir);
      } catch (err) {
        const resolved = isAbsolute(c.knownHostsFile) ? c.knownHostsFile : resolve(options.baseDir ?? process.cwd(), c.knownHostsFile);
        throw new TransportError(
          label,
          "host-key",
          `cannot read knownHostsFile ${asWrittenAndResolved(c.knownHostsFile, resolved)}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
          err,
        );
      }
    }
    const verify = (key: Buffer) => verifyHostKey(c.host, c.port, key, c, { ...(knownHostsText !== undefined ? { knownHostsText } : {}) });
    const attempts = dialAttempts(c.dialErrorLimit, this.opts.unlimitedDialCap);
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const sock = via ? await forward(via, c) : undefined;
        return await this.dialOnce(label, c, creds, verify, sock);
      } catch (err) {
        if (!(err instanceof RetryableDialError)) throw err;
        last = err;
      }
      if (attempt < attempts) {
        const delayMs = backoffMs(attempt, this.opts.initialBackoffMs, this.opts.maxBackoffMs);
        options.onDialRetry?.({ host: label, attempt, attempts, message: (last as Error).message, delayMs });
        await sleep(delayMs);
      }
    }
    const how = via ? "through the bastion " : "";
    const why = last instanceof Error ? last.message : String(last);
    throw new TransportError(label, "connect", `cannot reach ${c.user}@${c.host}:${c.port} ${how}after ${attempts} attempt(s): ${why}`, last);
  }

  private dialOnce(label: string, c: Connection, creds: Credentials, verify: (key: Buffer) => HostKeyVerdict, sock: Duplex | undefined): Promise<Dialed> {
    return new Promise<Dialed>((resolvePromise, reject) => {
      const client = new Client();
      let verdict: HostKeyVerdict | undefined;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        sock?.destroy();
        reject(err);
      };
      client.on("error", (err: Error & { level?: string }) => {
        if (verdict && !verdict.ok) {
          fail(new TransportError(label, "host-key", verdict.message, err));
        } else if (err.level === "client-authentication") {
          const tried = authMethods(creds).join(", ");
          fail(new TransportError(label, "authenticate", `${c.host}:${c.port} refused user ${c.user} (tried ${tried})`, err));
        } else {
          fail(new RetryableDialError(err.message));
        }
      });
      client.on("close", () => fail(new RetryableDialError("connection closed during the handshake")));
      // Every exchange is a few small packets waiting on each other: with Nagle's algorithm the
      // script's EOF waits for the delayed ACK of its data, 40 ms per round trip on Linux.
      client.on("connect", () => client.setNoDelay(true));
      client.on("ready", () => {
        if (settled || !verdict?.ok) return;
        settled = true;
        resolvePromise({ client, fingerprint: verdict.fingerprint, trustedOnFirstUse: verdict.trustedOnFirstUse });
      });
      if (creds.password !== undefined) {
        const password = creds.password;
        client.on("keyboard-interactive", (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password)));
      }
      const config: ConnectConfig = {
        host: c.host,
        port: c.port,
        username: c.user,
        // 0 means no limit in both pulumi-command and ssh2.
        readyTimeout: c.perDialTimeout * 1000,
        keepaliveInterval: this.opts.keepaliveIntervalMs,
        keepaliveCountMax: this.opts.keepaliveCountMax,
        hostVerifier: (key: Buffer) => {
          verdict = verify(key);
          return verdict.ok;
        },
        authHandler: authMethods(creds),
        tryKeyboard: creds.password !== undefined,
        ...(creds.privateKey ? { privateKey: creds.privateKey } : {}),
        ...(creds.passphrase !== undefined ? { passphrase: creds.passphrase } : {}),
        ...(creds.password !== undefined ? { password: creds.password } : {}),
        ...(creds.agent ? { agent: creds.agent } : {}),
        ...(sock ? { sock } : {}),
      };
      try {
        client.connect(config);
      } catch (err) {
        // Config errors (e.g. an unusable key) are not fixed by retrying.
        fail(new TransportError(label, "resolve-credentials", (err as Error).message, err));
      }
    });
  }
}

/** Opens a direct-tcpip channel from the bastion to the target; a refusal is worth a retry. */
function forward(via: Client, c: Connection): Promise<Duplex> {
  return new Promise((resolvePromise, reject) => {
    try {
      via.forwardOut("127.0.0.1", 0, c.host, c.port, (err, stream) => {
        if (err) reject(new RetryableDialError(`the bastion could not open a channel to ${c.host}:${c.port}: ${err.message}`));
        else resolvePromise(stream);
      });
    } catch (err) {
      reject(new RetryableDialError((err as Error).message));
    }
  });
}

/** `sudo -n` refusals that mean "this user needs passwordless sudo", as sudo words them. */
const sudoRefusal = /^sudo: (?:a password is required|a terminal is required|no tty present|.*is not in the sudoers file|.*is not allowed to execute)/m;
const sudoMissing = /(?:^|: )sudo: (?:command )?not found/m;

/**
 * ssh2 quirk: `Channel.signal()` silently does nothing once stdin has been ended (it requires
 * `writable` and state "open"; after EOF the state is "eof"), and we always end stdin after the
 * script. A signal request is valid on a half-closed channel, so send it through the protocol.
 */
interface ChannelInternals {
  writable?: boolean;
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
}
function sendKill(channel: ClientChannel): void {
  try {
    const internals = channel as unknown as ChannelInternals;
    const id = internals.outgoing?.id;
    const protocol = internals._client?._protocol;
    const state = internals.outgoing?.state;
    if (id !== undefined && (state === "open" || state === "eof") && protocol?.signal) protocol.signal(id, "KILL");
    else channel.signal("KILL");
  } catch {
    /* the channel is already gone; closing it below is all that is left */
  }
}

function exitCodeOfSignal(signal: string | undefined): number {
  const n = signal ? (osConstants.signals as Record<string, number | undefined>)[`SIG${signal}`] : undefined;
  return 128 + (n ?? 127);
}

export class SshSession implements HostSession {
  private closed = false;
  private readonly closedPromise: Promise<void>;

  constructor(
    readonly host: string,
    private readonly connection: Connection,
    private readonly client: Client,
    readonly hostKeyFingerprint: string,
    private readonly bastion: Client | undefined,
  ) {
    this.closedPromise = new Promise((r) => client.once("close", () => r()));
    client.on("close", () => {
      this.closed = true;
      bastion?.end();
    });
    // Errors after ready (keepalive timeout, reset) surface through failing channels; this
    // listener keeps them from becoming uncaught exceptions.
    client.on("error", () => undefined);
    bastion?.on("error", () => undefined);
  }

  runScript(script: string, options: RunOptions = {}): Promise<ScriptResult> {
    const { command, stdin } = remoteInvocation(script, this.connection.sudo, options.killOnHost === false ? undefined : options.timeoutMs);
    if (options.input && stdin !== "")
      return Promise.reject(new TransportError(this.host, "run", "a script too large to send inline reads itself from stdin: it cannot wait for input there"));
    return this.exec(command, stdin, options);
  }

  /**
   * Runs one fixed command with nothing on stdin. Only for measuring: the benchmark's floor is
   * an SSH session that runs `true` and nothing else. The tool itself only sends scripts.
   */
  runCommand(command: "true", options: RunOptions = {}): Promise<ScriptResult> {
    return this.exec(command, "", options);
  }

  private exec(command: string, input: string, options: RunOptions): Promise<ScriptResult> {
    const { host, connection } = this;
    return new Promise<ScriptResult>((resolvePromise, reject) => {
      if (this.closed) {
        reject(new TransportError(host, "run", "the connection is closed"));
        return;
      }
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let channel: ClientChannel | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        fn();
      };
      if (options.timeoutMs !== undefined) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => {
          settle(() => {
            if (channel) {
              // Servers that honour the signal request kill the script; closing the channel
              // also hangs up its pipes for those that do not.
              sendKill(channel);
              channel.close();
            }
            reject(new TransportError(host, "timeout", `the script did not finish within ${ms} ms and was killed`));
          });
        }, ms);
      }
      try {
        this.client.exec(command, (err, stream) => {
          if (err) {
            settle(() => reject(new TransportError(host, "run", `cannot start ${command}: ${err.message}`, err)));
            return;
          }
          if (settled) {
            stream.close();
            return;
          }
          channel = stream;
          const out = new StringDecoder("utf8");
          const errDecoder = new StringDecoder("utf8");
          let stdout = "";
          let stderr = "";
          let pending = "";
          let code: number | undefined;
          const emitLines = (text: string, final: boolean) => {
            if (!options.onLine || settled) return;
            const parts = (pending + text).split("\n");
            const tail = parts.pop() ?? "";
            pending = final ? "" : tail;
            // At end of output an unterminated last line is complete too.
            if (final && tail !== "") parts.push(tail);
            for (const line of parts) {
              try {
                options.onLine(line);
              } catch (cbErr) {
                settle(() => {
                  stream.close();
                  reject(new TransportError(host, "run", `onLine callback failed: ${(cbErr as Error).message}`, cbErr));
                });
                return;
              }
            }
          };
          stream.on("data", (chunk: Buffer) => {
            const text = out.write(chunk);
            stdout += text;
            emitLines(text, false);
          });
          stream.stderr.on("data", (chunk: Buffer) => {
            stderr += errDecoder.write(chunk);
          });
          stream.on("exit", (exitCode: number | null, signal?: string) => {
            code = typeof exitCode === "number" ? exitCode : exitCodeOfSignal(signal);
          });
          stream.on("close", () => {
            const rest = out.end();
            stdout += rest;
            emitLines(rest, true);
            stderr += errDecoder.end();
            if (code === undefined) {
              settle(() => reject(new TransportError(host, "run", "the channel closed without an exit status (connection lost?)")));
              return;
            }
            if (connection.sudo && code === 1 && stdout === "" && sudoRefusal.test(stderr)) {
              const said = stderr.split("\n").find((l) => l.startsWith("sudo: ")) ?? stderr.trim();
              settle(() => reject(new TransportError(host, "sudo", `user ${connection.user} needs passwordless sudo (NOPASSWD) to run /bin/sh; sudo said: ${said}`)));
              return;
            }
            if (connection.sudo && code === 127 && sudoMissing.test(stderr)) {
              settle(() => reject(new TransportError(host, "sudo", `sudo is not installed on the host, and user ${connection.user} is not root`)));
              return;
            }
            const result: ScriptResult = { code, stdout, stderr };
            settle(() => resolvePromise(result));
          });
          stream.on("error", (streamErr: Error) => {
            settle(() => reject(new TransportError(host, "run", streamErr.message, streamErr)));
          });
          if (options.input) {
            // Written when it is known; a channel already gone has nothing left to tell.
            const later = (text: string) => {
              if (!settled) stream.end(text);
            };
            options.input.then(later, () => later(""));
          } else {
            stream.end(input);
          }
        });
      } catch (err) {
        settle(() => reject(new TransportError(host, "run", (err as Error).message, err)));
      }
    });
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.client.end();
      // end() waits for the peer; do not let a dead peer hold the run open.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((r) => {
        timer = setTimeout(() => {
          this.client.destroy();
          r();
        }, 2_000);
      });
      await Promise.race([this.closedPromise, timeout]);
      clearTimeout(timer);
    }
    this.bastion?.end();
  }
}
