/**
 * The passphrase secrets provider against values the `pulumi` CLI itself wrote, taken from
 * Pulumi's Go tests (github.com/pulumi/pulumi), and round trips of our own.
 * PBKDF2 runs a million rounds per (passphrase, salt), so each new pair costs a fraction of a second.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  IncorrectPassphraseError,
  SECRET_SIG,
  SIG_KEY,
  decryptSecretValue,
  encryptSecretValue,
  isSecretValue,
  newEncryptionSalt,
  passphraseCrypter,
  passphraseFromEnv,
  passphraseSecretsProviders,
} from "./secrets";

jest.setTimeout(60_000);

/** [passphrase, encryptionsalt, where in pulumi/pulumi it comes from]. */
const pulumiSalts: Array<[string, string, string]> = [
  ["password", "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ==", "pkg/secrets/passphrase/manager_test.go"],
  ["abc123", "v1:4iF78gb0nF0=:v1:Co6IbTWYs/UdrjgY:FSrAWOFZnj9ealCUDdJL7LrUKXX9BA==", "pkg/backend/diy/backend_test.go"],
  ["123abc", "v1:C7H2a7/Ietk=:v1:yfAd1zOi6iY9DRIB:dumdsr+H89VpHIQWdB01XEFqYaYjAg==", "pkg/backend/diy/backend_test.go"],
  [
    "correct horse battery staple", // ptesting.Environment's default passphrase
    "v1:3ZcVRCMzEbk=:v1:A4wYnaSVLIkK0AhS:2SrOnSDh9wVGmoyZt97KYJN3WfDDHA==",
    "tests/smoke/smoke_test.go",
  ],
  ["TestConfigRoundtripComments", "v1:ThS5UPxP9qc=:v1:UZYAXF+ylaJ0rGhv:9OTvBnOEDFgxs7btjzSu+LZ470vLpg==", "tests/roundtrip/roundtrip_test.go"],
];

describe("Pulumi's own encryptionsalt values", () => {
  it.each(pulumiSalts)("passphrase %j opens %s", (passphrase, salt) => {
    expect(() => passphraseCrypter(passphrase, salt)).not.toThrow();
  });

  it("rejects the wrong passphrase, as manager_test.go does with password123", () => {
    expect(() => passphraseCrypter("password123", pulumiSalts[0]![1])).toThrow(IncorrectPassphraseError);
    expect(() => passphraseCrypter("password123", pulumiSalts[0]![1])).toThrow(/incorrect passphrase/);
  });

  it("decrypts a `secure:` config value the CLI wrote (tests/roundtrip/roundtrip_test.go, foo:d)", () => {
    const [passphrase, salt] = pulumiSalts[4]!;
    const crypter = passphraseCrypter(passphrase, salt);
    // Pulumi's test does not state the plaintext; GCM authenticates, so a successful decrypt
    // proves key derivation, nonce and layout all match, and the text is plainly the intended one.
    const plain = crypter.decrypt("v1:T1ftqhY0hqr+EJK6:+jvd5PMecFx80tcavzuZY4tLatgIfoe/xR72GA==");
    expect(plain).toBe("secret-value");
  });

  it("refuses a malformed encryptionsalt", () => {
    expect(() => passphraseCrypter("password", "fozI5u6B030=:v1:F+6ZduL:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ==")).toThrow(/version/);
    expect(() => passphraseCrypter("password", "v1:fozI5u6B030=")).toThrow(/malformed/);
  });
});

describe("our own values", () => {
  const passphrase = "test passphrase ✓";
  const salt = newEncryptionSalt(passphrase);

  it("writes an encryptionsalt of Pulumi's shape that opens with its passphrase only", () => {
    expect(salt).toMatch(/^v1:[A-Za-z0-9+/]{11}=:v1:[A-Za-z0-9+/]{16}:[A-Za-z0-9+/]{30}==$/);
    expect(() => passphraseCrypter(passphrase, salt)).not.toThrow();
    expect(() => passphraseCrypter("other", salt)).toThrow(IncorrectPassphraseError);
    expect(() => passphraseCrypter("", salt)).toThrow(IncorrectPassphraseError);
  });

  it("round-trips values, with a fresh nonce each time", () => {
    const crypter = passphraseCrypter(passphrase, salt);
    for (const plain of ["", "hunter2", "ünïcödé ✓ \n", "x".repeat(10_000)]) {
      expect(crypter.decrypt(crypter.encrypt(plain))).toBe(plain);
    }
    expect(crypter.encrypt("same")).not.toBe(crypter.encrypt("same"));
  });

  it("fails loudly on a tampered or foreign value", () => {
    const crypter = passphraseCrypter(passphrase, salt);
    const [v, nonce, body] = crypter.encrypt("secret").split(":") as [string, string, string];
    const flipped = (body[0] === "A" ? "B" : "A") + body.slice(1);
    expect(() => crypter.decrypt(`${v}:${nonce}:${flipped}`)).toThrow(/authentication failed/);
    expect(() => crypter.decrypt("v2:AAAA:AAAA")).toThrow(/unknown value version/);
    expect(() => crypter.decrypt("v1:AAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).toThrow(/nonce size/);
    expect(() => crypter.decrypt("not a value")).toThrow(/bad value/);
  });

  it("builds the state file's secrets provider and secret values", () => {
    expect(passphraseSecretsProviders(salt)).toEqual({ type: "passphrase", state: { salt } });
    const crypter = passphraseCrypter(passphrase, salt);
    const secret = encryptSecretValue(crypter, { user: "admin", port: 22 });
    expect(Object.keys(secret).sort()).toEqual([SIG_KEY, "ciphertext"]);
    expect(secret[SIG_KEY]).toBe(SECRET_SIG);
    expect(isSecretValue(JSON.parse(JSON.stringify(secret)))).toBe(true);
    expect(isSecretValue({ ciphertext: "v1:a:b" })).toBe(false);
    expect(decryptSecretValue(crypter, secret)).toEqual({ user: "admin", port: 22 });
    expect(decryptSecretValue(crypter, encryptSecretValue(crypter, "plain string"))).toBe("plain string");
  });
});

describe("passphraseFromEnv", () => {
  it("prefers PULUMI_CONFIG_PASSPHRASE, even when empty", () => {
    expect(passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE: "p", PULUMI_CONFIG_PASSPHRASE_FILE: "/nonexistent" })).toBe("p");
    expect(passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE: "" })).toBe("");
  });

  it("reads and trims PULUMI_CONFIG_PASSPHRASE_FILE", () => {
    const dir = mkdtempSync(join(tmpdir(), "pulumi-passphrase-"));
    try {
      const file = join(dir, "phrase");
      writeFileSync(file, "  from a file \n");
      expect(passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE_FILE: file })).toBe("from a file");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names both variables when neither is set", () => {
    expect(() => passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE_FILE: "" })).toThrow(/PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE/);
  });
});
