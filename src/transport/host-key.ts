/**
 * Host key checks, as OpenSSH does them: a pinned SHA256 fingerprint or key line, or a
 * known_hosts file (plain, hashed, `[host]:port`, `@revoked`), or trust on first use, which
 * records the key it trusts in a known_hosts file and holds the host to it afterwards. Pure apart
 * from `loadKnownHosts` and `recordTrustedKey`, so every rule is unit-testable without a server.
 */
import { createHash, createHmac } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseHostKeyLine, parseKnownHostsLine } from "../config/host-key-line";
import type { Connection } from "../config/connection";

/** `SHA256:<base64, no padding>` of a raw public key blob, exactly as `ssh-keygen -lf` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/** A fingerprint in canonical form (users may paste it with the `=` padding). */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.trim().replace(/=+$/, "");
}

export interface KnownHostsEntry {
  marker?: "revoked" | "cert-authority";
  /** The host field as written: comma-separated patterns, or one `|1|salt|hash` hashed name. */
  hosts: string;
  keyType: string;
  keyBlob: Buffer;
  /** 1-based, for messages. */
  line: number;
}

/** Parses a known_hosts text; comments, blank and malformed lines are skipped, as ssh does. */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const parsed = parseKnownHostsLine(line);
    if (parsed.ok) entries.push({ ...parsed.value, line: i + 1 });
  });
  return entries;
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** A `|1|salt|hash` hashed host name, as `ssh-keygen -H` writes it (HMAC-SHA1 keyed by the salt). */
export function hashHostName(name: string, salt: Buffer): string {
  const hash = createHmac("sha1", salt).update(name).digest("base64");
  return `|1|${salt.toString("base64")}|${hash}`;
}

/**
 * Whether `name` matches a known_hosts pattern (`*` any run, `?` any one character, case
 * ignored). Greedy with one resume point instead of backtracking: a later `*` only ever moves
 * the match forward, so the work is at most pattern length x name length, and a host name is at
 * most 261 characters (`[253]:65535`). A regular expression took 26 s on 14 `*`s.
 */
export function wildcardMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  let pi = 0;
  let ni = 0;
  // The last `*` seen and the name position its run currently ends at.
  let star = -1;
  let starEnd = 0;
  while (ni < n.length) {
    if (pi < p.length && p[pi] === "*") {
      star = pi++;
      starEnd = ni;
    } else if (pi < p.length && (p[pi] === "?" || p[pi] === n[ni])) {
      pi++;
      ni++;
    } else if (star >= 0) {
      // Let the last `*` take one more character and match the rest of the pattern from there.
      pi = star + 1;
      ni = ++starEnd;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

/**
 * Whether a known_hosts host field names this host. Port 22 also matches `[host]:22`, which
 * some tools write. A matching negated pattern (`!name`) excludes the line, as in ssh.
 */
export function hostFieldMatches(hosts: string, host: string, port: number): boolean {
  const names = [knownHostsName(host, port)];
  if (port === 22) names.push(`[${host.toLowerCase()}]:22`);
  if (hosts.startsWith("|1|")) {
    const parts = hosts.split("|");
    const salt = parts[2];
    if (parts.length !== 4 || !salt) return false;
    const saltBytes = Buffer.from(salt, "base64");
    return names.some((n) => hashHostName(n, saltBytes) === hosts);
  }
  let matched = false;
  for (const pattern of hosts.split(",")) {
    const negated = pattern.startsWith("!");
    const glob = negated ? pattern.slice(1) : pattern;
    if (names.some((n) => wildcardMatches(glob, n))) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function resolvePath(path: string, baseDir: string | undefined): string {
  return isAbsolute(path) ? path : resolve(baseDir ?? process.cwd(), path);
}

/**
 * Where trust on first use records keys when the connection names no `knownHostsFile`:
 * `$LVSDR_KNOWN_HOSTS`, else `$XDG_CONFIG_HOME/lvs-dr/known_hosts`, else
 * `~/.config/lvs-dr/known_hosts`. Kept apart from `~/.ssh/known_hosts` so the tool never edits
 * the user's own ssh trust.
 */
export function defaultTrustStore(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.LVSDR_KNOWN_HOSTS;
  if (explicit) return resolve(explicit);
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and to be ignored.
  const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), ".config");
  return join(config, "lvs-dr", "known_hosts");
}

/** The key's own type name, from the start of its blob (`ssh-rsa` for RSA whatever signature it makes). */
function keyTypeOf(keyBlob: Buffer): string {
  return keyBlob.length >= 4 ? keyBlob.subarray(4, 4 + keyBlob.readUInt32BE(0)).toString("latin1") : "unknown";
}

/** The OpenSSH known_hosts line for a host's key: `host type base64`, `[host]:port` off port 22. */
export function knownHostsLineFor(host: string, port: number, keyBlob: Buffer): string {
  return `${knownHostsName(host, port)} ${keyTypeOf(keyBlob)} ${keyBlob.toString("base64")}`;
}

/** A key trust on first use accepted, to be written to `file` once the connection is up. */
export interface TrustRecord {
  /** Absolute path of the known_hosts file it goes to. */
  file: string;
  line: string;
}

export type HostKeyVerdict =
  | {
      ok: true;
      fingerprint: string;
      /** True only when the key was unknown and trust on first use accepted it now. */
      trustedOnFirstUse: boolean;
      /** What to record, when `trustedOnFirstUse`. */
      record?: TrustRecord;
    }
  | { ok: false; fingerprint: string; message: string };

export interface VerifyOptions {
  /** The known_hosts text (of `knownHostsFile`, or of the trust store), when the caller has already read it. */
  knownHostsText?: string;
  /** Where a relative `knownHostsFile` is resolved from. */
  baseDir?: string;
  /** Where trust on first use records keys when there is no `knownHostsFile`; default `defaultTrustStore()`. */
  trustStore?: string;
}

type HostKeySettings = Pick<Connection, "hostKey" | "knownHostsFile" | "trustOnFirstUse">;

type KnownHostsCheck = { kind: "known" } | { kind: "unknown" } | { kind: "refused"; message: string };

/**
 * The host's key against a known_hosts text. `file` names it in messages. A changed key names
 * every line recorded for the host and how to remove them once the new key is checked.
 */
function checkKnownHosts(text: string, file: string, host: string, port: number, keyBlob: Buffer): KnownHostsCheck {
  const seen = fingerprintOf(keyBlob);
  const where = knownHostsName(host, port);
  const entries = parseKnownHosts(text);
  // A revoked key is refused whatever host field its line has: revocation is about the key.
  const revoked = entries.find((e) => e.marker === "revoked" && e.keyBlob.equals(keyBlob));
  if (revoked) return { kind: "refused", message: `host key ${seen} presented by ${where} is marked @revoked in ${file} line ${revoked.line}` };
  // CA lines certify certificates, which we do not accept, so they never match a plain key.
  const forHost = entries.filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, host, port));
  if (forHost.some((e) => e.keyBlob.equals(keyBlob))) return { kind: "known" };
  if (forHost.length === 0) return { kind: "unknown" };
  const recorded = forHost.map((e) => `line ${e.line} has ${fingerprintOf(e.keyBlob)} (${e.keyType})`).join(", ");
  const lines = forHost.map((e) => e.line).join(", ");
  return {
    kind: "refused",
    message:
      `host key for ${where} has CHANGED: ${file} ${recorded}, but the host presented ${seen} (${keyTypeOf(keyBlob)}). ` +
      `Someone may be in the middle, or the host was reinstalled: check the key on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), ` +
      `then remove line ${lines} of ${file} (ssh-keygen -R '${where}' -f ${file}) and connect again`,
  };
}

/**
 * Checks the key a host presented against the connection's pin, its known_hosts file, or
 * trust-on-first-use. With none of these the key is refused: unlike pulumi-command we never
 * skip the check silently. Messages always show the fingerprint seen, so the user can compare
 * it with `ssh-keygen -lf` on the host. Trust on first use checks the file it records in like
 * any known_hosts file; only a host not in it is accepted, with a `record` to write.
 */
export function verifyHostKey(host: string, port: number, keyBlob: Buffer, connection: HostKeySettings, options: VerifyOptions = {}): HostKeyVerdict {
  const seen = fingerprintOf(keyBlob);
  const refuse = (message: string): HostKeyVerdict => ({ ok: false, fingerprint: seen, message });
  const accept = (): HostKeyVerdict => ({ ok: true, fingerprint: seen, trustedOnFirstUse: false });
  const where = knownHostsName(host, port);

  if (connection.hostKey !== undefined) {
    const pinned = connection.hostKey.trim();
    if (pinned.startsWith("SHA256:")) {
      const expected = normalizeFingerprint(pinned);
      return expected === seen ? accept() : refuse(`host key for ${where} does not match the pinned key: expected ${expected}, got ${seen}`);
    }
    const key = parseHostKeyLine(pinned);
    if (!key.ok) return refuse(`hostKey: ${key.reason} (the host presented ${seen})`);
    return key.value.keyBlob.equals(keyBlob)
      ? accept()
      : refuse(`host key for ${where} does not match the pinned key: expected ${fingerprintOf(key.value.keyBlob)} (${key.value.keyType}), got ${seen}`);
  }

  const tofu = connection.trustOnFirstUse === true;
  if (connection.knownHostsFile === undefined && !tofu) {
    return refuse(`no host key to check ${where} against (set hostKey, knownHostsFile or trustOnFirstUse); the host presented ${seen}`);
  }
  const file = connection.knownHostsFile !== undefined ? resolvePath(connection.knownHostsFile, options.baseDir) : (options.trustStore ?? defaultTrustStore());
  const label = connection.knownHostsFile ?? file;
  let text = options.knownHostsText;
  if (text === undefined) {
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      // Trust on first use starts the file; a named file that is missing is a mistake.
      if (tofu && (err as NodeJS.ErrnoException).code === "ENOENT") text = "";
      else return refuse(`cannot read knownHostsFile ${label}: ${(err as Error).message} (the host presented ${seen})`);
    }
  }
  const check = checkKnownHosts(text, label, host, port, keyBlob);
  if (check.kind === "known") return accept();
  if (check.kind === "refused") return refuse(check.message);
  if (tofu) return { ok: true, fingerprint: seen, trustedOnFirstUse: true, record: { file, line: knownHostsLineFor(host, port, keyBlob) } };
  return refuse(`${where} is not in ${label}; the host presented ${seen} (add it with ssh-keyscan after checking it, or pin hostKey)`);
}

/**
 * Appends a key trust on first use accepted to its known_hosts file: the directory made 0700
 * and the file 0600 if new, one `write` in append mode so concurrent runs never interleave
 * lines. The file is read again first: if another run recorded this host meanwhile, its key
 * decides (the same key is accepted, a different one refused), so two runs cannot trust two keys.
 * Returns the verdict that stands; throws on a file system error.
 */
export function recordTrustedKey(record: TrustRecord, host: string, port: number, keyBlob: Buffer, label: string = record.file): HostKeyVerdict {
  const seen = fingerprintOf(keyBlob);
  mkdirSync(dirname(record.file), { recursive: true, mode: 0o700 });
  const fd = openSync(record.file, "a+", 0o600);
  try {
    const text = readFileSync(fd, "utf8");
    const check = checkKnownHosts(text, label, host, port, keyBlob);
    if (check.kind === "known") return { ok: true, fingerprint: seen, trustedOnFirstUse: false };
    if (check.kind === "refused") return { ok: false, fingerprint: seen, message: check.message };
    // A hand-edited file may end without a newline; the record must start a line of its own.
    const separator = text === "" || text.endsWith("\n") ? "" : "\n";
    writeSync(fd, `${separator}${record.line}\n`);
    return { ok: true, fingerprint: seen, trustedOnFirstUse: true, record };
  } finally {
    closeSync(fd);
  }
}
