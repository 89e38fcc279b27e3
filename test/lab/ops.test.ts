/**
 * Host operations on real hosts: apply, drift, drain, preflight and destroy against the lab
 * (a qemu director with IPVS, namespace real servers with real sshd and real ARP behaviour).
 */
import { resolve } from "node:path";
import { LAB_ADDRESSES, labExec, labExecOk, labHost, type LabHosts } from "../../lab";
import { ClusterAddresses } from "../../src/config/addresses";
import { loadCluster } from "../../src/config/load";
import type { Cluster, ClusterSpec } from "../../src/config/schema";
import { desiredClusterState } from "../../src/model/desired";
import { ApplyError, ClusterRun, PreflightError, type ProgressEvent } from "../../src/ops/engine";
import { probeArp } from "../../src/ops/observe";
import { SshTransport } from "../../src/transport/ssh";
import { arpRepliers } from "./helpers";
import { describeLab } from "./lab-suite";

const VIP = LAB_ADDRESSES.vip;
const REPO = resolve(__dirname, "../..");
const RS = ["rs1", "rs2", "rs3", "rsvm1"];

function labCluster(): Cluster {
  return loadCluster({ stack: "lab", stacksDir: resolve(REPO, "stacks") });
}

/** The spec alone, to change: the parsed addresses are rebuilt from it by `unchecked`. */
function specOf(cluster: Cluster): ClusterSpec {
  const { addresses: _parsed, ...spec } = cluster;
  return structuredClone(spec);
}

/**
 * A spec changed after validation, its addresses parsed again but its rules not checked: how a
 * test hands the engine what the static rules would refuse, to reach the live checks alone.
 */
function unchecked(spec: ClusterSpec): Cluster {
  return { ...spec, addresses: ClusterAddresses.of(spec) };
}

function withoutRs3(cluster: Cluster): Cluster {
  const spec = specOf(cluster);
  spec.virtualServices[0]!.realServers = spec.virtualServices[0]!.realServers.filter((d) => d.name !== "rs3");
  return unchecked(spec);
}

async function withRun<T>(cluster: Cluster, fn: (run: ClusterRun) => Promise<T>, events?: ProgressEvent[]): Promise<T> {
  const run = new ClusterRun(cluster, {
    transport: new SshTransport(),
    connectOptions: { baseDir: REPO },
    ...(events ? { onProgress: (e: ProgressEvent) => events.push(e) } : {}),
  });
  try {
    return await fn(run);
  } finally {
    await run.close();
  }
}

/** Everything the tool could touch on a host, read with the lab's own SSH, for before/after comparisons. */
async function snapshot(host: string): Promise<string> {
  const files =
    'for f in /etc/sysctl.d/90-lvs-dr.conf /etc/lvs-dr/ipvs.rules /etc/lvs-dr/restore.sh /etc/systemd/system/lvs-dr.service /etc/systemd/system/multi-user.target.wants/lvs-dr.service /var/lib/lvs-dr/ownership.json; do [ -e "$f" ] && echo "file $f"; done';
  const sysctls = 'for f in /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce; do echo "$f=$(cat $f)"; done';
  const addrs = "ip -o addr show | awk '{print $2, $3, $4}'";
  const ipvs = host === "director" ? "; ipvsadm -Sn 2>/dev/null | sort" : "";
  // The file loop ends on a missing file; `true` keeps the exit status about the command, not the last test.
  return labExecOk(host, `${addrs}; ${sysctls}; ${files}${ipvs}; true`);
}

async function snapshotAll(): Promise<Record<string, string>> {
  const names = ["director", ...RS];
  const shots = await Promise.all(names.map(snapshot));
  return Object.fromEntries(names.map((n, i) => [n, shots[i]!]));
}

/** n requests from the client to the VIP; each answer is the real server's name. */
async function requestVip(n: number): Promise<string[]> {
  const out = await labExecOk("client", `for i in $(seq ${n}); do curl -s -m 3 http://${VIP}/ || echo FAILED; done`);
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

describeLab("host operations on real hosts", (lab) => {
  let hosts: LabHosts;
  let pristine: Record<string, string>;

  beforeAll(async () => {
    hosts = lab.hosts;
    // Start from hosts the tool has never touched in this lab run.
    await withRun(labCluster(), (run) => run.apply({ destroy: true }));
    pristine = await snapshotAll();
  }, 180_000);

  it("refuses a wrong pinned host key and changes nothing", async () => {
    const cluster = labCluster();
    const wrong = "SHA256:" + "A".repeat(43);
    cluster.directors[0]!.connection = { hostKey: wrong };
    await expect(withRun(cluster, (run) => run.apply())).rejects.toThrow(
      new RegExp(`director.*host-key.*${labHost("director", hosts).hostKeyFingerprint.replace(/[+/]/g, "\\$&")}`, "s"),
    );
    expect(await snapshotAll()).toEqual(pristine);
  }, 120_000);

  it("refuses the whole cluster when a real server is not on the director's segment, before any host changes", async () => {
    const spec = specOf(labCluster());
    // A prefix this wrong is refused by the static rules now (wider than a segment can be): the
    // spec skips them here, so the live check, the one that looks at the hosts, is what refuses.
    spec.directors[0]!.dip = "198.51.100.2/3";
    spec.realServers.push({ name: "rsb1", rip: LAB_ADDRESSES.rsb1, interface: "eth0", gateway: "203.0.113.1" });
    spec.virtualServices[0]!.realServers.push({ name: "rsb1", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    const cluster = unchecked(spec);
    const error = await withRun(cluster, (run) => run.apply()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PreflightError);
    const problems = (error as PreflightError).problems;
    expect(problems).toContainEqual(
      expect.objectContaining({ host: "director", check: "same-broadcast-domain", message: expect.stringContaining("reached through gateway 198.51.100.1") }),
    );
    expect(await snapshotAll()).toEqual(pristine);
    expect(await labExecOk("rsb1", "ip -o addr show dev lo | awk '{print $4}'")).not.toContain(VIP);
  }, 120_000);

  it("when a real server's wave fails, the director's script, started early and waiting, changes nothing", async () => {
    // rs2's lock path is a directory: its script fails before its first step.
    await labExecOk("rs2", "rm -f /run/lvs-dr/lock && mkdir -p /run/lvs-dr/lock");
    const events: ProgressEvent[] = [];
    try {
      const error = await withRun(labCluster(), (run) => run.apply(), events).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as ApplyError).failures).toEqual([expect.objectContaining({ host: "rs2", wave: "prepare-real-servers" })]);
      expect(events.filter((e) => e.host === "director" && (e.kind === "step" || e.kind === "wave-done"))).toEqual([]);
      const now = await snapshotAll();
      expect(now.director).toEqual(pristine.director);
      expect(now.rs2).toEqual(pristine.rs2);
    } finally {
      await labExecOk("rs2", "rmdir /run/lvs-dr/lock");
    }
    // rs1 and rs3 were prepared; their ownership records let destroy put them back.
    await withRun(labCluster(), (run) => run.apply({ destroy: true }));
    expect(await snapshotAll()).toEqual(pristine);
  }, 120_000);

  it("probes ARP from the director: a real server answers, an empty address does not", async () => {
    const desired = desiredClusterState(labCluster());
    const director = desired.hosts.find((h) => h.role === "director")!;
    const target = desired.targets.find((t) => t.role === "director")!;
    const session = await new SshTransport().connect("director", target.connection, { baseDir: REPO });
    try {
      await labExec("director", "ip neigh flush dev eth0");
      expect(await probeArp(session, director, ["198.51.100.11", "198.51.100.99"])).toEqual({ "198.51.100.11": true, "198.51.100.99": false });
    } finally {
      await session.close();
    }
    // Before an apply: the director's observation lists its neighbour table, and the RIPs with no
    // resolved entry there (after the flush, all three) are probed in one more round trip. A drift
    // check sends nothing.
    await labExec("director", "ip neigh flush dev eth0");
    const { observed, problems } = await withRun(labCluster(), (run) => run.plan());
    expect(observed.get("director")!.arpReplies).toEqual({ "198.51.100.10": true, "198.51.100.11": true, "198.51.100.12": true, "198.51.100.230": true });
    expect(problems).toEqual([]);
    await labExec("director", "ip neigh flush dev eth0");
    await withRun(labCluster(), (run) => run.drift());
    expect(await labExecOk("director", "ip -4 neigh show dev eth0")).not.toMatch(/198\.51\.100\.1[0-2] /);
  }, 60_000);

  it("applies the cluster: requests reach every real server, ARP for the VIP is the director's, replies bypass it", async () => {
    const report = await withRun(labCluster(), (run) => run.apply());
    expect(report.plan.waves.map((w) => w.wave)).toEqual(["prepare-real-servers", "directors"]);

    const answers = await requestVip(9);
    expect(new Set(answers)).toEqual(new Set(RS));

    const directorMac = labHost("director", hosts).mac.toLowerCase();
    const neigh = JSON.parse(await labExecOk("client", `ip -j neigh show ${VIP}`)) as { lladdr?: string }[];
    expect(neigh[0]?.lladdr?.toLowerCase()).toBe(directorMac);

    const arping = await labExec("client", `arping -c 3 -w 5 -I eth0 ${VIP}`);
    const macs = arpRepliers(arping.stdout);
    expect(macs.length).toBeGreaterThan(0);
    expect(new Set(macs)).toEqual(new Set([directorMac]));

    // The kernel folds its per-CPU counters into these totals every two seconds.
    await new Promise((r) => setTimeout(r, 2500));
    const stats = await labExecOk("director", "ipvsadm -Ln --stats --exact");
    const service = stats.split("\n").find((l) => l.startsWith(`TCP  ${VIP}:80`));
    const [, , conns, inPkts, outPkts] = service!.trim().split(/\s+/).map(Number);
    // Not one per request: IPVS may reuse a connection entry when the client reuses a source port.
    expect(conns).toBeGreaterThan(0);
    expect(inPkts).toBeGreaterThan(0);
    expect(outPkts).toBe(0);
  }, 180_000);

  it("sees no drift right after apply, names every hand change, and re-apply repairs all but the unmanaged service", async () => {
    expect((await withRun(labCluster(), (run) => run.drift())).every((d) => d.clean)).toBe(true);

    await labExecOk("director", `ipvsadm -d -t ${VIP}:80 -r 198.51.100.11:80 && ipvsadm -A -t 198.51.100.9:8080 -s rr`);
    await labExecOk("rs1", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    await labExecOk("rs3", `ip addr del ${VIP}/32 dev lo`);

    const drift = await withRun(labCluster(), (run) => run.drift());
    const items = drift.flatMap((d) => d.items).map((i) => ({ host: i.host, kind: i.kind, key: i.key, status: i.status, expected: i.expected, actual: i.actual }));
    expect(items).toEqual(
      expect.arrayContaining([
        { host: "director", kind: "destination", key: `tcp:${VIP}:80/198.51.100.11:80`, status: "missing", expected: `tcp:${VIP}:80/198.51.100.11:80 dr weight 1`, actual: null },
        { host: "director", kind: "service", key: "tcp:198.51.100.9:8080", status: "unmanaged", expected: null, actual: "tcp:198.51.100.9:8080 scheduler rr" },
        { host: "rs1", kind: "sysctl", key: "net/ipv4/conf/all/arp_ignore", status: "changed", expected: "1", actual: "0" },
        { host: "rs3", kind: "address", key: `lo/${VIP}/32`, status: "missing", expected: `${VIP}/32 on lo`, actual: null },
      ]),
    );
    expect(items).toHaveLength(4);

    await withRun(labCluster(), (run) => run.apply());
    const after = await withRun(labCluster(), (run) => run.drift());
    expect(after.every((d) => d.clean)).toBe(true);
    expect(after.flatMap((d) => d.items).map((i) => `${i.status} ${i.key}`)).toEqual(["unmanaged tcp:198.51.100.9:8080"]);
    expect(await labExecOk("director", "ipvsadm -Sn")).toContain("-A -t 198.51.100.9:8080 -s rr");
    await labExecOk("director", "ipvsadm -D -t 198.51.100.9:8080");
  }, 180_000);

  let afterTimeWait: (() => Promise<unknown>) | undefined;
  afterEach(async () => {
    await afterTimeWait?.();
    afterTimeWait = undefined;
  });

  it("drains a removed real server before deleting it while the others keep serving", async () => {
    // Client ports (below the ephemeral range, so no other request uses them) whose connection
    // went to rs3: the director keeps that connection's entry for minutes after it closed.
    const fromPort = (ports: number[]) =>
      labExecOk("client", `for p in ${ports.join(" ")}; do echo "$p $(curl -s -m 3 --local-port $p http://${VIP}/ || echo FAILED)"; done`).then(
        (out) =>
          new Map(
            out
              .trim()
              .split("\n")
              .map((l) => l.split(" ") as [string, string])
              .map(([p, body]) => [Number(p), body]),
          ),
      );
    // The client keeps no TIME_WAIT: when curl closes first (its read done before the server's FIN
    // came), the port stays bound for 60 s and the second request from it fails to bind (CI saw it:
    // one "FAILED" that was the client's, not the director's).
    const tw = (await labExecOk("client", "sysctl -n net.ipv4.tcp_max_tw_buckets")).trim();
    await labExecOk("client", "sysctl -q -w net.ipv4.tcp_max_tw_buckets=0");
    afterTimeWait = () => labExecOk("client", `sysctl -q -w net.ipv4.tcp_max_tw_buckets=${tw}`);
    const before = await fromPort(Array.from({ length: 12 }, (_, i) => 20100 + i));
    const rs3Ports = [...before].filter(([, body]) => body === "rs3").map(([p]) => p);
    expect(rs3Ports.length).toBeGreaterThan(0);

    // Requests run on the client the whole time the change is applied.
    const traffic = labExec("client", `for i in $(seq 40); do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' http://${VIP}/ || echo 000; sleep 0.1; done`, { timeoutMs: 120_000 });
    const events: ProgressEvent[] = [];
    await new Promise((r) => setTimeout(r, 500));
    const report = await withRun(withoutRs3(labCluster()), (run) => run.apply(), events);
    const codes = (await traffic).stdout.split("\n").filter(Boolean);

    expect(report.plan.waves.map((w) => w.wave)).toEqual(["directors", "release-real-servers"]);
    const directorSteps = events.flatMap((e) => (e.kind === "step" && e.host === "director" ? [e.description] : []));
    const drain = directorSteps.findIndex((d) => d.startsWith("drain real server") && d.includes("198.51.100.12"));
    const wait = directorSteps.findIndex((d) => d.startsWith("wait up to"));
    const remove = directorSteps.findIndex((d) => d.startsWith("remove real server") && d.includes("198.51.100.12"));
    expect(drain).toBeGreaterThanOrEqual(0);
    expect(drain).toBeLessThan(wait);
    expect(wait).toBeLessThan(remove);
    const rs3Released = events.findIndex((e) => e.kind === "step" && e.host === "rs3");
    const directorDone = events.findIndex((e) => e.kind === "wave-done" && e.host === "director");
    expect(directorDone).toBeLessThan(rs3Released);

    expect(codes).toHaveLength(40);
    expect(codes.every((c) => c === "200")).toBe(true);
    expect(await labExecOk("director", "ipvsadm -Sn")).not.toContain("198.51.100.12");
    expect(await labExecOk("rs3", "ip -o addr show dev lo")).not.toContain(VIP);
    expect(new Set(await requestVip(8))).toEqual(new Set(["rs1", "rs2", "rsvm1"]));
    // A new connection from a port whose old entry names the removed rs3 is scheduled afresh
    // (directors[].ipvs.expireNodestConn, on by default), not sent to rs3 and lost.
    const after = await fromPort(rs3Ports);
    expect([...after.values()].filter((body) => !["rs1", "rs2", "rsvm1"].includes(body))).toEqual([]);
  }, 180_000);

  it("works through a non-root user with passwordless sudo", async () => {
    const cluster = labCluster();
    const sudoUser = labHost("rs3", hosts).sudoUser!.user;
    cluster.realServers.find((r) => r.name === "rs3")!.connection = { user: sudoUser, sudo: true };
    await withRun(labCluster(), (run) => run.apply());
    await labExecOk("rs3", "echo 0 > /proc/sys/net/ipv4/conf/lo/arp_announce");
    const drift = await withRun(cluster, (run) => run.drift());
    expect(drift.find((d) => d.host === "rs3")!.items.map((i) => `${i.status} ${i.key}`)).toEqual(["changed net/ipv4/conf/lo/arp_announce"]);
    await withRun(cluster, (run) => run.apply());
    expect((await labExecOk("rs3", "cat /proc/sys/net/ipv4/conf/lo/arp_announce")).trim()).toBe("2");
    // Without sudo the same user cannot take the lock or write /proc/sys: the run fails, naming host and wave.
    cluster.realServers.find((r) => r.name === "rs3")!.connection = { user: sudoUser, sudo: false };
    await labExecOk("rs3", "echo 0 > /proc/sys/net/ipv4/conf/lo/arp_announce");
    await expect(withRun(cluster, (run) => run.apply())).rejects.toThrow(/rs3 \(prepare-real-servers\): exited \d+ (before the first step|at step 1\/)/);
    await withRun(labCluster(), (run) => run.apply());
  }, 180_000);

  it("the host lock is root's alone: another user cannot open it to hold it, one whose lock directory it is is refused, and applies still succeed", async () => {
    await withRun(labCluster(), (run) => run.apply());
    // Made so, or tightened from the 0755 a host's own setup (lab/host-init.sh) gives the directory.
    for (const host of ["director", "rs1", "rs3"]) {
      expect((await labExecOk(host, "stat -c '%U %a %F' /run/lvs-dr /run/lvs-dr/lock")).trim().split("\n")).toEqual(["root 700 directory", "root 600 regular empty file"]);
    }
    // rs3's own non-root user, logged in without sudo, and nobody on the director: `flock -n`
    // cannot even open the lock, so cannot hold it.
    const sudoUser = labHost("rs3", hosts).sudoUser!.user;
    const asUser = await labExec("rs3", "flock -n /run/lvs-dr/lock true", { user: sudoUser });
    expect(asUser.code).not.toBe(0);
    expect(asUser.stderr).toMatch(/Permission denied/);
    const asNobody = await labExec("director", "setpriv --reuid=65534 --regid=65534 --clear-groups flock -n /run/lvs-dr/lock true");
    expect(asNobody.code).not.toBe(0);
    expect(asNobody.stderr).toMatch(/Permission denied/);
    // An apply right after, with a change to make on rs3, takes the lock and makes it.
    await labExecOk("rs3", "echo 0 > /proc/sys/net/ipv4/conf/lo/arp_announce");
    await withRun(labCluster(), (run) => run.apply());
    expect((await labExecOk("rs3", "cat /proc/sys/net/ipv4/conf/lo/arp_announce")).trim()).toBe("2");

    // A lock directory another user owns (it could have put anything there): refused before the
    // first step, naming the path; the director's waiting script changes nothing.
    await labExecOk("rs2", "echo 0 > /proc/sys/net/ipv4/conf/lo/arp_announce && chown 65534 /run/lvs-dr");
    try {
      const error = await withRun(labCluster(), (run) => run.apply()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as ApplyError).failures).toEqual([
        expect.objectContaining({ host: "rs2", wave: "prepare-real-servers", message: expect.stringContaining("/run/lvs-dr must be a directory owned by root") }),
      ]);
      expect((error as ApplyError).failures[0]!.message).toMatch(
        /^the lock on this host is not root's alone \(another user could hold it and block every apply\): .*owned by uid 65534/,
      );
      expect((await labExecOk("rs2", "cat /proc/sys/net/ipv4/conf/lo/arp_announce")).trim()).toBe("0");
    } finally {
      await labExecOk("rs2", "chown 0 /run/lvs-dr");
    }
    await withRun(labCluster(), (run) => run.apply());
    expect((await labExecOk("rs2", "cat /proc/sys/net/ipv4/conf/lo/arp_announce")).trim()).toBe("2");
  }, 180_000);

  it("destroy puts every host back as it was before the first apply", async () => {
    await withRun(labCluster(), (run) => run.apply({ destroy: true }));
    expect(await snapshotAll()).toEqual(pristine);
  }, 180_000);
});
