import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { textSha256, type DestinationState, type VirtualServiceState } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { kernelTableListing, parseIpvsRules } from "../parse/ipvsadm";
import { parseArpProbes, parseObservation } from "../parse/observe";
import { planCluster } from "../plan/cluster-plan";
import { blankCluster, applyPlan } from "../plan/testing/cluster";
import { labLikeSpec } from "../testing/specs";
import { renderFile, renderOwnershipFile } from "./files";
import { ipvsLine } from "./ipvsadm";
import { holdAnswers } from "../model/script-protocol";
import { renderApplyScript, renderStepCommand } from "./apply-script";
import { renderArpProbeScript, renderObserveScript, type ObserveRequest } from "./observe-script";
import { heredoc, quote, RenderError } from "./shell";

const sh = (script: string) => execFileSync("/bin/sh", ["-c", script], { encoding: "utf8" });
const syntaxOk = (script: string) => execFileSync("/bin/sh", ["-n"], { input: script, encoding: "utf8" });

const web: VirtualServiceState = { protocol: "tcp", family: 4, address: "198.51.100.5", port: 80, fwmark: 0, scheduler: "wrr", flags: [], persistence: null };
const dest = (over: Partial<DestinationState> = {}): DestinationState => ({
  service: "tcp:198.51.100.5:80",
  address: "198.51.100.10",
  port: 80,
  forwarding: "dr",
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  ...over,
});

describe("quoting", () => {
  it("any string survives a real shell unchanged", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }).filter((s) => !s.includes("\0")),
        (value) => {
          expect(sh(`printf '%s' ${quote(value)}`)).toBe(value);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("leaves plain words bare and quotes everything else", () => {
    expect(quote("198.51.100.5/32")).toBe("198.51.100.5/32");
    expect(quote("eth0;reboot")).toBe("'eth0;reboot'");
    expect(quote("it's")).toBe(`'it'\\''s'`);
    expect(sh(`printf '%s' ${quote("$(touch /tmp/lvsdr-pwned)")}`)).toBe("$(touch /tmp/lvsdr-pwned)");
  });

  it("a here-document body can never close it early", () => {
    const body = "line\nLVSDR_EOF\nmore";
    const script = heredoc("cat", body);
    expect(sh(script)).toBe(`${body}\n`);
  });
});

describe("guards: only validated shapes reach a command", () => {
  it("refuses values that are not what they claim to be", () => {
    expect(() => renderStepCommand({ op: "add-address", address: { interface: "eth0;reboot", address: "198.51.100.5", prefix: 32 } })).toThrow(RenderError);
    expect(() => renderStepCommand({ op: "add-address", address: { interface: "lo", address: "198.51.100.5 dev eth0", prefix: 32 } })).toThrow(/canonical IP/);
    expect(() => renderStepCommand({ op: "set-sysctl", sysctl: { key: "net/../../etc/passwd", value: "1" }, from: null })).toThrow(/sysctl/);
    expect(() => renderStepCommand({ op: "set-sysctl", sysctl: { key: "net/ipv4/conf/all/arp_ignore", value: "1; reboot" }, from: null })).toThrow(/not an integer/);
    expect(() => renderStepCommand({ op: "remove-file", path: "/etc/../root/.ssh/authorized_keys" })).toThrow(/not a path the tool manages/);
    expect(() => renderStepCommand({ op: "remove-file", path: "/home/user/x" })).toThrow(RenderError);
    expect(() => ipvsLine.addService({ ...web, scheduler: "rr -C" })).toThrow(/scheduler/);
    expect(() => ipvsLine.addDestination(dest({ service: "tcp:198.51.100.5:80;x" }))).toThrow(/service key/);
  });
});

describe("ipvsadm lines", () => {
  it("renders services of every kind", () => {
    expect(ipvsLine.addService(web)).toBe("-A -t 198.51.100.5:80 -s wrr");
    expect(ipvsLine.editService({ ...web, protocol: "udp", port: 53, persistence: { timeout: 300, netmask: "255.255.255.0" } })).toBe(
      "-E -u 198.51.100.5:53 -s wrr -p 300 -M 255.255.255.0",
    );
    expect(ipvsLine.addService({ ...web, protocol: "fwmark", address: "", port: 0, fwmark: 7, scheduler: "sh", flags: ["sh-fallback", "sh-port"] })).toBe(
      "-A -f 7 -s sh -b sh-fallback,sh-port",
    );
    expect(ipvsLine.addService({ ...web, family: 6, address: "2001:db8::5", persistence: { timeout: 60, netmask: "64" } })).toBe("-A -t [2001:db8::5]:80 -s wrr -p 60 -M 64");
    expect(ipvsLine.removeService(web)).toBe("-D -t 198.51.100.5:80");
  });

  it("renders destinations in DR mode with weights and thresholds", () => {
    expect(ipvsLine.addDestination(dest())).toBe("-a -t 198.51.100.5:80 -r 198.51.100.10:80 -g -w 1");
    expect(ipvsLine.addDestination(dest({ upperThreshold: 100, lowerThreshold: 10 }))).toBe("-a -t 198.51.100.5:80 -r 198.51.100.10:80 -g -w 1 -x 100 -y 10");
    expect(ipvsLine.editDestination(dest({ weight: 5 }), 0)).toBe("-e -t 198.51.100.5:80 -r 198.51.100.10:80 -g -w 0");
    expect(ipvsLine.addDestination(dest({ service: "fwmark:7", port: 0 }))).toBe("-a -f 7 -r 198.51.100.10 -g -w 1");
    expect(ipvsLine.removeDestination(dest())).toBe("-d -t 198.51.100.5:80 -r 198.51.100.10:80");
  });

  it("the persisted rules file parses back to the same table", () => {
    const services = [web, { ...web, protocol: "udp" as const, port: 53, persistence: { timeout: 300, netmask: "255.255.255.0" } }];
    const destinations = [dest(), dest({ address: "198.51.100.11", weight: 0, upperThreshold: 50, lowerThreshold: 5 }), dest({ service: "udp:198.51.100.5:53", port: 53 })];
    const file = renderFile({ path: hostPaths.ipvsRules, content: { kind: "ipvs-rules", services, destinations } });
    if ("linkTarget" in file) throw new Error("expected a file");
    expect(parseIpvsRules(file.content)).toEqual({ services, destinations });
  });
});

describe("scripts", () => {
  const parsed = parseCluster(labLikeSpec());
  if (!parsed.ok) throw new Error("spec");
  const desired = desiredClusterState(parsed.cluster);
  const blank = blankCluster(desired);
  const plan = planCluster(desired, blank);
  const applied = applyPlan(plan, blank);
  const removal = planCluster(desired, applied, { destroy: true });

  it("are valid POSIX shell, for every wave of an apply and a destroy", () => {
    const scripts = [...plan.waves, ...removal.waves].flatMap((w) => w.hosts.map((h) => renderApplyScript(h)));
    expect(scripts.length).toBeGreaterThan(5);
    for (const script of scripts) syntaxOk(script);
    syntaxOk(renderArpProbeScript("eth0", ["198.51.100.10", "198.51.100.11"]));
    const bare: ObserveRequest = { sysctlKeys: [], filePaths: [], tools: false, routeTargets: [], ipvs: true, linkTargets: {} };
    const forPreflight = renderObserveScript({ ...bare, tools: true, routeTargets: ["198.51.100.10"], neighbours: true });
    syntaxOk(forPreflight);
    // The neighbour table rides in the ip batch, after the addresses, and the header says so;
    // nothing is probed and nothing waited for in an observation.
    expect(forPreflight).toContain("section ip neigh'\nip -j -force -batch - 2>/dev/null <<'LVSDR_IP' || :\naddr show\nneigh show\nroute get 198.51.100.10\nLVSDR_IP\n");
    expect(forPreflight).not.toMatch(/neigh replace|sleep|\/proc\/net\/arp/);
    // A drift check asks neither for commands nor for routes nor for neighbours: only preflight reads them.
    expect(renderObserveScript(bare)).not.toContain("section tools");
    expect(renderObserveScript(bare)).not.toContain("route get");
    expect(renderObserveScript(bare)).not.toContain("neigh");
    expect(forPreflight).toContain("section tools");
    execFileSync("bash", ["-n"], { input: renderArpProbeScript("eth0", ["198.51.100.10"]) });
    for (const host of desired.hosts) {
      const filePaths = Object.values(hostPaths).filter((p) => p.includes("."));
      syntaxOk(
        renderObserveScript({
          sysctlKeys: host.sysctls.map((s) => s.key),
          filePaths,
          tools: true,
          routeTargets: host.onLinkPeers,
          ipvs: host.role === "director",
          linkTargets: { [hostPaths.systemdUnitLink]: hostPaths.systemdUnit },
        }),
      );
    }
  });

  it("read files exactly, whatever their lines look like, in dash and in bash", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-observe-"));
    try {
      const texts: Record<string, string> = {
        // Lines that look like markers and records: grep prints them at the start of a line.
        "/etc/lvs-dr/a.conf": "  leading spaces\\and a backslash\n@@lvsdr end\n\ttab\n/proc/sys/net/x:1\n\n",
        "/etc/lvs-dr/no-newline.conf": "last line without newline",
        "/etc/lvs-dr/empty.conf": "",
        "/etc/lvs-dr/nul.conf": "before\0after\n",
        // Service keys hold colons; a record splits at the path's colon, the first.
        [hostPaths.ownership]: (
          renderOwnershipFile({ version: 1, cluster: "lab", host: "h", addresses: [], services: ["tcp:198.51.100.5:80"], destinations: [], sysctls: {}, files: [] }) as {
            content: string;
          }
        ).content,
      };
      const local = (p: string) => join(dir, p.replace(/\//g, "_"));
      for (const [p, text] of Object.entries(texts)) writeFileSync(local(p), text);
      symlinkSync(local("/etc/lvs-dr/a.conf"), local("/etc/lvs-dr/link"));
      symlinkSync(local("/etc/lvs-dr/empty.conf"), local("/etc/lvs-dr/other-link"));
      const filePaths = [...Object.keys(texts), "/etc/lvs-dr/link", "/etc/lvs-dr/other-link", "/etc/lvs-dr/absent.conf"];
      const linkTargets = { "/etc/lvs-dr/link": "/etc/lvs-dr/a.conf", "/etc/lvs-dr/other-link": "/etc/lvs-dr/a.conf" };
      let script = renderObserveScript({ sysctlKeys: ["net/ipv4/conf/lo/arp_ignore"], filePaths, tools: false, routeTargets: [], ipvs: false, linkTargets });
      // The managed paths, moved into the temporary directory (longest first: one is a prefix of none here).
      for (const p of [...filePaths, ...Object.values(linkTargets)].sort((a, b) => b.length - a.length)) script = script.split(p).join(local(p));
      for (const shell of ["sh", "bash"]) {
        let out = execFileSync(shell, [], { input: script, encoding: "utf8" });
        for (const p of [...filePaths, ...Object.values(linkTargets)]) out = out.split(local(p)).join(p);
        const state = parseObservation("h", out);
        for (const [p, text] of Object.entries(texts)) expect(state.files[p]).toEqual({ isLink: false, sha256: textSha256(text), content: text });
        expect(state.files["/etc/lvs-dr/link"]).toEqual({ isLink: true, target: "/etc/lvs-dr/a.conf" });
        expect(state.files["/etc/lvs-dr/other-link"]).toEqual({ isLink: true, target: "/etc/lvs-dr/empty.conf" });
        expect(state.files["/etc/lvs-dr/absent.conf"]).toBeNull();
        // The lines of a file are never read as values or markers.
        expect(state.sysctls["net/x"]).toBeUndefined();
        expect(state.sysctls["net/ipv4/conf/lo/arp_ignore"]).toMatch(/^\d+$/);
        expect(state.ownership?.services).toEqual(["tcp:198.51.100.5:80"]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("tell RIPs that answered ARP from those that did not, from the kernel's neighbour table, in dash and in bash", () => {
    // The director's /proc/net/arp as captured in the lab: RIPs .10-.19 complete (0x2), .99
    // incomplete (0x0). The probes themselves need root; what is read back is what matters.
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-arp-"));
    try {
      const arp = join(dir, "arp");
      writeFileSync(arp, readFileSync(join(__dirname, "../../test/fixtures/director/proc-net-arp.txt")));
      const script = renderArpProbeScript("eth0", ["198.51.100.10", "198.51.100.12", "198.51.100.99"]).split("/proc/net/arp").join(arp);
      for (const shell of ["sh", "bash"]) {
        const out = execFileSync(shell, [], { input: script, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
        expect(parseArpProbes("director", out)).toEqual({ "198.51.100.10": true, "198.51.100.12": true, "198.51.100.99": false });
        // Only the one without an answer was asked again.
        expect(script).toContain("neigh replace $t dev eth0 nud none use");
      }
      const otherNic = renderArpProbeScript("eth1", ["198.51.100.10"]).split("/proc/net/arp").join(arp);
      expect(parseArpProbes("director", execFileSync("sh", [], { input: otherNic, encoding: "utf8" }))).toEqual({ "198.51.100.10": false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("probe only the RIPs still without a resolved neighbour entry, and wait only when one was probed, in dash and in bash", () => {
    // The director's /proc/net/arp as captured in the lab: .10 complete (0x2), .99 incomplete (0x0).
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-probe-"));
    try {
      writeFileSync(join(dir, "arp"), readFileSync(join(__dirname, "../../test/fixtures/director/proc-net-arp.txt")));
      // ip and sleep stand in as functions: what the batch was sent, and how often it slept.
      const stubs = `ip() { cat >> ${join(dir, "batch")}; }\nsleep() { echo >> ${join(dir, "sleeps")}; }\n`;
      for (const shell of ["sh", "bash"]) {
        for (const [rips, probed, sleeps] of [
          [["198.51.100.10"], [], 0],
          [["198.51.100.10", "198.51.100.99"], ["neigh replace 198.51.100.99 dev eth0 nud none use"], 20],
        ] as const) {
          rmSync(join(dir, "batch"), { force: true });
          rmSync(join(dir, "sleeps"), { force: true });
          const script = renderArpProbeScript("eth0", [...rips])
            .split("/proc/net/arp")
            .join(join(dir, "arp"));
          const out = execFileSync(shell, [], { input: stubs + script, encoding: "utf8" });
          expect(parseArpProbes("director", out)).toEqual(Object.fromEntries(rips.map((r) => [r, r === "198.51.100.10"])));
          // A resolved entry (.10) is never touched: `nud none use` would clear a permanent one.
          const sent = existsSync(join(dir, "batch"))
            ? readFileSync(join(dir, "batch"), "utf8")
                .split("\n")
                .filter((l) => l.startsWith("neigh "))
            : [];
          expect(sent).toEqual([...probed]);
          expect(existsSync(join(dir, "sleeps")) ? readFileSync(join(dir, "sleeps"), "utf8").length : 0).toBe(sleeps);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("read multi-digit sysctls whole, in dash and in bash", () => {
    // dash's and busybox's `read` return only the first character of a /proc/sys value such as
    // 60: values come through grep instead.
    const key = "net/ipv4/tcp_fin_timeout";
    const actual = readFileSync(`/proc/sys/${key}`, "utf8").trim();
    const script = renderObserveScript({ sysctlKeys: [key, "net/ipv4/conf/nosuch0/arp_ignore"], filePaths: [], tools: false, routeTargets: [], ipvs: false, linkTargets: {} });
    for (const shell of ["sh", "bash"]) {
      const state = parseObservation("h", execFileSync(shell, [], { input: script, encoding: "utf8" }));
      expect(state.sysctls[key]).toBe(actual);
      expect(state.sysctls["net/ipv4/conf/nosuch0/arp_ignore"]).toBeNull();
      expect(state.sysctls["net/ipv4/conf/lo/arp_ignore"]).toMatch(/^\d+$/);
    }
  });

  it("announce a new address in the background, after the last step, without holding the host lock", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-lock-"));
    try {
      const plan = {
        host: "director",
        wave: "directors" as const,
        steps: [
          { op: "add-address" as const, address: { interface: "eth0", address: "198.51.100.5", prefix: 32 } },
          { op: "write-file" as const, file: { path: "/etc/lvs-dr/restore.sh", mode: 0o644, content: "#!/bin/sh\n" } },
        ],
        expectedIpvsFingerprint: null,
        expectedIpvsListing: null,
      };
      const script = renderApplyScript(plan).split("/run/lvs-dr").join(dir).split("/etc/lvs-dr").join(dir);
      expect(script.indexOf("arping -q -U -c 1 -i eth0 -S 198.51.100.5 198.51.100.5")).toBeGreaterThan(script.indexOf("restore.sh"));
      // ip and arping stand in as functions: arping takes its second, as the real one does.
      for (const shell of ["sh", "bash"]) {
        execFileSync(shell, [], { input: `ip() { :; }\narping() { sleep 1; }\n${script}` });
        // The script is gone, arping still runs: the lock must be free (-n: fail, not wait).
        expect(() => execFileSync("flock", ["-n", join(dir, "lock"), "true"])).not.toThrow();
        rmSync(join(dir, "restore.sh"));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("write a new file in place and replace an existing one by rename, the ownership record always by rename", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-write-"));
    try {
      const file = { path: "/etc/lvs-dr/restore.sh", mode: 0o644, content: "#!/bin/sh\nset -eu\n" };
      const record = { version: 1 as const, cluster: "lab", host: "h", addresses: [], services: [], destinations: [], sysctls: {}, files: [] };
      const write = renderStepCommand({ op: "write-file", file });
      const own = renderStepCommand({ op: "record-ownership", record });
      const local = (script: string) => script.split("/etc/lvs-dr").join(dir).split("/var/lib/lvs-dr").join(dir);
      // mv stands in as a function that logs its calls, then renames.
      const run = (shell: string, script: string) => execFileSync(shell, [], { input: `set -eu\nmv() { echo mv >> ${dir}/calls; command mv "$@"; }\n${local(script)}` });
      const calls = () => (existsSync(join(dir, "calls")) ? readFileSync(join(dir, "calls"), "utf8").split("\n").filter(Boolean).length : 0);
      for (const shell of ["sh", "bash"]) {
        rmSync(join(dir, "restore.sh"), { force: true });
        rmSync(join(dir, "calls"), { force: true });
        run(shell, write);
        expect(readFileSync(join(dir, "restore.sh"), "utf8")).toBe(file.content);
        expect(calls()).toBe(0);
        writeFileSync(join(dir, "restore.sh"), "old\n");
        run(shell, write);
        expect(readFileSync(join(dir, "restore.sh"), "utf8")).toBe(file.content);
        expect(calls()).toBe(1);
        rmSync(join(dir, "ownership.json"), { force: true });
        run(shell, own);
        expect(JSON.parse(readFileSync(join(dir, "ownership.json"), "utf8"))).toEqual(record);
        expect(calls()).toBe(2);
        expect(existsSync(join(dir, "restore.sh.lvsdr-new")) || existsSync(join(dir, "ownership.json.lvsdr-new"))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("flush to disk after changing a file the host restores at boot, and only then", () => {
    const scripts = [...plan.waves, ...removal.waves].flatMap((w) => w.hosts).map((h) => ({ h, lines: renderApplyScript(h).split("\n") }));
    let withFiles = 0;
    for (const { h, lines } of scripts) {
      const touchesFiles = h.steps.some((s) => s.op === "write-file" || s.op === "remove-file" || s.op === "record-ownership");
      const at = lines.findIndex((l) => l.startsWith("sync -- "));
      expect(at >= 0).toBe(touchesFiles);
      if (!touchesFiles) continue;
      withFiles++;
      // after the last step, before the run reports done; what the steps wrote and the directories they changed, not the whole page cache
      const lastStep = lines.map((l, i) => (l.includes("@@lvsdr step") ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
      expect(at).toBeGreaterThan(lastStep);
      expect(at).toBeLessThan(lines.findIndex((l) => l.includes("@@lvsdr done")));
      for (const s of h.steps) if (s.op === "write-file") expect(lines[at]).toContain(` ${s.file.path} `);
      expect(lines[at]).toMatch(/ 2>\/dev\/null \|\| sync$/);
    }
    expect(withFiles).toBeGreaterThan(0);
    expect(renderApplyScript({ host: "d", wave: "directors", steps: [], expectedIpvsFingerprint: null, expectedIpvsListing: null })).not.toContain("sync");
  });

  it("tell a running systemd when the unit changed: reload after an apply, stop and reload after a destroy, in dash and in bash", () => {
    const scriptOf = (h: (typeof plan.waves)[number]["hosts"][number]) => renderApplyScript(h).split("\n");
    const reloadLine = (lines: string[]) => lines.find((l) => l.includes("daemon-reload"));
    const applyRs = plan.waves[0]!.hosts[0]!;
    const destroyRs = removal.waves.flatMap((w) => w.hosts).find((h) => h.host === applyRs.host)!;
    expect(reloadLine(scriptOf(applyRs))).toBeDefined();
    expect(reloadLine(scriptOf(destroyRs))).toBeDefined();
    // no unit step, no systemctl
    expect(
      renderApplyScript({
        host: "d",
        wave: "directors",
        steps: [{ op: "set-sysctl", sysctl: { key: "net/ipv4/conf/all/arp_ignore", value: "1" }, from: "0" }],
        expectedIpvsFingerprint: null,
        expectedIpvsListing: null,
      }),
    ).not.toContain("systemctl");
    // before sync, so the reload sees the files as they will be after it
    const lines = scriptOf(applyRs);
    expect(lines.findIndex((l) => l.includes("daemon-reload"))).toBeLessThan(lines.findIndex((l) => l.startsWith("sync -- ")));

    const dir = mkdtempSync(join(tmpdir(), "lvsdr-systemd-"));
    try {
      const run = (shell: string, line: string, opts: { systemd: boolean; unitExists: boolean }) => {
        rmSync(join(dir, "calls"), { force: true });
        rmSync(join(dir, "systemd"), { recursive: true, force: true });
        rmSync(join(dir, "unit"), { force: true });
        if (opts.systemd) mkdirSync(join(dir, "systemd"));
        if (opts.unitExists) writeFileSync(join(dir, "unit"), "");
        const local = line.split("/run/systemd/system").join(join(dir, "systemd")).split(hostPaths.systemdUnit).join(join(dir, "unit"));
        execFileSync(shell, [], { input: `set -eu\nsystemctl() { echo "systemctl $*" >> ${dir}/calls; }\n${local}\n` });
        return existsSync(join(dir, "calls")) ? readFileSync(join(dir, "calls"), "utf8").trim().split("\n") : [];
      };
      const line = reloadLine(lines)!;
      for (const shell of ["sh", "bash"]) {
        expect(run(shell, line, { systemd: true, unitExists: true })).toEqual(["systemctl daemon-reload"]);
        expect(run(shell, line, { systemd: true, unitExists: false })).toEqual(["systemctl stop lvs-dr.service", "systemctl daemon-reload"]);
        expect(run(shell, line, { systemd: false, unitExists: false })).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuse to apply when the IPVS table is not the one observed, by its text or by its fingerprint; its counters moving is no change", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-guard-"));
    try {
      // The kernel's listing of a table, as captured: its three header lines alone when empty.
      const captured = readFileSync(join(__dirname, "../../test/fixtures/director/proc-net-ip_vs.txt"), "utf8");
      const header = captured.split("\n").slice(0, 3).join("\n") + "\n";
      const run = (observed: string, onHost: string): number => {
        const expected = kernelTableListing(observed);
        const plan = { host: "director", wave: "directors" as const, steps: [], expectedIpvsFingerprint: textSha256(expected), expectedIpvsListing: expected };
        // The host's table is a file in the test directory; the host's paths move there too.
        const script = renderApplyScript(plan).split("/proc/net/ip_vs").join(join(dir, "ip_vs")).split("/run/lvs-dr").join(dir);
        writeFileSync(join(dir, "ip_vs"), onHost);
        const codes = ["sh", "bash"].map((shell) => spawnSync(shell, [], { input: script }).status);
        expect(codes[0]).toBe(codes[1]);
        return codes[0] ?? -1;
      };
      const destination = (n: number, weight: number, active: number) =>
        `  -> C63364${(10 + (n % 200)).toString(16).toUpperCase().padStart(2, "0")}:${(1000 + n).toString(16).toUpperCase().padStart(4, "0")}      Route   ${weight}      ${active}          0         `;
      const big = header + "TCP  C6336405:0050 rr  \n" + Array.from({ length: 1000 }, (_, i) => destination(i, 1, 0)).join("\n") + "\n";
      for (const table of [captured, header, big]) {
        expect(run(table, table)).toBe(0);
        // Connections come and go: the same table.
        expect(run(table, table.replace(/(Route\s+\d+\s+)0/g, "$17"))).toBe(0);
        // Another destination, or a weight changed by hand: not the table observed.
        expect(run(table, table + "TCP  C6336406:0050 rr  \n" + destination(1, 1, 0) + "\n")).toBe(76);
        if (table !== header) expect(run(table, table.replace(/Route {3}1 /, "Route   9 "))).toBe(76);
      }
      const script = (t: string) =>
        renderApplyScript({ host: "d", wave: "directors", steps: [], expectedIpvsFingerprint: textSha256(kernelTableListing(t)), expectedIpvsListing: kernelTableListing(t) });
      expect(script(big)).toContain("sha256sum");
      expect(script(captured)).not.toContain("sha256sum");
      // Neither an ipvsadm listing (half a second on a 10,000-entry table) nor, when empty, any process.
      expect(script(big)).not.toContain("ipvsadm");
      expect(script(header)).not.toMatch(/ipvsadm|grep|awk/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuse to apply, changing nothing, when the host is not as the plan observed it (its state check)", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-state-"));
    try {
      const scope = { interfaces: ["lo", "eth0"], sysctlKeys: ["net/ipv4/conf/all/arp_ignore"], files: [hostPaths.sysctlConf, hostPaths.ownership] };
      // The host's paths move into the test directory; `ip` prints what the host's addresses are, as
      // `ip -j addr show` (the observe script's batch) or `ip -o addr show` (the apply script's check).
      const local = (script: string) =>
        `ip() { if [ "$1" = -o ]; then cat ${dir}/addrs; else cat ${dir}/addrs.json; echo; fi; }\n` +
        script
          .split("/proc/sys/")
          .join(`${dir}/sys/`)
          .split(hostPaths.sysctlConf)
          .join(`${dir}/conf`)
          .split(hostPaths.ownership)
          .join(`${dir}/owner`)
          .split("/run/lvs-dr")
          .join(dir);
      type Addr = { dev: string; cidr: string; lifetime?: string };
      const host = (o: { addrs?: Addr[]; arpIgnore?: string; conf?: string | null } = {}) => {
        const addrs: Addr[] = [{ dev: "lo", cidr: "127.0.0.1/8" }, ...(o.addrs ?? [{ dev: "eth0", cidr: "198.51.100.10/24" }])];
        rmSync(join(dir, "sys"), { recursive: true, force: true });
        mkdirSync(join(dir, "sys/net/ipv4/conf/all"), { recursive: true });
        writeFileSync(join(dir, "sys/net/ipv4/conf/all/arp_ignore"), `${o.arpIgnore ?? "1"}\n`);
        writeFileSync(
          join(dir, "addrs"),
          addrs.map((a, i) => `${i + 1}: ${a.dev}    inet ${a.cidr} scope global ${a.dev}\\       valid_lft ${a.lifetime ?? "forever"} preferred_lft forever`).join("\n") + "\n",
        );
        const links = [...new Set(addrs.map((a) => a.dev))].map((dev) => ({
          ifname: dev,
          addr_info: addrs.filter((a) => a.dev === dev).map((a) => ({ family: "inet", local: a.cidr.split("/")[0], prefixlen: Number(a.cidr.split("/")[1]) })),
        }));
        writeFileSync(join(dir, "addrs.json"), JSON.stringify(links));
        rmSync(join(dir, "conf"), { force: true });
        if (o.conf !== null) writeFileSync(join(dir, "conf"), o.conf ?? "net.ipv4.conf.all.arp_ignore = 1\n");
      };
      host();
      const observeScript = renderObserveScript({ sysctlKeys: scope.sysctlKeys, filePaths: scope.files, tools: false, routeTargets: [], ipvs: false, linkTargets: {} });
      const output = execFileSync("sh", [], { input: local(observeScript), encoding: "utf8" })
        .split(`${dir}/sys/`)
        .join("/proc/sys/")
        .split(`${dir}/conf`)
        .join(hostPaths.sysctlConf);
      const observed = parseObservation("rs1", output, scope);
      expect(observed.state).toEqual({ ...scope, addresses: ["lo 127.0.0.1/8", "eth0 198.51.100.10/24"], sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
      const plan = {
        host: "rs1",
        wave: "prepare-real-servers" as const,
        steps: [{ op: "remove-file" as const, path: hostPaths.sysctlConf }],
        expectedIpvsFingerprint: null,
        expectedIpvsListing: null,
        expectedState: observed.state!,
      };
      const apply = (shell: string) => spawnSync(shell, [], { input: local(renderApplyScript(plan)), encoding: "utf8" });
      const eth0 = { dev: "eth0", cidr: "198.51.100.10/24" };
      const cases: [string, Parameters<typeof host>[0], number][] = [
        ["as observed", {}, 0],
        // What a plan does not depend on: lifetimes counting down, other interfaces coming and going, the order.
        [
          "lifetimes, other interfaces, order",
          {
            addrs: [
              { dev: "veth9", cidr: "10.1.0.1/24" },
              { ...eth0, lifetime: "3599sec" },
            ],
          },
          0,
        ],
        ["a VIP added on eth0", { addrs: [eth0, { dev: "eth0", cidr: "198.51.100.5/32" }] }, 78],
        ["the NIC's address gone", { addrs: [] }, 78],
        ["arp_ignore set back by hand", { arpIgnore: "0" }, 78],
        ["the tool's file edited", { conf: "net.ipv4.conf.all.arp_ignore = 2\n" }, 78],
        ["the tool's file removed", { conf: null }, 78],
      ];
      for (const shell of ["sh", "bash"]) {
        for (const [what, change, code] of cases) {
          host(change);
          const had = existsSync(join(dir, "conf"));
          const r = apply(shell);
          expect([what, r.status, r.stderr]).toEqual([what, code, code === 78 ? expect.stringContaining("this host changed since the plan was made") : ""]);
          if (code === 78) {
            expect(existsSync(join(dir, "conf"))).toBe(had);
            expect(r.stdout).not.toContain("@@lvsdr step");
          } else expect(existsSync(join(dir, "conf"))).toBe(false);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("held, make no change until told to go on stdin, and none at all when told to stop", () => {
    const dir = mkdtempSync(join(tmpdir(), "lvsdr-held-"));
    try {
      const plan = {
        host: "rs1",
        wave: "prepare-real-servers" as const,
        steps: [{ op: "remove-file" as const, path: hostPaths.sysctlConf }],
        expectedIpvsFingerprint: null,
        expectedIpvsListing: null,
      };
      const script = renderApplyScript(plan, { held: true }).split(hostPaths.sysctlConf).join(join(dir, "conf")).split("/run/lvs-dr").join(dir);
      expect(script.indexOf("@@lvsdr ready")).toBeGreaterThan(script.indexOf("flock -w"));
      for (const shell of ["sh", "bash"]) {
        for (const [answer, kept] of [
          [holdAnswers.stop, true],
          ["", true],
          [holdAnswers.go, false],
        ] as const) {
          writeFileSync(join(dir, "conf"), "x\n");
          const r = spawnSync(shell, ["-c", script], { input: answer, encoding: "utf8" });
          expect(r.status).toBe(0);
          expect(r.stdout.startsWith("@@lvsdr ready\n")).toBe(true);
          expect(existsSync(join(dir, "conf"))).toBe(kept);
          expect(r.stdout).toContain(kept ? "@@lvsdr held back" : "@@lvsdr done");
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("batch every run of IPVS steps into one ipvsadm -R process", () => {
    const director = renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts[0]!);
    expect(director.match(/^ipvsadm -R <</gm)).toHaveLength(1);
    expect(director).toContain("-A -t 198.51.100.5:80 -s rr\n-a -t 198.51.100.5:80 -r 198.51.100.10:80 -g -w 1\n");
  });

  it("announce a large IPVS batch in one progress line that names its range", () => {
    const hostPlan = plan.waves.find((w) => w.wave === "directors")!.hosts[0]!;
    const dest = hostPlan.steps.find((s) => s.op === "add-destination")!;
    if (dest.op !== "add-destination") throw new Error("no destination step");
    const many = Array.from({ length: 120 }, (_, k) => ({ ...dest, destination: { ...dest.destination, port: 1000 + k } }));
    const script = renderApplyScript({ ...hostPlan, steps: many });
    const progress = script.split("\n").filter((l) => l.includes("@@lvsdr step"));
    expect(progress).toEqual([
      expect.stringMatching(/^echo '@@lvsdr step 120\/120 120 IPVS changes in one batch \(steps 1-120: add real server .*:1000 .* \.\.\. add real server .*:1119 /),
    ]);
    expect(script.match(/^-a -t /gm)).toHaveLength(120);
  });

  it("take the host lock before anything else", () => {
    const rs = renderApplyScript(plan.waves[0]!.hosts[0]!);
    const lines = rs.split("\n");
    const lock = lines.findIndex((l) => l.includes("flock -w"));
    const firstStep = lines.findIndex((l) => l.includes("@@lvsdr step 1/"));
    expect(lock).toBeGreaterThan(0);
    expect(lock).toBeLessThan(firstStep);
    expect(lines[0]).toBe("set -eu");
  });

  it("a real server's script, as sent", () => {
    expect(renderApplyScript(plan.waves[0]!.hosts[0]!)).toMatchSnapshot();
  });

  it("the director's script, as sent", () => {
    expect(renderApplyScript(plan.waves.find((w) => w.wave === "directors")!.hosts[0]!)).toMatchSnapshot();
  });
});
