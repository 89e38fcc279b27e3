/**
 * Host key checks, as OpenSSH does them: a pinned SHA256 fingerprint or key line, or a
 * known_hosts file (plain, hashed, `[host]:port`, `@revoked`). Pure apart from
 * `loadKnownHosts`, so every rule is unit-testable without a server.
 */
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Connection } from "../config/connection";

/** `SHA256:<base64, no padding>` of a raw public key blob, exactly as `ssh-keygen -lf` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/** A fingerprint in canonical form (users may paste it with the `=` padding). */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.trim().replace(/=+$/, "");
}

const keyTypePattern = /^(?:ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

export interface KnownHostsEntry {
  marker?: "revoked" | "cert-authority";
  /** The host field as written: comma-separated patterns, or one `|1|salt|hash` hashed name. */
  hosts: string;
  keyType: string;
  keyBlob: Buffer;
  /** 1-based, for messages. */
  line: number;
}

/**
 * Finds `<type> <base64>` in whitespace-separated tokens; returns the index of the type token.
 * Used for both known_hosts lines and bare public key lines (`ssh-ed25519 AAAA... comment`).
 */
function findKey(tokens: string[]): { index: number; keyType: string; keyBlob: Buffer } | undefined {
  for (let i = 0; i + 1 < tokens.length; i++) {
    const type = tokens[i]!;
    const data = tokens[i + 1]!;
    if (!keyTypePattern.test(type) || !/^[A-Za-z0-9+/]+={0,3}$/.test(data)) continue;
    const blob = Buffer.from(data, "base64");
    // The blob starts with its own type name; a mismatch means a corrupt or pasted-wrong line.
    if (blob.length < 4) continue;
    const nameLength = blob.readUInt32BE(0);
    if (blob.subarray(4, 4 + nameLength).toString("latin1") !== type) continue;
    return { index: i, keyType: type, keyBlob: blob };
  }
  return undefined;
}

/** Parses a known_hosts text; comments, blank and malformed lines are skipped, as ssh does. */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const tokens = line.split(/\s+/);
    let marker: KnownHostsEntry["marker"];
    if (tokens[0]?.startsWith("@")) {
      const name = tokens.shift()!.slice(1);
      if (name !== "revoked" && name !== "cert-authority") return;
      marker = name;
    }
    // Host field, then the key; a key line with no host field is not a known_hosts entry.
    const key = findKey(tokens);
    if (!key || key.index !== 1) return;
    entries.push({ ...(marker ? { marker } : {}), hosts: tokens[0]!, keyType: key.keyType, keyBlob: key.keyBlob, line: i + 1 });
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

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "i");
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
    const re = globToRegExp(negated ? pattern.slice(1) : pattern);
    if (names.some((n) => re.test(n))) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Reads a known_hosts file; relative paths are from `baseDir` (default: the working directory). */
export function loadKnownHosts(path: string, baseDir?: string): string {
  return readFileSync(isAbsolute(path) ? path : resolve(baseDir ?? process.cwd(), path), "utf8");
}

export type HostKeyVerdict = { ok: true; fingerprint: string; trustedOnFirstUse: boolean } | { ok: false; fingerprint: string; message: string };

export interface VerifyOptions {
  /** The known_hosts text, when the caller has already read `connection.knownHostsFile`. */
  knownHostsText?: string;
  /** Where a relative `knownHostsFile` is resolved from. */
  baseDir?: string;
}

type HostKeySettings = Pick<Connection, "hostKey" | "knownHostsFile" | "trustOnFirstUse">;

/**
 * Checks the key a host presented against the connection's pin, its known_hosts file, or
 * trust-on-first-use. With none of these the key is refused: unlike pulumi-command we never
 * skip the check silently. Messages always show the fingerprint seen, so the user can compare
 * it with `ssh-keygen -lf` on the host.
 */
export function verifyHostKey(host: string, port: number, keyBlob: Buffer, connection: HostKeySettings, options: VerifyOptions = {}): HostKeyVerdict {
  const seen = fingerprintOf(keyBlob);
  const refuse = (message: string): HostKeyVerdict => ({ ok: false, fingerprint: seen, message });
  const where = knownHostsName(host, port);

  if (connection.hostKey !== undefined) {
    const pinned = connection.hostKey.trim();
    if (pinned.startsWith("SHA256:")) {
      const expected = normalizeFingerprint(pinned);
      return expected === seen
        ? { ok: true, fingerprint: seen, trustedOnFirstUse: false }
        : refuse(`host key for ${where} does not match the pinned key: expected ${expected}, got ${seen}`);
    }
    const key = findKey(pinned.split(/\s+/));
    if (!key) return refuse(`the pinned hostKey is not a fingerprint or a public key line (the host presented ${seen})`);
    return key.keyBlob.equals(keyBlob)
      ? { ok: true, fingerprint: seen, trustedOnFirstUse: false }
      : refuse(`host key for ${where} does not match the pinned key: expected ${fingerprintOf(key.keyBlob)} (${key.keyType}), got ${seen}`);
  }

  if (connection.knownHostsFile !== undefined) {
    let text = options.knownHostsText;
    if (text === undefined) {
      try {
        text = loadKnownHosts(connection.knownHostsFile, options.baseDir);
      } catch (err) {
        return refuse(`cannot read knownHostsFile ${connection.knownHostsFile}: ${(err as Error).message} (the host presented ${seen})`);
      }
    }
    const entries = parseKnownHosts(text);
    // A revoked key is refused whatever host field its line has: revocation is about the key.
    const revoked = entries.find((e) => e.marker === "revoked" && e.keyBlob.equals(keyBlob));
    if (revoked) return refuse(`host key ${seen} presented by ${where} is marked @revoked in ${connection.knownHostsFile} line ${revoked.line}`);
    // CA lines certify certificates, which we do not accept, so they never match a plain key.
    const forHost = entries.filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, host, port));
    if (forHost.some((e) => e.keyBlob.equals(keyBlob))) return { ok: true, fingerprint: seen, trustedOnFirstUse: false };
    if (forHost.length === 0) {
      return refuse(`${where} is not in ${connection.knownHostsFile}; the host presented ${seen} (add it with ssh-keyscan after checking it, or pin hostKey)`);
    }
    const expected = forHost.map((e) => `${fingerprintOf(e.keyBlob)} (${e.keyType}, line ${e.line})`).join(", ");
    return refuse(`host key for ${where} has CHANGED or differs from ${connection.knownHostsFile}: expected ${expected}, got ${seen}`);
  }

  if (connection.trustOnFirstUse === true) return { ok: true, fingerprint: seen, trustedOnFirstUse: true };

  return refuse(`no host key to check ${where} against (set hostKey, knownHostsFile or trustOnFirstUse); the host presented ${seen}`);
}
