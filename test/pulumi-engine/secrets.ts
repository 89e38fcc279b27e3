/**
 * Pulumi's "passphrase" secrets provider, for the test-only Pulumi engine stand-in.
 *
 * It reads and writes the same strings the `pulumi` CLI does, following Pulumi's Go sources
 * (github.com/pulumi/pulumi):
 *   - sdk/go/common/resource/config/crypt.go — the symmetric crypter: AES-256-GCM, a random 12-byte
 *     nonce, no additional data, the 16-byte tag appended to the ciphertext; a value is
 *     `v1:<base64 nonce>:<base64 ciphertext+tag>`. The key is PBKDF2-HMAC-SHA256(passphrase, salt,
 *     1,000,000 iterations, 32 bytes).
 *   - pkg/secrets/passphrase/manager.go — the stack file's `encryptionsalt` is
 *     `v1:<base64 8-byte salt>:<the word "pulumi" encrypted with the derived key>`; a passphrase is
 *     right when that check value decrypts to "pulumi". The state file records the same string as
 *     `secrets_providers: {type: "passphrase", state: {salt: <encryptionsalt>}}`. The passphrase
 *     comes from PULUMI_CONFIG_PASSPHRASE (set, even if empty) or else the file named by
 *     PULUMI_CONFIG_PASSPHRASE_FILE (non-empty), whitespace-trimmed.
 *   - pkg/resource/stack/deployment.go, sdk/go/common/apitype/core.go, sdk/go/common/resource/sig —
 *     a secret in a deployment (v3) is
 *     `{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:..."}`,
 *     where the ciphertext encrypts the JSON text of the (already serialized) value.
 *
 * Differences from Pulumi: none in the formats. The JSON inside a secret is written by
 * JSON.stringify, so it can differ byte-wise from Go's json.Marshal (which escapes <, > and & and
 * sorts map keys); Pulumi parses either. Pulumi's "locked" manager (wrong passphrase, secrets left
 * untouched) and interactive prompting are not implemented: a wrong passphrase throws at once.
 */
import { createCipheriv, createDecipheriv, pbkdf2Sync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

export const PBKDF2_ITERATIONS = 1_000_000;
export const KEY_BYTES = 32; // AES-256
export const SALT_BYTES = 8;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** The plaintext whose encryption, in `encryptionsalt`, proves a passphrase right. */
export const CHECK_PLAINTEXT = "pulumi";
/** The signature key and the secret signature of a deployment's secret values (sdk/go/common/resource/sig). */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Crypter {
  /** `plain` → `v1:<nonce>:<ciphertext>`, with a fresh random nonce each call. */
  encrypt(plain: string): string;
  /** The inverse of `encrypt`; throws if the value is malformed or was encrypted with another key. */
  decrypt(cipher: string): string;
}

/** A deployment's `secrets_providers` for this provider. */
export interface PassphraseSecretsProviders {
  type: "passphrase";
  state: { salt: string };
}

/** A deployment's encrypted secret value. */
export interface SecretValue {
  [SIG_KEY]: typeof SECRET_SIG;
  ciphertext: string;
}

export class IncorrectPassphraseError extends Error {
  constructor() {
    super(
      'incorrect passphrase: the stack\'s encryptionsalt check value does not decrypt to "pulumi" ' +
        "with this passphrase (set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE to the right one)",
    );
    this.name = "IncorrectPassphraseError";
  }
}

/** PBKDF2 with a million rounds takes a noticeable fraction of a second; Pulumi caches too. */
const keyCache = new Map<string, Buffer>();

function deriveKey(passphrase: string, salt: Buffer): Buffer {
  const cacheKey = `${salt.toString("base64")}\0${passphrase}`;
  let key = keyCache.get(cacheKey);
  if (!key) {
    key = pbkdf2Sync(Buffer.from(passphrase, "utf8"), salt, PBKDF2_ITERATIONS, KEY_BYTES, "sha256");
    keyCache.set(cacheKey, key);
  }
  return key;
}

/** The symmetric crypter of crypt.go, over a raw 32-byte key. */
export function symmetricCrypter(key: Buffer): Crypter {
  if (key.length !== KEY_BYTES) throw new Error(`AES-256-GCM needs a ${KEY_BYTES} byte key`);
  return {
    encrypt(plain: string): string {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      const sealed = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
      return `v1:${nonce.toString("base64")}:${sealed.toString("base64")}`;
    },
    decrypt(value: string): string {
      const parts = value.split(":");
      if (parts.length !== 3) throw new Error("bad value: expected v1:<nonce>:<ciphertext>");
      const [version, nonceB64, sealedB64] = parts as [string, string, string];
      if (version !== "v1") throw new Error(`unknown value version ${JSON.stringify(version)}`);
      const nonce = Buffer.from(nonceB64, "base64");
      const sealed = Buffer.from(sealedB64, "base64");
      if (nonce.length !== NONCE_BYTES) throw new Error("bad value: nonce size is incorrect");
      if (sealed.length < TAG_BYTES) throw new Error("bad value: ciphertext shorter than the GCM tag");
      const decipher = createDecipheriv("aes-256-gcm", key, nonce);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      try {
        const body = sealed.subarray(0, sealed.length - TAG_BYTES);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
      } catch {
        throw new Error("cannot decrypt value: message authentication failed (wrong key or corrupt value)");
      }
    },
  };
}

/** A fresh `encryptionsalt` value for a stack file (and for the state file's secrets provider state). */
export function newEncryptionSalt(passphrase: string): string {
  const salt = randomBytes(SALT_BYTES);
  const check = symmetricCrypter(deriveKey(passphrase, salt)).encrypt(CHECK_PLAINTEXT);
  return `v1:${salt.toString("base64")}:${check}`;
}

/**
 * The crypter for a stack whose `encryptionsalt` is `encryptionSalt`. Throws
 * IncorrectPassphraseError if the salt's check value does not decrypt to "pulumi" with `passphrase`.
 */
export function passphraseCrypter(passphrase: string, encryptionSalt: string): Crypter {
  // manager.go: SplitN(state, ":", 3) → "v1", base64 salt, and the check value (itself "v1:…:…").
  const first = encryptionSalt.indexOf(":");
  const second = first < 0 ? -1 : encryptionSalt.indexOf(":", first + 1);
  if (second < 0) throw new Error("malformed encryptionsalt: expected v1:<salt>:<check value>");
  if (encryptionSalt.slice(0, first) !== "v1") throw new Error("unknown encryptionsalt version");
  const salt = Buffer.from(encryptionSalt.slice(first + 1, second), "base64");
  const crypter = symmetricCrypter(deriveKey(passphrase, salt));
  let check: string;
  try {
    check = crypter.decrypt(encryptionSalt.slice(second + 1));
  } catch {
    throw new IncorrectPassphraseError();
  }
  if (check !== CHECK_PLAINTEXT) throw new IncorrectPassphraseError();
  return crypter;
}

/** The deployment's `secrets_providers` entry for a stack with this `encryptionsalt`. */
export function passphraseSecretsProviders(encryptionSalt: string): PassphraseSecretsProviders {
  return { type: "passphrase", state: { salt: encryptionSalt } };
}

/** A secret for a deployment's inputs/outputs; `value` is the already serialized (plain JSON) property value. */
export function encryptSecretValue(crypter: Crypter, value: unknown): SecretValue {
  return { [SIG_KEY]: SECRET_SIG, ciphertext: crypter.encrypt(JSON.stringify(value)) };
}

/** True for a deployment value of the `{sig: secret, ciphertext}` shape. */
export function isSecretValue(value: unknown): value is SecretValue {
  return (
    typeof value === "object" && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG && typeof (value as Record<string, unknown>).ciphertext === "string"
  );
}

/** The serialized property value inside a deployment secret. */
export function decryptSecretValue(crypter: Crypter, secret: SecretValue): unknown {
  return JSON.parse(crypter.decrypt(secret.ciphertext));
}

/**
 * The passphrase as the `pulumi` CLI finds it without prompting: PULUMI_CONFIG_PASSPHRASE if set
 * (an empty passphrase is valid), else the trimmed contents of PULUMI_CONFIG_PASSPHRASE_FILE.
 */
export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const phrase = env.PULUMI_CONFIG_PASSPHRASE;
  if (phrase !== undefined) return phrase;
  const file = env.PULUMI_CONFIG_PASSPHRASE_FILE;
  if (file) return readFileSync(resolve(file), "utf8").trim();
  throw new Error("passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables");
}
