/**
 * SSH public keys as text: a public key line (`ssh-ed25519 AAAA... comment`) and a known_hosts
 * line (`[@marker] hosts ssh-ed25519 AAAA... comment`). Pure, and here in config so that
 * validation and the transport read a pinned `hostKey` with one parser: `validate` refuses
 * exactly the lines that `apply` would.
 */

/** Host key types the transport can be offered by a host and check: what a pinned `hostKey` may name. */
export const hostKeyTypes = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"] as const;

/**
 * Every type OpenSSH writes in known_hosts. Lines of the other types (DSA, security keys) still
 * parse, so a known_hosts file reads as ssh reads it, but no host can present such a key to us.
 */
export const knownKeyTypes: readonly string[] = [...hostKeyTypes, "ssh-dss", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"];

export interface PublicKey {
  keyType: string;
  /** The decoded key blob, as the host presents it in the handshake. */
  keyBlob: Buffer;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Length-prefixed fields of an SSH wire blob; undefined when the blob is cut short or has bytes left over. */
function wireFields(blob: Buffer): Buffer[] | undefined {
  const fields: Buffer[] = [];
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return undefined;
    const length = blob.readUInt32BE(at);
    if (at + 4 + length > blob.length) return undefined;
    fields.push(blob.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return fields;
}

/** ECDSA curve name and uncompressed point size, per key type. */
const ecdsaCurves: Record<string, [string, number]> = {
  "ecdsa-sha2-nistp256": ["nistp256", 65],
  "ecdsa-sha2-nistp384": ["nistp384", 97],
  "ecdsa-sha2-nistp521": ["nistp521", 133],
  "sk-ecdsa-sha2-nistp256@openssh.com": ["nistp256", 65],
};

/** Whether the fields after the type name have the shape RFC 4253/5656/8709 (and OpenSSH's sk keys) give that type. */
function wellFormed(keyType: string, fields: Buffer[]): boolean {
  const [, ...rest] = fields;
  switch (keyType) {
    case "ssh-ed25519":
      return rest.length === 1 && rest[0]!.length === 32;
    case "sk-ssh-ed25519@openssh.com":
      return rest.length === 2 && rest[0]!.length === 32;
    case "ssh-rsa":
      return rest.length === 2 && rest[1]!.length > 0;
    case "ssh-dss":
      return rest.length === 4;
    default: {
      const curve = ecdsaCurves[keyType];
      if (!curve) return false;
      const expected = keyType.startsWith("sk-") ? 3 : 2;
      return rest.length === expected && rest[0]!.toString("latin1") === curve[0] && rest[1]!.length === curve[1];
    }
  }
}

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/;

/**
 * Decodes the `<type> <base64>` pair of a key line: the type one of `types`, the base64 strict,
 * and the blob a whole key of that type (its own type name first, then its fields, nothing cut
 * short), so a truncated or mispasted key is caught here and not as a mismatch at the host.
 */
export function decodePublicKey(keyType: string, data: string, types: readonly string[] = knownKeyTypes): Parsed<PublicKey> {
  if (!types.includes(keyType)) return { ok: false, reason: `key type "${keyType}" is not one of ${types.join(", ")}` };
  // Unpadded base64 is what some tools print; pad it so the strict check applies to the rest.
  const padded = data.length % 4 === 0 ? data : data + "=".repeat(4 - (data.length % 4));
  if (!base64.test(padded)) return { ok: false, reason: `the ${keyType} key is not valid base64` };
  const keyBlob = Buffer.from(padded, "base64");
  const fields = wireFields(keyBlob);
  const named = fields?.[0]?.toString("latin1");
  if (named === undefined) return { ok: false, reason: `the ${keyType} key is cut short or corrupt (its fields do not add up)` };
  if (named !== keyType) return { ok: false, reason: `the key says it is "${named.slice(0, 40)}" but the line names ${keyType}: a corrupt or mispasted line` };
  if (!wellFormed(keyType, fields!)) return { ok: false, reason: `the ${keyType} key is cut short or corrupt (not the fields a ${keyType} key has)` };
  return { ok: true, value: { keyType, keyBlob } };
}

export interface KnownHostsLine extends PublicKey {
  marker?: "revoked" | "cert-authority";
  /** The host field as written: comma-separated patterns, or one `|1|salt|hash` hashed name. */
  hosts: string;
}

/**
 * One known_hosts line as ssh reads it: an optional `@revoked`/`@cert-authority` marker, the
 * host field, the key type, the key, an optional comment. Comments and blank lines are the
 * caller's to skip.
 */
export function parseKnownHostsLine(line: string): Parsed<KnownHostsLine> {
  const tokens = line.trim().split(/\s+/);
  let marker: KnownHostsLine["marker"];
  if (tokens[0]?.startsWith("@")) {
    const name = tokens.shift()!.slice(1);
    if (name !== "revoked" && name !== "cert-authority") return { ok: false, reason: `unknown marker @${name} (known: @revoked, @cert-authority)` };
    marker = name;
  }
  const [hosts, keyType, data] = tokens;
  if (hosts === undefined || keyType === undefined || data === undefined) return { ok: false, reason: "a known_hosts line is `hosts key-type base64-key [comment]`" };
  const key = decodePublicKey(keyType, data);
  if (!key.ok) return key;
  return { ok: true, value: { ...(marker ? { marker } : {}), hosts, ...key.value } };
}

/**
 * A pinned `hostKey` that is not a fingerprint: one public key line (`ssh-ed25519 AAAA...`, as
 * in `/etc/ssh/ssh_host_ed25519_key.pub`) or one known_hosts line (`host ssh-ed25519 AAAA...`,
 * as `ssh-keyscan` prints it). The host field, if any, is not checked against the host: the pin
 * belongs to the connection it is written in.
 */
export function parseHostKeyLine(text: string): Parsed<PublicKey> {
  const line = text.trim();
  if (/[\r\n]/.test(line)) return { ok: false, reason: "must be one line: one host key, not several" };
  if (line.startsWith("@")) return { ok: false, reason: "a @revoked or @cert-authority line cannot pin a host key: give the host's own key line" };
  const tokens = line.split(/\s+/);
  // The key type comes first in a public key line and second in a known_hosts line; every key
  // blob starts "AAAA" (its type name's length), which places an unknown type too.
  const typeAt = knownKeyTypes.includes(tokens[0]!) ? 0 : knownKeyTypes.includes(tokens[1] ?? "") ? 1 : tokens[1]?.startsWith("AAAA") ? 0 : tokens[2]?.startsWith("AAAA") ? 1 : -1;
  if (typeAt < 0)
    return { ok: false, reason: "must be a SHA256 fingerprint (SHA256:...), a public key line (ssh-ed25519 AAAA...) or a known_hosts line (host ssh-ed25519 AAAA...)" };
  const keyType = tokens[typeAt]!;
  const data = tokens[typeAt + 1];
  if (data === undefined) return { ok: false, reason: `names the key type ${keyType} but no key follows it` };
  if (!(hostKeyTypes as readonly string[]).includes(keyType)) {
    return { ok: false, reason: `key type "${keyType}" cannot be a host key here: use one of ${hostKeyTypes.join(", ")}` };
  }
  const key = decodePublicKey(keyType, data, hostKeyTypes);
  return key.ok ? key : { ok: false, reason: key.reason };
}

/** `SHA256:<base64>` as `ssh-keygen -l` prints it (43 characters, the `=` padding optional). */
export const fingerprintPattern = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

/** Why a pinned `hostKey` value cannot be used, or undefined when it can. */
export function hostKeyProblem(value: string): string | undefined {
  const v = value.trim();
  if (v.startsWith("SHA256:")) {
    return fingerprintPattern.test(v) ? undefined : "a SHA256 fingerprint is SHA256: and 43 base64 characters, as `ssh-keygen -lf` prints it";
  }
  const line = parseHostKeyLine(v);
  return line.ok ? undefined : line.reason;
}
