/**
 * The SSH transport over `ssh2`: host key checked during the handshake, key/agent/password
 * auth, an optional bastion hop through a forwarded channel, connect retries with backoff, and
 * scripts run by the login shell (by `sudo -n /bin/sh` when asked) as `remoteInvocation` renders them.
 */
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { Duplex } from "node:stream";
import {
  Client,
  utils,
  type AuthenticationType,
  type CipherAlgorithm,
  type ClientChannel,
  type ConnectConfig,
  type KexAlgorithm,
  type MacAlgorithm,
  type ServerHostKeyAlgorithm,
} from "ssh2";
import type { Connection, EncryptedValue } from "../config/connection";
import { remoteInvocation } from "./invocation";
import { defaultTrustStore, recordTrustedKey, verifyHostKey, type HostKeyVerdict } from "./host-key";
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
  /** Output kept per command, stdout and stderr together; past it the command fails. Default `defaultOutputLimitBytes`. */
  outputLimitBytes?: number;
  /** Environment to read `SSH_AUTH_SOCK` and the trust store's location (`LVSDR_KNOWN_HOSTS`, `XDG_CONFIG_HOME`, `HOME`) from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

type Secret = string | EncryptedValue | undefined;

interface Credentials {
  privateKey?: Buffer;
  passphrase?: string;
  password?: string;
  agent?: string;
}

/** The algorithm lists offered in the handshake, in order of preference (ssh2's `algorithms`). */
export interface OfferedAlgorithms {
  kex: KexAlgorithm[];
  serverHostKey: ServerHostKeyAlgorithm[];
  cipher: CipherAlgorithm[];
  hmac: MacAlgorithm[];
}

/**
 * What the transport offers by default: what OpenSSH 9 offers, less what ssh2 lacks. No SHA-1
 * anywhere (no `ssh-rsa` signatures, hmac-sha1 or SHA-1 key exchange) and no CBC: an RSA host
 * key still works, signed with rsa-sha2-512 or rsa-sha2-256 as any OpenSSH since 7.2 does.
 */
export const modernAlgorithms: OfferedAlgorithms = {
  kex: [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
  ],
  serverHostKey: ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"],
  cipher: ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"],
  hmac: ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"],
};

/**
 * `legacyAlgorithms: true` adds these after the modern ones, so a host that has anything better
 * still gets it and only an old host (OpenSSH before 7.2, old network gear) falls back.
 */
export const legacyOnlyAlgorithms: OfferedAlgorithms = {
  kex: ["diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1"],
  serverHostKey: ["ssh-rsa"],
  cipher: ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
  hmac: ["hmac-sha1-etm@openssh.com", "hmac-sha1"],
};

/** The algorithm lists a connection offers. */
export function algorithmsFor(c: Pick<Connection, "legacyAlgorithms">): OfferedAlgorithms {
  if (!c.legacyAlgorithms) return modernAlgorithms;
  return {
    kex: [...modernAlgorithms.kex, ...legacyOnlyAlgorithms.kex],
    serverHostKey: [...modernAlgorithms.serverHostKey, ...legacyOnlyAlgorithms.serverHostKey],
    cipher: [...modernAlgorithms.cipher, ...legacyOnlyAlgorithms.cipher],
    hmac: [...modernAlgorithms.hmac, ...legacyOnlyAlgorithms.hmac],
  };
}

/** ssh2's words for a failed negotiation, its debug label for what the host offered, and ours. */
const negotiated: Record<string, { offered: string; what: string; list: keyof OfferedAlgorithms }> = {
  "key exchange algorithm": { offered: "KEX method", what: "key exchange", list: "kex" },
  "host key format": { offered: "Host key format", what: "host key algorithm", list: "serverHostKey" },
  "C->S cipher": { offered: "C->S cipher", what: "cipher", list: "cipher" },
  "S->C cipher": { offered: "S->C cipher", what: "cipher", list: "cipher" },
  "C->S MAC": { offered: "C->S MAC", what: "MAC", list: "hmac" },
  "S->C MAC": { offered: "S->C MAC", what: "MAC", list: "hmac" },
};

/** Why the handshake found nothing in common, with what the host offered, or undefined if that is not the failure. */
function negotiationFailure(message: string, c: Connection, offered: Map<string, string>): string | undefined {
  const match = /no matching (key exchange algorithm|host key format|[CS]->[CS] cipher|[CS]->[CS] MAC)/.exec(message);
  const kind = match ? negotiated[match[1]!] : undefined;
  if (!kind) return undefined;
  // kex-strict-* and ext-info-* ride in the key exchange list but are protocol flags, not algorithms.
  const theirs = (offered.get(kind.offered) ?? "(not seen)")
    .split(",")
    .filter((a) => !/^(?:kex-strict-|ext-info-)/.test(a))
    .join(",");
  const ours = algorithmsFor(c)[kind.list].join(",");
  const head = `${c.host}:${c.port} offers no ${kind.what} this tool accepts${c.legacyAlgorithms ? ", even with legacyAlgorithms" : ""}: the host offers ${theirs}; we offer ${ours}`;
  return c.legacyAlgorithms
    ? head
    : `${head}. SHA-1 (ssh-rsa signatures, hmac-sha1, SHA-1 key exchange) and CBC ciphers are refused by default: update the host's sshd, or for an old host set connection.legacyAlgorithms: true`;
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

/** A key file's bytes and the mode of the file read, not of whatever the path names a moment later. */
function readKeyFile(path: string): { key: Buffer; mode: number } {
  const fd = openSync(path, "r");
  try {
    return { key: readFileSync(fd), mode: fstatSync(fd).mode };
  } finally {
    closeSync(fd);
  }
}

/** Reported once per key file: its path, and why it is a risk. */
type KeyFileWarning = (path: string, message: string) => void;

function resolveCredentials(host: string, c: Connection, baseDir: string | undefined, env: NodeJS.ProcessEnv, warn: KeyFileWarning): Credentials {
  const creds: Credentials = {};
  const password = secret(host, "password", c.password);
  const passphrase = secret(host, "privateKeyPassword", c.privateKeyPassword);
  let key: Buffer | undefined;
  const inline = secret(host, "privateKey", c.privateKey);
  if (inline !== undefined) key = Buffer.from(inline);
  else if (c.privateKeyPath !== undefined) {
    const path = isAbsolute(c.privateKeyPath) ? c.privateKeyPath : resolve(baseDir ?? process.cwd(), c.privateKeyPath);
    let mode: number;
    try {
      ({ key, mode } = readKeyFile(path));
    } catch (err) {
      throw new TransportError(
        host,
        "resolve-credentials",
        `cannot read privateKeyPath ${asWrittenAndResolved(c.privateKeyPath, path)}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
        err,
      );
    }
    // As ssh does: a key that others on this machine can read may already be a copy elsewhere.
    if ((mode & 0o077) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, "0");
      warn(
        path,
        `privateKeyPath ${asWrittenAndResolved(c.privateKeyPath, path)} is accessible by group or others (mode ${octal}): anyone who can read it can log in wherever it is authorized; chmod 600 it (ssh itself refuses such a key)`,
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
  /** The known_hosts file trust on first use just recorded the host's key in, if it did. */
  recordedIn?: string;
}

/** A prompt that asks for the password: it says so, and does not echo what is typed. */
function isPasswordPrompt(prompt: string, echo: boolean | undefined): boolean {
  // "New password:" / "Retype new password:" (an expired password being changed) ask for another.
  return echo !== true && /password/i.test(prompt) && !/\b(?:new|retype|re-enter|again|confirm)\b/i.test(prompt);
}

/**
 * keyboard-interactive answers: the password only to a password prompt. Any other prompt (a
 * one-time code, an echoed question) gets an empty answer: the password typed there would go
 * wherever that prompt sends it. What was left unanswered is noted in `unanswered`.
 */
export function answerPrompts(prompts: readonly { prompt: string; echo?: boolean }[], password: string, unanswered: string[]): string[] {
  return prompts.map(({ prompt, echo }) => {
    if (isPasswordPrompt(prompt, echo)) return password;
    unanswered.push(prompt);
    return "";
  });
}

// C0 and C1 control characters: a host's prompt text is shown without them.
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/g;

/** What the host asked that was not answered, for the authentication error; host text, so quoted, cut short and without control characters. */
function unansweredPrompts(prompts: readonly string[]): string {
  if (prompts.length === 0) return "";
  const shown = [...new Set(prompts)].slice(0, 3).map((p) => JSON.stringify(p.replace(controlCharacters, " ").trim().slice(0, 80)));
  return `; keyboard-interactive asked ${shown.join(", ")}, not a password prompt, and was answered with nothing (only a prompt asking for the password, unechoed, gets it)`;
}

/** A failure worth another attempt (network, handshake timeout), as opposed to a refusal. */
class RetryableDialError extends Error {}

export class SshTransport implements Transport {
  private readonly opts: Required<Omit<SshTransportOptions, "env">> & { env: NodeJS.ProcessEnv };
  /** Key files already warned about, so a run over many hosts says it once. */
  private readonly keyFilesWarned = new Set<string>();

  constructor(options: SshTransportOptions = {}) {
    this.opts = {
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      initialBackoffMs: options.initialBackoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 5_000,
      unlimitedDialCap: options.unlimitedDialCap ?? 100,
      outputLimitBytes: options.outputLimitBytes ?? defaultOutputLimitBytes,
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
      if (bastion.recordedIn !== undefined) options.onTrust?.(`bastion ${p.host}`, bastion.fingerprint, bastion.recordedIn);
    }
    let target: Dialed;
    try {
      target = await this.dialWithRetry(host, connection, options, bastion?.client);
    } catch (err) {
      bastion?.client.end();
      throw err;
    }
    if (target.recordedIn !== undefined) options.onTrust?.(host, target.fingerprint, target.recordedIn);
    return new SshSession(host, connection, target.client, target.fingerprint, bastion?.client, this.opts.outputLimitBytes);
  }

  private async dialWithRetry(label: string, c: Connection, options: ConnectOptions, via?: Client): Promise<Dialed> {
    const creds = resolveCredentials(label, c, options.baseDir, this.opts.env, (path, message) => {
      if (this.keyFilesWarned.has(path)) return;
      this.keyFilesWarned.add(path);
      options.onWarning?.(label, message);
    });
    const trustStore = defaultTrustStore(this.opts.env);
    // Read known_hosts (or the trust store) once per connect, and fail before dialing if it is unreadable.
    let knownHostsText: string | undefined;
    const tofu = c.trustOnFirstUse === true;
    if (c.hostKey === undefined && (c.knownHostsFile !== undefined || tofu)) {
      const resolved = c.knownHostsFile === undefined ? trustStore : isAbsolute(c.knownHostsFile) ? c.knownHostsFile : resolve(options.baseDir ?? process.cwd(), c.knownHostsFile);
      try {
        knownHostsText = readFileSync(resolved, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error";
        // Trust on first use starts the file when it first trusts a key.
        if (tofu && code === "ENOENT") knownHostsText = "";
        else {
          const what =
            c.knownHostsFile === undefined ? `the trust-on-first-use known_hosts file ${resolved}` : `knownHostsFile ${asWrittenAndResolved(c.knownHostsFile, resolved)}`;
          throw new TransportError(label, "host-key", `cannot read ${what}: ${code}`, err);
        }
      }
    }
    const verifyOptions = { ...(knownHostsText !== undefined ? { knownHostsText } : {}), ...(options.baseDir !== undefined ? { baseDir: options.baseDir } : {}), trustStore };
    const verify = (key: Buffer) => verifyHostKey(c.host, c.port, key, c, verifyOptions);
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
      // keyboard-interactive prompts not answered with the password: a refusal names them.
      const unanswered: string[] = [];
      let verdict: HostKeyVerdict | undefined;
      let presented: Buffer | undefined;
      let settled = false;
      // What the host offered, by ssh2's debug label, so a failed negotiation can say it.
      const offered = new Map<string, string>();
      let handshaking = true;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        sock?.destroy();
        reject(err);
      };
      client.on("error", (err: Error & { level?: string }) => {
        const negotiation = verdict ? undefined : negotiationFailure(err.message, c, offered);
        if (verdict && !verdict.ok) {
          fail(new TransportError(label, "host-key", verdict.message, err));
        } else if (negotiation !== undefined) {
          // Nothing in common: another attempt would offer and be offered the same lists.
          fail(new TransportError(label, "negotiate", negotiation, err));
        } else if (err.level === "client-authentication") {
          const tried = authMethods(creds).join(", ");
          fail(new TransportError(label, "authenticate", `${c.host}:${c.port} refused user ${c.user} (tried ${tried})${unansweredPrompts(unanswered)}`, err));
        } else {
          fail(new RetryableDialError(err.message));
        }
      });
      client.on("close", () => fail(new RetryableDialError("connection closed during the handshake")));
      // Every exchange is a few small packets waiting on each other: with Nagle's algorithm the
      // script's EOF waits for the delayed ACK of its data, 40 ms per round trip on Linux.
      client.on("connect", () => client.setNoDelay(true));
      client.on("handshake", () => {
        handshaking = false;
      });
      client.on("ready", () => {
        if (settled || !verdict?.ok) return;
        let trusted: HostKeyVerdict = verdict;
        // Recorded only once the host has proven it holds the key and let us in, so a failed
        // attempt leaves nothing behind.
        if (verdict.record && presented) {
          const { file } = verdict.record;
          try {
            trusted = recordTrustedKey(verdict.record, c.host, c.port, presented, c.knownHostsFile ?? file);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
            fail(
              new TransportError(
                label,
                "host-key",
                `cannot record the host key ${verdict.fingerprint} that trust on first use accepted in ${file}: ${code}; without the record a changed key could not be noticed next time (set knownHostsFile, or LVSDR_KNOWN_HOSTS, to a file you can write)`,
                err,
              ),
            );
            return;
          }
          if (!trusted.ok) {
            fail(new TransportError(label, "host-key", trusted.message));
            return;
          }
        }
        settled = true;
        resolvePromise({ client, fingerprint: trusted.fingerprint, ...(trusted.ok && trusted.record ? { recordedIn: trusted.record.file } : {}) });
      });
      if (creds.password !== undefined) {
        const password = creds.password;
        client.on("keyboard-interactive", (_name, _instructions, _lang, prompts, finish) => finish(answerPrompts(prompts, password, unanswered)));
      }
      const config: ConnectConfig = {
        host: c.host,
        port: c.port,
        username: c.user,
        // 0 means no limit in both pulumi-command and ssh2.
        readyTimeout: c.perDialTimeout * 1000,
        keepaliveInterval: this.opts.keepaliveIntervalMs,
        keepaliveCountMax: this.opts.keepaliveCountMax,
        algorithms: algorithmsFor(c),
        debug: (line: string) => {
          if (handshaking && line.startsWith("Handshake: (remote) ")) {
            const at = line.indexOf(": ", 20);
            if (at > 0) offered.set(line.slice(20, at), line.slice(at + 2));
          }
        },
        hostVerifier: (key: Buffer) => {
          presented = key;
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

/**
 * Output kept per command, stdout and stderr together, unless `outputLimitBytes` says otherwise.
 * Far above any real observation: the lab's are 2-8 KB, and a director of 10,000 services and
 * 50,000 destinations (the spec-size benchmark's) prints about 13 MiB, 23 MiB with keepalived's
 * HTTP checks in its configuration. A host that sends more is not believed, and not buffered.
 */
export const defaultOutputLimitBytes = 64 * 1024 * 1024;

/** `64 MiB`, or bytes when not a whole number of MiB. */
function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
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
    private readonly outputLimitBytes: number = defaultOutputLimitBytes,
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
    const { host, connection, outputLimitBytes } = this;
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
            // The command carries the script inline, up to 64 KiB of it: its start says which.
            const shown = command.length <= 100 ? command : `${command.slice(0, 60)}... (${Buffer.byteLength(command)} bytes)`;
            settle(() => reject(new TransportError(host, "run", `cannot start ${shown}: ${err.message}`, err)));
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
          let received = 0;
          /**
           * Counts what arrived, and past the limit stops reading: the channel is closed, what
           * came is dropped, and the command fails saying so (258 MiB sent once grew the tool by
           * 581 MiB, and ended as "connection lost"). True when the chunk is not kept.
           */
          const overLimit = (chunk: Buffer): boolean => {
            if (settled) return true;
            received += chunk.length;
            if (received <= outputLimitBytes) return false;
            settle(() => {
              sendKill(stream);
              stream.close();
              const what = options.what ? ` for ${options.what}` : "";
              reject(new TransportError(host, "run", `the host sent more than ${sizeText(outputLimitBytes)} of output${what}; stopped reading`));
            });
            return true;
          };
          const emitLines = (text: string, final: boolean) => {
            if (!options.onLine || settled) return;
            // A line arriving in many chunks is joined, and split once its end comes: splitting
            // all of it again at every chunk is quadratic in a long line's length.
            if (!final && !text.includes("\n")) {
              pending += text;
              return;
            }
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
            if (overLimit(chunk)) return;
            const text = out.write(chunk);
            stdout += text;
            emitLines(text, false);
          });
          stream.stderr.on("data", (chunk: Buffer) => {
            if (overLimit(chunk)) return;
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
