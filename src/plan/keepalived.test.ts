/**
 * keepalived mode, pure layers: the spec's rules, the configuration rendered, and the plans and
 * drift for directors whose services keepalived owns. keepalived itself runs in the lab suite
 * (test/lab/ha.test.ts); here its IPVS table is what the kernel would show.
 */
import { parseCluster, type SpecIssue } from "../config/load";
import type { ClusterInput } from "../config/schema";
import { desiredClusterState } from "../model/desired";
import type { DestinationCounters, DestinationState, ObservedHostState } from "../model/host-state";
import { serviceKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import type { Step } from "../model/steps";
import { renderKeepalivedConf } from "../render/keepalived";
import { renderApplyScript } from "../render/apply-script";
import { labLikeSpec } from "../testing/specs";
import { planCluster, type ClusterPlan } from "./cluster-plan";
import { clusterHealth } from "./health";
import { preflightHost } from "./preflight";
import { applyPlan, blankCluster } from "./testing/cluster";

const directors = [
  { name: "director", interface: "eth0", dip: "198.51.100.2/24" },
  { name: "director2", interface: "eth0", dip: "198.51.100.3/24" },
];
const group = {
  name: "front",
  virtualRouterId: 52,
  directors: [
    { name: "director", priority: 150 },
    { name: "director2", priority: 100 },
  ],
  connectionSync: true,
  authSecret: "s3cret",
};
const http = { type: "http", path: "/health", statusCodes: [200, 204], intervalSeconds: 2, connectTimeoutSeconds: 1, retries: 2, retryDelaySeconds: 1 };

function haSpec(svc: Record<string, unknown> = {}, extra: Partial<ClusterInput> = {}): ClusterInput {
  return labLikeSpec({
    directors,
    failoverGroups: [group],
    virtualServices: [
      {
        name: "http",
        failoverGroup: "front",
        vip: "198.51.100.5",
        protocol: "tcp",
        port: 80,
        scheduler: "rr",
        realServers: [{ name: "rs1" }, { name: "rs2" }],
        healthCheck: http,
        sorryServer: "rs3",
        ...svc,
      } as never,
    ],
    ...extra,
  });
}

function checkedSpec(svc: Record<string, unknown> = {}): ClusterInput {
  return labLikeSpec({
    virtualServices: [
      {
        name: "http",
        vip: "198.51.100.5",
        protocol: "tcp",
        port: 80,
        scheduler: "rr",
        realServers: [{ name: "rs1" }, { name: "rs2" }, { name: "rs3" }],
        healthCheck: { type: "tcp" },
        ...svc,
      } as never,
    ],
  });
}

function issues(spec: unknown): SpecIssue[] {
  const r = parseCluster(spec);
  return r.ok ? [] : r.issues;
}

function desiredOf(spec: ClusterInput) {
  const parsed = parseCluster(spec);
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join("\n"));
  return desiredClusterState(parsed.cluster);
}

function stepsOf(plan: ClusterPlan, host: string): Step[] {
  return plan.waves.flatMap((w) => w.hosts.filter((h) => h.host === host).flatMap((h) => h.steps));
}

/** What keepalived does once reloaded: its services in the table, every real server up (weight as configured). */
function keepalivedRan(observed: Map<string, ObservedHostState>, spec: ClusterInput, health: (d: DestinationState) => "up" | "quiesced" | "removed" = () => "up"): void {
  const desired = desiredOf(spec);
  for (const host of desired.hosts) {
    const seen = observed.get(host.host)!;
    const vs = host.keepalived?.virtualServers ?? [];
    const keys = new Set(vs.map((v) => serviceKey(v.service)));
    seen.ipvs.services = [...seen.ipvs.services.filter((s) => !keys.has(serviceKey(s))), ...vs.map((v) => v.service)];
    const dests: (DestinationState & DestinationCounters)[] = [];
    for (const v of vs) {
      for (const d of v.destinations) {
        const h = health(d);
        if (h !== "removed") dests.push({ ...d, weight: h === "quiesced" ? 0 : d.weight, activeConnections: 0, inactiveConnections: 0 });
      }
    }
    seen.ipvs.destinations = [...seen.ipvs.destinations.filter((d) => !keys.has(d.service)), ...dests];
    if (vs.length || host.keepalived) seen.ipvs.status = "loaded";
    if (host.keepalived) seen.keepalived = { installed: true, running: true, enabled: true };
    const vrrp = host.keepalived?.vrrp;
    if (vrrp && host.host === "director") for (const v of vrrp.vips) seen.addresses.push({ ...v });
  }
}

/** The spec applied by the tool and keepalived running it: every host as it is right after `apply`. */
function keepalivedApplied(spec: ClusterInput, health?: Parameters<typeof keepalivedRan>[2]) {
  const desired = desiredOf(spec);
  const after = applyPlan(planCluster(desired, blankCluster(desired)), blankCluster(desired));
  keepalivedRan(after, spec, health);
  return { desired, after };
}

describe("keepalived spec rules: every bad value names its field and rule", () => {
  it("accepts a failover group with an HTTP check, a sorry server and quorum", () => {
    expect(issues(haSpec({ quorum: { weight: 1, hysteresis: 0 } }))).toEqual([]);
  });

  it.each([
    [{ healthCheck: { type: "ping" } }, "virtualServices[0].healthCheck.type", /one of the check types tcp, http, https, command/],
    [{ healthCheck: { type: "http", path: "health" } }, "virtualServices[0].healthCheck.path", /must start with '\/'/],
    [{ healthCheck: { type: "http", statusCodes: [200, 600] } }, "virtualServices[0].healthCheck.statusCodes[1]", /100-599/],
    [{ healthCheck: { type: "http", statusCodes: [200, 200] } }, "virtualServices[0].healthCheck.statusCodes[1]", /duplicate status code 200/],
    [{ healthCheck: { type: "tcp", intervalSeconds: 0 } }, "virtualServices[0].healthCheck.intervalSeconds", /at least 1 second/],
    [{ healthCheck: { type: "tcp", retries: -1 } }, "virtualServices[0].healthCheck.retries", /0 or more/],
    [{ healthCheck: { type: "command", path: "check.sh" } }, "virtualServices[0].healthCheck.path", /absolute path/],
    [
      { healthCheck: { type: "command", path: "/usr/local/bin/check", args: ["$(reboot)"] } },
      "virtualServices[0].healthCheck.args[0]",
      /no spaces, quotes or shell metacharacters/,
    ],
    [{ sorryServer: "nope" }, "virtualServices[0].sorryServer", /"nope" is not a real server in realServers/],
    [{ sorryServer: "rs1" }, "virtualServices[0].sorryServer", /is one of this service's real servers/],
    [{ quorum: { weight: 5 } }, "virtualServices[0].quorum.weight", /all real servers together weigh 2/],
    [{ healthCheck: undefined, sorryServer: "rs3" }, "virtualServices[0].sorryServer", /needs a healthCheck/],
    [{ director: "director" }, "virtualServices[0].director", /must not be set with failoverGroup/],
    [{ failoverGroup: "back" }, "virtualServices[0].failoverGroup", /"back" is not a failover group/],
  ])("service %j", (svc, path, message) => {
    const found = issues(haSpec(svc)).find((i) => i.path === path);
    expect(found?.message).toMatch(message);
  });

  it.each([
    [{ directors: [{ name: "director", priority: 100 }] }, "failoverGroups[0].directors", /at least two directors/],
    [
      {
        directors: [
          { name: "director", priority: 255 },
          { name: "director2", priority: 100 },
        ],
      },
      "failoverGroups[0].directors[0].priority",
      /1-254/,
    ],
    [
      {
        directors: [
          { name: "director", priority: 100 },
          { name: "director2", priority: 100 },
        ],
      },
      "failoverGroups[0].directors[1].priority",
      /also the priority of director "director"/,
    ],
    [
      {
        directors: [
          { name: "director", priority: 100 },
          { name: "ghost", priority: 90 },
        ],
      },
      "failoverGroups[0].directors[1].name",
      /"ghost" is not a director/,
    ],
    [{ virtualRouterId: 256 }, "failoverGroups[0].virtualRouterId", /1-255/],
    [{ authSecret: "longer-than-8" }, "failoverGroups[0].authSecret", /1-8 printable characters/],
  ])("group %j", (change, path, message) => {
    const found = issues(haSpec({}, { failoverGroups: [{ ...group, ...change }] })).find((i) => i.path === path);
    expect(found?.message).toMatch(message);
  });

  it("a director in two groups, one router id in two groups", () => {
    const found = issues(
      haSpec(
        {},
        {
          directors: [...directors, { name: "director3", interface: "eth0", dip: "198.51.100.4/24" }],
          failoverGroups: [
            group,
            {
              name: "back",
              virtualRouterId: 52,
              directors: [
                { name: "director2", priority: 90 },
                { name: "director3", priority: 80 },
              ],
            },
          ],
        },
      ),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: "failoverGroups[1].virtualRouterId", message: expect.stringMatching(/also the virtual router id of failoverGroups\[0\]/) }),
        expect.objectContaining({
          path: "failoverGroups[1].directors[0].name",
          message: expect.stringMatching(/also in failoverGroups\[0\]: a director belongs to one failover group/),
        }),
      ]),
    );
  });

  it("only a group's directors share a VIP: a static director holding it too is refused", () => {
    const spec = haSpec();
    (spec.virtualServices as unknown[]).push({ name: "other", director: "director2", vip: "198.51.100.5", protocol: "tcp", port: 443, realServers: [{ name: "rs1" }] });
    expect(issues(spec).find((i) => i.path === "virtualServices[1].director")?.message).toMatch(/already served by failover group "front"/);
  });
});

describe("keepalived.conf", () => {
  it("renders the group, the sync daemon, the check, the sorry server (snapshot)", () => {
    const desired = desiredOf(haSpec({ quorum: { weight: 1, hysteresis: 0 } }));
    const conf = renderKeepalivedConf(desired.hosts.find((h) => h.host === "director")!.keepalived!);
    expect(conf).toMatchSnapshot();
    expect(conf.split("\n")[0]).toBe("# Managed by lvs-dr for cluster test. Changes here are drift; change the cluster spec instead.");
  });

  it("a command check's words are quoted as one misc_path; {rip} and {port} are filled in per real server", () => {
    const desired = desiredOf(checkedSpec({ healthCheck: { type: "command", path: "/usr/local/bin/check-app", args: ["--host", "{rip}", "--port={port}"], port: 8080 } }));
    const conf = renderKeepalivedConf(desired.hosts[0]!.keepalived!);
    expect(conf).toContain('misc_path "/usr/local/bin/check-app --host 198.51.100.10 --port=8080"');
    expect(conf).toContain('misc_path "/usr/local/bin/check-app --host 198.51.100.11 --port=8080"');
  });

  it("refuses values that did not come through the schema", () => {
    const desired = desiredOf(checkedSpec({ healthCheck: { type: "http" } }));
    const state = structuredClone(desired.hosts[0]!.keepalived!);
    state.virtualServers[0]!.checks["198.51.100.10"]!.path = "/x\n}\nvrrp_script evil {";
    expect(() => renderKeepalivedConf(state)).toThrow(/refusing to render URL path/);
  });
});

describe("planning a director in keepalived mode", () => {
  it("writes keepalived's file (checked first) and reloads it; no ipvsadm for its services and no static VIP of a group", () => {
    const desired = desiredOf(haSpec());
    const plan = planCluster(desired, blankCluster(desired));
    for (const d of ["director", "director2"]) {
      const steps = stepsOf(plan, d);
      expect(steps.map((s) => s.op)).toEqual([
        "record-ownership",
        "set-sysctl",
        "set-sysctl",
        "set-ipvs-timeouts",
        "write-file",
        "write-keepalived-config",
        "reload-keepalived",
        "write-file",
        "write-file",
        "write-file",
        "write-file",
        "write-file",
      ]);
      // The drop-in first: keepalived starts with --dont-release-ipvs, so a stop never empties the table.
      expect(steps[4]).toMatchObject({ op: "write-file", file: { path: hostPaths.keepalivedDropIn, content: expect.stringContaining("--dont-release-ipvs") } });
      expect(steps.find((s) => s.op === "reload-keepalived")).toEqual({ op: "reload-keepalived", restart: false, daemonReload: true, enable: true });
    }
    // The sorry server is prepared like a real server: the VIP on lo behind ARP suppression.
    expect(stepsOf(plan, "rs3").some((s) => s.op === "add-address")).toBe(true);
    const script = renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts[0]!);
    expect(script).toMatch(/keepalived -t -f \/etc\/keepalived\/keepalived\.conf\.lvsdr-new/);
    expect(script).toContain("systemctl reload-or-restart keepalived");
    expect(script).toContain("SYSTEMCTL_SKIP_SYSV=1 systemctl enable --no-reload --quiet keepalived");
    expect(script.indexOf("keepalived -t")).toBeLessThan(script.indexOf("mv -fT /etc/keepalived/keepalived.conf.lvsdr-new"));
  });

  it("a real server keepalived took out (quiesced or removed) is health, not drift; nothing to apply", () => {
    const { desired, after } = keepalivedApplied(haSpec(), (d) => (d.address === "198.51.100.10" ? "quiesced" : d.address === "198.51.100.11" ? "removed" : "up"));
    const plan = planCluster(desired, after);
    expect(plan.drift.filter((d) => !d.clean)).toEqual([]);
    expect(plan.empty).toBe(true);
    const health = clusterHealth(desired, after);
    expect(health.services[0]!.realServers.map((r) => [r.name, r.health])).toEqual([
      ["rs1", "down"],
      ["rs2", "down"],
    ]);
    expect(health.groups).toEqual([expect.objectContaining({ group: "front", master: "director", holders: ["director"] })]);
  });

  it("keepalived stopped, disabled, its file edited: drift names each, and apply starts it from a checked file", () => {
    const spec = haSpec();
    const { desired, after } = keepalivedApplied(spec);
    after.get("director2")!.keepalived = { installed: true, running: false, enabled: false };
    const file = after.get("director2")!.files[hostPaths.keepalivedConf]!;
    if (!file.isLink) after.get("director2")!.files[hostPaths.keepalivedConf] = { ...file, sha256: "0".repeat(64) };
    const plan = planCluster(desired, after);
    const items = plan.drift.find((d) => d.host === "director2")!.items.map((i) => `${i.status} ${i.kind} ${i.key} ${i.actual}`);
    expect(items).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^changed file \/etc\/keepalived\/keepalived.conf/),
        "changed keepalived keepalived stopped",
        "changed keepalived keepalived disabled",
      ]),
    );
    // The ownership record is unchanged, so not written again.
    expect(stepsOf(plan, "director2").map((s) => s.op)).toEqual(["write-keepalived-config", "reload-keepalived"]);
  });

  it("one VIP held by both directors (split brain), or by none, is drift on each of the group's directors", () => {
    const spec = haSpec();
    const { desired, after } = keepalivedApplied(spec);
    after.get("director2")!.addresses.push({ interface: "eth0", address: "198.51.100.5", prefix: 32 });
    const split = planCluster(desired, after).drift.filter((d) => !d.clean);
    expect(split.map((d) => d.host)).toEqual(["director", "director2"]);
    expect(split[0]!.items[0]).toMatchObject({ kind: "vrrp", key: "front/198.51.100.5", actual: "held by director and director2 (split brain)" });
    for (const h of ["director", "director2"]) after.get(h)!.addresses = after.get(h)!.addresses.filter((a) => a.address !== "198.51.100.5");
    expect(planCluster(desired, after).drift.find((d) => d.host === "director")!.items[0]).toMatchObject({ status: "missing", actual: "held by none" });
  });

  it("removing a real server drains it through keepalived's file: weight 0 first, wait, then the file without it", () => {
    const spec = checkedSpec();
    const { after } = keepalivedApplied(spec);
    const smaller = checkedSpec({ realServers: [{ name: "rs1" }, { name: "rs2" }] });
    const plan = planCluster(desiredOf(smaller), after);
    const steps = stepsOf(plan, "director");
    expect(steps.map((s) => s.op)).toEqual([
      "write-keepalived-config",
      "reload-keepalived",
      "wait-drained",
      "write-keepalived-config",
      "reload-keepalived",
      "remove-stray-destination",
    ]);
    const draining = steps[0] as Extract<Step, { op: "write-keepalived-config" }>;
    expect("content" in draining.file && draining.file.content).toMatch(/real_server 198\.51\.100\.12 80 \{\n\s+weight 0\n/);
    const final = steps[3] as Extract<Step, { op: "write-keepalived-config" }>;
    expect("content" in final.file && final.file.content).not.toContain("198.51.100.12");
    // rs3 lets go of the VIP only after the director let go of rs3.
    expect(plan.waves.map((w) => w.wave)).toEqual(["directors", "release-real-servers"]);
  });

  it("in a failover group only the master waits for a leaving real server's connections: the backup's are sync copies", () => {
    const spec = haSpec();
    const { after } = keepalivedApplied(spec);
    const plan = planCluster(desiredOf(haSpec({ realServers: [{ name: "rs1" }] })), after);
    expect(stepsOf(plan, "director").map((s) => s.op)).toContain("wait-drained");
    expect(stepsOf(plan, "director2").map((s) => s.op)).toEqual(["write-keepalived-config", "reload-keepalived", "remove-stray-destination"]);
  });

  it("static to keepalived mode: keepalived adopts the entries (no ipvsadm change); and back: re-added the moment keepalived lets go", () => {
    const staticSpec = labLikeSpec();
    const desired = desiredOf(staticSpec);
    const start = applyPlan(planCluster(desired, blankCluster(desired)), blankCluster(desired));
    const checked = checkedSpec();
    const toKeepalived = planCluster(desiredOf(checked), start);
    const steps = stepsOf(toKeepalived, "director");
    // Recorded first as both (static and keepalived's), then as keepalived's only.
    expect(steps.map((s) => s.op)).toEqual(["record-ownership", "write-file", "write-keepalived-config", "reload-keepalived", "write-file", "record-ownership"]);
    const onKeepalived = applyPlan(toKeepalived, start);
    keepalivedRan(onKeepalived, checked);
    onKeepalived.get("director")!.keepalived = { installed: true, running: true, enabled: true };
    expect(planCluster(desiredOf(checked), onKeepalived).empty).toBe(true);
    expect(onKeepalived.get("director")!.ownership).toMatchObject({ services: [], destinations: [], keepalivedServices: ["tcp:198.51.100.5:80"] });

    // Back: keepalived stops and leaves its entries (--dont-release-ipvs): the tool takes them over as they are.
    const back = planCluster(desired, onKeepalived);
    expect(stepsOf(back, "director").map((s) => s.op)).toEqual(["record-ownership", "stop-keepalived", "write-file", "remove-file", "remove-file", "record-ownership"]);
    expect(planCluster(desired, applyPlan(back, onKeepalived)).empty).toBe(true);
  });

  it("one service handed back while keepalived keeps others: re-added the moment keepalived's reload deleted it", () => {
    const both = checkedSpec();
    (both.virtualServices as unknown[]).push({ name: "https", vip: "198.51.100.5", protocol: "tcp", port: 443, realServers: [{ name: "rs1" }], healthCheck: { type: "tcp" } });
    const { after: start } = keepalivedApplied(both);
    const oneBack = structuredClone(both);
    delete (oneBack.virtualServices![1] as { healthCheck?: unknown }).healthCheck;
    const plan = planCluster(desiredOf(oneBack), start);
    // Recorded as both keepalived's and the tool's while it changes hands, then as the tool's.
    expect(stepsOf(plan, "director").map((s) => s.op)).toEqual([
      "record-ownership",
      "write-keepalived-config",
      "reload-keepalived",
      "wait-keepalived-released",
      "add-service",
      "add-destination",
      "write-file",
      "record-ownership",
    ]);
    const records = stepsOf(plan, "director").flatMap((s) => (s.op === "record-ownership" ? [s.record] : []));
    expect(records[0]).toMatchObject({ services: expect.arrayContaining(["tcp:198.51.100.5:443"]), keepalivedServices: expect.arrayContaining(["tcp:198.51.100.5:443"]) });
    expect(records[1]!.keepalivedServices).not.toContain("tcp:198.51.100.5:443");
    const script = renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts[0]!);
    expect(script.indexOf("systemctl reload-or-restart keepalived")).toBeLessThan(script.indexOf("-A -t 198.51.100.5:443"));
  });

  it("destroy stops and disables keepalived and removes its file", () => {
    const spec = haSpec();
    const { desired, after } = keepalivedApplied(spec);
    const plan = planCluster(desired, after, { destroy: true });
    const steps = stepsOf(plan, "director");
    expect(steps.map((s) => s.op)).toContain("stop-keepalived");
    expect(steps).toContainEqual({ op: "remove-file", path: hostPaths.keepalivedConf });
    // The record already names everything destroy takes away (keepalived's services and VIPs
    // too): it is not written ahead, only removed once everything else is gone.
    expect(steps[0]!.op).not.toBe("record-ownership");
    expect(steps.at(-1)).toEqual({ op: "record-ownership", record: null });
  });

  it("destroy removes the group's VIP after keepalived stops, on the backup too: it may have taken over as the master stopped", () => {
    const { desired, after } = keepalivedApplied(haSpec());
    const vip = { interface: "eth0", address: "198.51.100.5", prefix: 32 };
    // The backup holds no VIP when observed; the record says which are its group's.
    expect(after.get("director2")!.ownership?.vrrpAddresses).toEqual(["eth0/198.51.100.5/32"]);
    expect(after.get("director2")!.addresses.some((a) => a.address === vip.address)).toBe(false);
    const plan = planCluster(desired, after, { destroy: true });
    for (const d of ["director", "director2"]) {
      expect(stepsOf(plan, d).find((s) => s.op === "stop-keepalived")).toEqual({ op: "stop-keepalived", leftoverVips: [vip] });
    }
    const script = renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts.find((h) => h.host === "director2")!);
    const stop = script.indexOf("systemctl stop keepalived");
    expect(stop).toBeGreaterThan(-1);
    expect(script.indexOf("ip addr del 198.51.100.5/32 dev eth0", stop)).toBeGreaterThan(stop);
  });

  it("back to a static VIP on the same NIC: the stop does not remove the VIP the spec keeps", () => {
    const { after } = keepalivedApplied(haSpec());
    const single = labLikeSpec({
      directors: [directors[0]!],
      virtualServices: [{ name: "http", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "rr", realServers: [{ name: "rs1" }, { name: "rs2" }] } as never],
    });
    const plan = planCluster(desiredOf(single), after);
    expect(stepsOf(plan, "director").find((s) => s.op === "stop-keepalived")).toEqual({ op: "stop-keepalived", leftoverVips: [] });
  });
});

describe("a director's IPVS settings (directors[].ipvs)", () => {
  const withIpvs = (ipvs: Record<string, unknown>) => labLikeSpec({ directors: [{ name: "director", interface: "eth0", dip: "198.51.100.2/24", ipvs } as never] });

  it("sets the kernel parameters and timeouts before the services, persists them for boot, and converges", () => {
    const desired = desiredOf(withIpvs({ timeouts: { tcp: 600 } }));
    const start = blankCluster(desired);
    const plan = planCluster(desired, start);
    const steps = stepsOf(plan, "director");
    // The record first (with the originals), then only what differs from the kernel's values.
    expect(steps[0]).toMatchObject({ op: "record-ownership", record: { sysctls: { "net/ipv4/vs/expire_nodest_conn": "0" }, ipvsTimeouts: { tcp: 900, tcpFin: 120, udp: 300 } } });
    expect(steps.slice(1, 4)).toEqual([
      { op: "set-sysctl", sysctl: { key: "net/ipv4/vs/expire_nodest_conn", value: "1" }, from: "0" },
      { op: "set-sysctl", sysctl: { key: "net/ipv4/vs/expire_quiescent_template", value: "1" }, from: "0" },
      { op: "set-ipvs-timeouts", timeouts: { tcp: 600, tcpFin: 120, udp: 300 } },
    ]);
    const boot = steps.find((s) => s.op === "write-file" && s.file.path === hostPaths.bootScript) as Extract<Step, { op: "write-file" }>;
    expect("content" in boot.file && boot.file.content).toMatch(/modprobe ip_vs.*\nsysctl -q -p \/etc\/lvs-dr\/ipvs-sysctl\.conf\nipvsadm --set 600 120 300\nipvsadm -R/s);
    const script = renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts[0]!);
    expect(script).toContain("[ -e /proc/net/ip_vs ] || modprobe ip_vs\nprintf '%s\\n' 1 > /proc/sys/net/ipv4/vs/expire_nodest_conn");
    const after = applyPlan(plan, start);
    expect(planCluster(desired, after).empty).toBe(true);
    expect(after.get("director")!.ownership).toMatchObject({ ipvsTimeouts: { tcp: 900, tcpFin: 120, udp: 300 }, sysctls: { "net/ipv4/vs/expire_nodest_conn": "0" } });

    // Destroyed: the kernel's values come back.
    const back = planCluster(desired, after, { destroy: true });
    expect(stepsOf(back, "director").filter((s) => s.op === "restore-sysctl" || s.op === "set-ipvs-timeouts")).toEqual([
      { op: "restore-sysctl", sysctl: { key: "net/ipv4/vs/conn_reuse_mode", value: "1" } },
      { op: "restore-sysctl", sysctl: { key: "net/ipv4/vs/conntrack", value: "0" } },
      { op: "restore-sysctl", sysctl: { key: "net/ipv4/vs/expire_nodest_conn", value: "0" } },
      { op: "restore-sysctl", sysctl: { key: "net/ipv4/vs/expire_quiescent_template", value: "0" } },
      { op: "set-ipvs-timeouts", timeouts: { tcp: 900, tcpFin: 120, udp: 300 } },
    ]);
    expect(planCluster(desired, applyPlan(back, after), { destroy: true }).empty).toBe(true);
  });

  it("a director without an ipvs block gets the same DR values as ipvs: {}", () => {
    expect(desiredOf(labLikeSpec()).hosts.find((h) => h.host === "director")).toEqual(desiredOf(withIpvs({})).hosts.find((h) => h.host === "director"));
  });

  it("on a director whose ip_vs is not loaded yet, the module's defaults are recorded as the originals, and the next plan is empty", () => {
    const desired = desiredOf(withIpvs({}));
    const start = blankCluster(desired);
    for (const key of Object.keys(start.get("director")!.sysctls)) if (key.startsWith("net/ipv4/vs/")) start.get("director")!.sysctls[key] = null;
    const after = applyPlan(planCluster(desired, start), start);
    expect(after.get("director")!.ownership!.sysctls).toEqual({
      "net/ipv4/vs/conn_reuse_mode": "1",
      "net/ipv4/vs/conntrack": "0",
      "net/ipv4/vs/expire_nodest_conn": "0",
      "net/ipv4/vs/expire_quiescent_template": "0",
    });
    expect(planCluster(desired, after).empty).toBe(true);
  });

  it("a timeout changed by hand is drift", () => {
    const desired = desiredOf(withIpvs({}));
    const after = applyPlan(planCluster(desired, blankCluster(desired)), blankCluster(desired));
    after.get("director")!.ipvs.timeouts = { tcp: 7200, tcpFin: 120, udp: 300 };
    const item = planCluster(desired, after).drift[0]!.items[0];
    expect(item).toMatchObject({ kind: "ipvs", key: "timeouts", status: "changed", expected: "tcp 900 tcpfin 120 udp 300", actual: "tcp 7200 tcpfin 120 udp 300" });
  });
});

describe("preflight of a director in keepalived mode", () => {
  const desired = desiredOf(checkedSpec());
  const director = desired.hosts[0]!;
  const fresh = () => blankCluster(desired).get("director")!;

  it("refuses a keepalived.conf the tool did not write, and one written for another cluster", () => {
    const foreign = fresh();
    foreign.files[hostPaths.keepalivedConf] = { isLink: false, sha256: "x", content: "vrrp_instance VI_1 {\n}\n" };
    expect(preflightHost(director, foreign).filter((p) => p.check === "keepalived")).toEqual([
      expect.objectContaining({ check: "keepalived", message: expect.stringMatching(/was not written by lvs-dr: refusing to overwrite it/) }),
    ]);
    const other = fresh();
    other.files[hostPaths.keepalivedConf] = {
      isLink: false,
      sha256: "x",
      content: "# Managed by lvs-dr for cluster prod. Changes here are drift; change the cluster spec instead.\n",
    };
    expect(preflightHost(director, other)[0]?.message).toMatch(/written for cluster "prod", not "test"/);
  });

  it("says to install keepalived when it is missing", () => {
    const host = fresh();
    host.keepalived = { installed: false, running: false, enabled: false };
    expect(preflightHost(director, host)[0]).toMatchObject({ check: "keepalived", message: expect.stringMatching(/keepalived is not installed/) });
  });
});
