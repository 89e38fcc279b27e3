/**
 * The lab suite: real hosts (a qemu director with IPVS, namespace hosts with real sshd).
 * Needs root: `sudo npm run test:lab`. Under CI=true it never skips: a missing capability fails.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LAB_ADDRESSES, LabHosts, labDown, labExec, labExecOk, labHost, labLeftovers, labRecordedPids, labStatus, labUp, pidAlive } from "../../lab";
import { hostPaths } from "../../src/model/paths";
import { describeLab } from "./lab-suite";

const VIP = LAB_ADDRESSES.vip;
const RS = ["rs1", "rs2", "rs3"];
const DR_SYSCTLS = [
  "net.ipv4.conf.all.arp_ignore",
  "net.ipv4.conf.all.arp_announce",
  "net.ipv4.conf.lo.arp_ignore",
  "net.ipv4.conf.lo.arp_announce",
  "net.ipv4.conf.eth0.arp_ignore",
  "net.ipv4.conf.eth0.arp_announce",
];

describeLab("lab (real hosts)", (lab) => {
  let hosts: LabHosts;

  beforeAll(() => {
    hosts = lab.hosts;
  });

  test("lab:up is idempotent: a second up keeps the same hosts and host keys", async () => {
    const again = await labUp({ realServers: 3 });
    expect(again.hosts.map((h) => [h.name, h.hostKeyFingerprint])).toEqual(hosts.hosts.map((h) => [h.name, h.hostKeyFingerprint]));
    expect((await labStatus()).state).toBe("up");
  }, 300_000);

  test("hosts.json describes the fixed topology", () => {
    const names = hosts.hosts.map((h) => h.name).sort();
    expect(names).toEqual(["client", "director", "router", "rs1", "rs2", "rs3", "rsb1", "rsvm1"]);
    expect(hosts.directors).toBe(1);
    expect(Object.keys(hosts.vms).sort()).toEqual(["director", "rsvm1"]);
    expect(labHost("rsvm1", hosts)).toMatchObject({ role: "real-server", address: LAB_ADDRESSES.rsvm1, gateway: "198.51.100.1", namespace: null });
    expect(hosts.vip).toBe("198.51.100.5");
    expect(labHost("director", hosts)).toMatchObject({ role: "director", address: "198.51.100.2", prefix: 24, gateway: "198.51.100.1", interface: "eth0" });
    expect(labHost("rs1", hosts)).toMatchObject({ role: "real-server", address: "198.51.100.10", gateway: "198.51.100.1" });
    expect(labHost("rs3", hosts).sudoUser).toMatchObject({ user: "lvsops", passwordless: true });
    expect(labHost("rsb1", hosts)).toMatchObject({ segment: "B", address: "203.0.113.10", gateway: "203.0.113.1" });
    expect(labHost("client", hosts).address).toBe("198.51.100.240");
    for (const h of hosts.hosts) {
      expect(h.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(h.knownHostsLine).toBe(`${h.address} ${h.hostKey}`);
      expect(fs.existsSync(h.privateKeyPath)).toBe(true);
    }
    // every host has its own host key
    expect(new Set(hosts.hosts.map((h) => h.hostKey)).size).toBe(hosts.hosts.length);
  });

  test("every host answers real SSH with its pinned host key and is who it says", async () => {
    for (const h of hosts.hosts) {
      const out = await labExecOk(h.name, "hostname");
      expect(out.trim()).toBe(h.name);
    }
  }, 120_000);

  test("a wrong pinned host key is refused", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lvslab-kh-"));
    try {
      for (const [target, impostor] of [
        ["director", "rs1"],
        ["rs2", "rs1"],
        ["rsb1", "client"],
      ] as const) {
        const t = labHost(target, hosts);
        const wrong = labHost(impostor, hosts);
        const kh = path.join(tmp, `${target}.known_hosts`);
        fs.writeFileSync(kh, `${t.address} ${wrong.hostKey}\n`);
        const r = await labExec(target, "echo should-not-run", { knownHostsPath: kh });
        expect(r.code).toBe(255);
        expect(r.stdout).not.toContain("should-not-run");
        expect(r.stderr).toMatch(/host key|HOST IDENTIFICATION HAS CHANGED|verification failed/i);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  test("the director loads ip_vs, runs ipvsadm and has the tools the project uses", async () => {
    const out = await labExecOk("director", "modprobe ip_vs && grep -c '^ip_vs ' /proc/modules && ipvsadm -Ln");
    expect(out).toMatch(/^1$/m);
    expect(out).toContain("IP Virtual Server version");
    const tools = ["sh", "bash", "ip", "ipvsadm", "ipvsadm-save", "flock", "sha256sum", "cat", "mkdir", "mv", "rm", "sleep", "awk", "sed", "grep", "sysctl", "modprobe", "date"];
    const paths = await labExecOk("director", tools.map((t) => `command -v ${t}`).join(" && "));
    expect(paths.trim().split("\n")).toHaveLength(tools.length);
    expect(await labExecOk("director", "printf '%s-%s' a b")).toBe("a-b");
    // the real iproute2 (JSON), not busybox's ip
    const addr = JSON.parse(await labExecOk("director", "ip -j addr show dev eth0")) as Array<{ address: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
    expect(addr[0]?.address).toBe(labHost("director", hosts).mac);
    expect(addr[0]?.addr_info).toEqual(expect.arrayContaining([expect.objectContaining({ local: "198.51.100.2", prefixlen: 24 })]));
  }, 60_000);

  test("the VMs are Debian 12 booted by systemd, with a real director's packages; keepalived installed, not enabled", async () => {
    for (const vm of ["director", "rsvm1"]) {
      const out = await labExecOk(
        vm,
        "cat /proc/1/comm; cut -d. -f1 /etc/debian_version; systemctl is-system-running --wait || true; systemctl is-enabled keepalived.service || true; readlink -f /bin/sh",
      );
      expect(out.trim().split("\n")).toEqual(["systemd", "12", "running", "disabled", "/usr/bin/dash"]);
      const packages = ["openssh-server", "iproute2", "ipvsadm", "keepalived", "kmod", "util-linux", "procps", "arping"];
      const installed = await labExecOk(vm, `dpkg-query -W -f='\${db:Status-Abbrev}\${Package}\\n' ${packages.join(" ")}`);
      expect(installed.trim().split("\n").sort()).toEqual(packages.map((p) => `ii ${p}`).sort());
    }
    // rsvm1 serves HTTP like the namespace real servers
    expect((await labExecOk("client", `curl -s -m 5 http://${LAB_ADDRESSES.rsvm1}/`)).trim()).toBe("rsvm1");
  }, 120_000);

  test("the machine gets a /32 route per lab host and nothing wider: its own traffic to these ranges is untouched", async () => {
    const routes = (await labLeftovers()).routes;
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) expect(r).toMatch(/^(198\.51\.100|203\.0\.113)\.\d+ (dev|via) /);
    const labAddresses = hosts.hosts.map((h) => h.address);
    expect(routes.map((r) => r.split(" ")[0]).sort()).toEqual([...labAddresses].sort());
    // an address in the same ranges that is not the lab's goes where it went before the lab
    const { execFileSync } = await import("node:child_process");
    for (const other of ["203.0.113.80", "198.51.100.77"]) {
      expect(execFileSync("ip", ["route", "get", other], { encoding: "utf8" })).not.toContain("lvslab0");
    }
  });

  test("two real servers have separate file systems for the tool's paths", async () => {
    const dirs = ["/etc/sysctl.d", "/etc/systemd/system", "/etc/lvs-dr", "/var/lib/lvs-dr", "/run/lvs-dr", "/run/lock"];
    const token = `lab-probe-${process.pid}-${Date.now()}`;
    const files = dirs.map((d) => `${d}/${token}`);
    try {
      await labExecOk("rs1", files.map((f) => `mkdir -p ${path.dirname(f)} && echo rs1 > ${f}`).join(" && "));
      expect((await labExecOk("rs1", `cat ${files.join(" ")}`)).trim().split("\n")).toEqual(dirs.map(() => "rs1"));
      const absent = files.map((f) => `test ! -e ${f}`).join(" && ");
      expect((await labExec("rs2", absent)).code).toBe(0);
      expect((await labExec("director", absent)).code).toBe(0);
      for (const f of files) expect(fs.existsSync(f)).toBe(false); // nor on the machine itself
      // The machine's /etc/sysctl.d is seeded into each host's private view. Beyond the seeds, only
      // the tool's own file may be there: a suite that ran before may have left the stack applied.
      const machine = fs.existsSync("/etc/sysctl.d") ? fs.readdirSync("/etc/sysctl.d").sort() : [];
      const rs2 = (await labExecOk("rs2", "ls -A /etc/sysctl.d")).trim().split("\n").filter(Boolean).sort();
      const notOurs = (f: string): boolean => f !== path.basename(hostPaths.sysctlConf);
      expect(rs2.filter(notOurs)).toEqual(machine.filter(notOurs));
    } finally {
      await labExec("rs1", `rm -f ${files.join(" ")}`);
    }
  }, 60_000);

  test("a host on segment B is not on-link from the director; segment A hosts are", async () => {
    const via = JSON.parse(await labExecOk("director", `ip -j route get ${LAB_ADDRESSES.rsb1}`)) as Array<{ gateway?: string; dev: string }>;
    expect(via[0]?.gateway).toBe(LAB_ADDRESSES.routerA);
    const onlink = JSON.parse(await labExecOk("director", `ip -j route get ${LAB_ADDRESSES.realServer(1)}`)) as Array<{ gateway?: string; dev: string }>;
    expect(onlink[0]?.gateway).toBeUndefined();
    expect(onlink[0]?.dev).toBe("eth0");
  }, 30_000);

  test("rs3 has a non-root user with passwordless sudo; other hosts do not", async () => {
    const sudo = labHost("rs3", hosts).sudoUser;
    expect(sudo).toBeDefined();
    const user = sudo?.user ?? "";
    expect((await labExecOk("rs3", "id -un", { user })).trim()).toBe(user);
    expect((await labExec("rs3", "sudo -n true", { user })).code).toBe(0);
    expect((await labExecOk("rs3", "sudo -n id -u", { user })).trim()).toBe("0");
    expect((await labExec("rs2", `getent passwd ${user}`)).code).not.toBe(0);
    expect((await labExec("rs2", "true", { user })).code).toBe(255);
  }, 30_000);

  test("self-proof: the lab carries LVS-DR (configured by hand over SSH)", async () => {
    const director = labHost("director", hosts);
    const rips = RS.map((n) => labHost(n, hosts).address);
    try {
      for (const rs of RS) {
        await labExecOk(rs, `sysctl -q -w ${DR_SYSCTLS.map((s) => `${s}=${s.endsWith("arp_ignore") ? 1 : 2}`).join(" ")} && ip addr replace ${VIP}/32 dev lo`);
      }
      await labExecOk(
        "director",
        [
          "modprobe ip_vs",
          "ipvsadm -C",
          `ip addr replace ${VIP}/32 dev eth0`,
          `ipvsadm -A -t ${VIP}:80 -s rr`,
          ...rips.map((r) => `ipvsadm -a -t ${VIP}:80 -r ${r}:80 -g -w 1`),
        ].join(" && "),
      );
      await labExecOk("client", `ip neigh flush to ${VIP} || true`);
      const answers: string[] = [];
      for (let i = 0; i < 9; i++) {
        answers.push((await labExecOk("client", `curl -s -m 5 http://${VIP}/`)).trim());
      }
      expect(new Set(answers)).toEqual(new Set(RS));

      const neigh = JSON.parse(await labExecOk("client", `ip -j neigh show to ${VIP}`)) as Array<{ dst: string; lladdr?: string }>;
      expect(neigh[0]?.lladdr).toBe(director.mac);

      // The kernel folds its per-CPU counters into these totals every two seconds.
      await new Promise((r) => setTimeout(r, 2500));
      const stats = await labExecOk("director", `ipvsadm -Ln --stats --exact -t ${VIP}:80`);
      const svc = stats.split("\n").find((l) => l.startsWith("TCP"));
      const cols = (svc ?? "").trim().split(/\s+/); // TCP VIP:80 Conns InPkts OutPkts InBytes OutBytes
      expect(cols[1]).toBe(`${VIP}:80`);
      // Not one per request: IPVS may reuse a connection entry when the client reuses a source port.
      expect(Number(cols[2])).toBeGreaterThan(0);
      expect(Number(cols[3])).toBeGreaterThan(0);
      expect(cols[4]).toBe("0"); // replies bypass the director: that is DR
    } finally {
      await labExec("director", `ipvsadm -C; ip addr del ${VIP}/32 dev eth0`);
      for (const rs of RS) {
        await labExec(rs, `ip addr del ${VIP}/32 dev lo; sysctl -q -w ${DR_SYSCTLS.map((s) => `${s}=0`).join(" ")}`);
      }
    }
    expect((await labExecOk("director", "ipvsadm-save -n")).trim()).toBe("");
    expect(await labExecOk("director", `ip -o addr show to ${VIP}`)).toBe("");
  }, 120_000);

  test("lab:down leaves no namespace, link, route, mount or process behind (runs last)", async () => {
    const pids = labRecordedPids();
    // qemu per VM (director, rsvm1) + one sshd per namespace host (router, rs1-3, rsb1, client) + one httpd per namespace real server
    expect(pids.size).toBe(2 + 6 + 4);
    for (const pid of pids.values()) expect(pidAlive(pid)).toBe(true);
    expect((await labLeftovers()).namespaces.length).toBeGreaterThan(0);

    await labDown();

    for (const [name, pid] of pids) {
      if (pidAlive(pid)) throw new Error(`${name} (pid ${pid}) still alive after lab:down`);
    }
    expect(await labLeftovers()).toEqual({ namespaces: [], links: [], mounts: [], routes: [] });
    expect((await labStatus()).state).toBe("down");
  }, 120_000);

  test("runs with its state in a directory only root may enter (a clone under /root or in mktemp -d), sudo user included", async () => {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), "lvslab-state-"));
    fs.chmodSync(state, 0o700);
    const saved = process.env.LAB_STATE;
    process.env.LAB_STATE = state;
    try {
      const up = await labUp({ realServers: 3 });
      expect(up.privateKeyPath.startsWith(state)).toBe(true);
      const sudo = labHost("rs3", up).sudoUser!;
      expect((await labExecOk("rs3", "id -un", { user: sudo.user })).trim()).toBe(sudo.user);
      expect((await labExecOk("rs3", "sudo -n id -u", { user: sudo.user })).trim()).toBe("0");
      for (const h of ["director", "rsvm1", "rs1", "client"]) expect((await labExecOk(h, "hostname")).trim()).toBe(h);
      // a namespace host's /tmp is its own, and the state directory under the machine's /tmp still serves it
      expect((await labExec("rs1", `test -e ${state}`)).code).not.toBe(0);
    } finally {
      await labDown();
      if (saved === undefined) delete process.env.LAB_STATE;
      else process.env.LAB_STATE = saved;
      fs.rmSync(state, { recursive: true, force: true });
    }
    expect(await labLeftovers()).toEqual({ namespaces: [], links: [], mounts: [], routes: [] });
  }, 300_000);
});
