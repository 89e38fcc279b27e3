/**
 * Trust on first use, on real hosts: the first connection records each host's key, and a host
 * that later presents another key is refused with both fingerprints, while the others go on.
 * rs1's host key is really changed (its sshd re-reads it on SIGHUP) and put back after.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { labExecOk, labHost } from "../../lab";
import { readClusterValue } from "../../src/config/load";
import { lvsdrWithEnv, REPO } from "./helpers";
import { describeLab } from "./lab-suite";

/** `SHA256:...` of a public key line, as ssh-keygen prints it. */
function fingerprint(publicKeyLine: string, dir: string): string {
  const file = join(dir, "key.pub");
  writeFileSync(file, `${publicKeyLine}\n`);
  return execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", file], { encoding: "utf8" }).split(" ")[1]!;
}

describeLab("trust on first use (lab)", () => {
  let dir: string;
  let spec: string;
  let store: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "lvsdr-trust-"));
    store = join(dir, "known_hosts");
    const lab = readClusterValue({ stack: "lab", stacksDir: join(REPO, "stacks") }).value as Record<string, Record<string, unknown>>;
    const { knownHostsFile: _pinned, ...shared } = lab.connectionDefaults!;
    spec = join(dir, "cluster.yaml");
    writeFileSync(spec, stringify({ ...lab, connectionDefaults: { ...shared, trustOnFirstUse: true, dialErrorLimit: 2 } }));
  });
  // The tool's own store for this test, not the operator's ~/.config.
  const lvsdr = (...args: string[]) => lvsdrWithEnv({ LVSDR_KNOWN_HOSTS: store }, ...args);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("records every host's key on first contact and says so; the next run knows them and says nothing", () => {
    const first = lvsdr("drift", "--file", spec);
    // 0 or 2: whatever the suite before left applied; what matters here is who was trusted.
    expect([0, 2]).toContain(first.code);
    const rs1 = labHost("rs1");
    expect(first.stderr).toContain(`rs1: warning: trusted on first use: host key ${rs1.hostKeyFingerprint}, recorded in ${store}`);
    const recorded = readFileSync(store, "utf8").trim().split("\n");
    expect(recorded).toHaveLength(5);
    expect(recorded).toContain(`${rs1.address} ${rs1.hostKey}`);
    const again = lvsdr("drift", "--file", spec);
    expect(again.code).toBe(first.code);
    expect(again.stderr).not.toContain("trusted on first use");
  }, 180_000);

  it("a host whose key changed since is refused, both fingerprints shown; the others are reported as before", async () => {
    const rs1 = labHost("rs1");
    const keyDir = mkdtempSync(join(dir, "rs1-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", join(keyDir, "key")]);
    const newKey = readFileSync(join(keyDir, "key"), "utf8");
    const newPublic = readFileSync(join(keyDir, "key.pub"), "utf8").trim();
    const keyFile = "/run/lvslab/ssh_host_ed25519_key";
    // sshd re-executes itself on SIGHUP and reads its host key again.
    await labExecOk("rs1", `cp ${keyFile} ${keyFile}.orig && cat > ${keyFile} && kill -HUP "$(cat /run/sshd.pid)"`, { input: newKey });
    const newHosts = join(keyDir, "known_hosts");
    writeFileSync(newHosts, `${rs1.address} ${newPublic.split(" ").slice(0, 2).join(" ")}\n`);
    try {
      // Wait until rs1 presents the new key (sshd takes a moment to come back after SIGHUP).
      for (let i = 0; i < 50; i++) {
        try {
          await labExecOk("rs1", "true", { knownHostsPath: newHosts, timeoutMs: 5_000 });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const r = lvsdr("drift", "--file", spec);
      expect(r.code).toBe(1);
      const presented = fingerprint(newPublic, keyDir);
      expect(r.stderr + r.stdout).toContain(rs1.hostKeyFingerprint);
      expect(r.stderr + r.stdout).toContain(presented);
      expect(r.stderr + r.stdout).toMatch(/rs1: .*host key/);
      // The other four hosts were reached and reported.
      expect(r.stdout).toMatch(/(?:drift on \d of 4 hosts|no drift on 4 hosts)/);
      // Nothing was recorded over the first key.
      expect(readFileSync(store, "utf8")).not.toContain(newPublic.split(" ")[1]);
    } finally {
      await labExecOk("rs1", `cat ${keyFile}.orig > ${keyFile} && rm -f ${keyFile}.orig && kill -HUP "$(cat /run/sshd.pid)"`, { knownHostsPath: newHosts });
      for (let i = 0; i < 50; i++) {
        try {
          await labExecOk("rs1", "true", { timeoutMs: 5_000, user: "root" });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    // rs1 is as it was: the lab's own pinned key answers again.
    await labExecOk("rs1", "true", { user: "root" });
  }, 240_000);
});
