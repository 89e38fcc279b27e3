/** Runs the peer playbook against the lab: inventory from the lab's hosts, keys pinned like ours. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export function ensureAnsible(): void {
  if (spawnSync("ansible-playbook", ["--version"]).status === 0) return;
  const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  const install = spawnSync("apt-get", ["install", "-y", "-qq", "ansible"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (update.status !== 0 || install.status !== 0) throw new Error("could not install Debian's ansible package");
}

export function runPlaybook(repo: string, hosts: { director: string; realServers: { name: string; rip: string }[] }, vip: string, forks: number, check = false): void {
  const dir = mkdtempSync(join(tmpdir(), "lvsdr-ansible-"));
  const inventory = [
    "[directors]",
    `director ansible_host=${hosts.director}`,
    "[real_servers]",
    ...hosts.realServers.map((r) => `${r.name} ansible_host=${r.rip} rip=${r.rip}`),
    "[all:vars]",
    "ansible_user=root",
    `ansible_ssh_private_key_file=${resolve(repo, ".lab/id_ed25519")}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${resolve(repo, ".lab/known_hosts")} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'`,
    "ansible_python_interpreter=/usr/bin/python3",
    `vip=${vip}`,
  ].join("\n");
  writeFileSync(join(dir, "inventory.ini"), inventory + "\n");
  const args = ["-i", join(dir, "inventory.ini"), "--forks", String(forks), ...(check ? ["--check", "--diff"] : []), resolve(repo, "bench/peers/playbook.yml")];
  const r = spawnSync("ansible-playbook", args, {
    encoding: "utf8",
    env: { ...process.env, ANSIBLE_HOST_KEY_CHECKING: "True", ANSIBLE_NOCOLOR: "1", ANSIBLE_RETRY_FILES_ENABLED: "0" },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`ansible-playbook exited ${r.status}:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
}
