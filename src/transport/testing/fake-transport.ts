/**
 * A transport for unit tests of the engine and the CLI, without the lab. It implements
 * `Transport`, so the compiler holds it to the real one. Each host answers the observe script
 * with output captured from a real lab host (test/fixtures/observe), one capture per observation
 * in turn (fresh, then as applied, say); answers ARP probes for the addresses it is told are on
 * the segment; and "runs" an apply script by reporting its step lines as a host would, failing
 * at a given step if told to. It changes nothing and checks nothing: what the scripts do on a
 * host is the lab's to prove.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "../../config/connection";
import { loadCluster } from "../../config/load";
import { holdAnswers, marker } from "../../model/script-protocol";
import { TransportError, type ConnectOptions, type HostSession, type RunOptions, type ScriptResult, type Transport } from "../types";

export interface FakeHost {
  /** What the observe script prints, per observation in turn; the last one repeats. */
  observations: string[];
  /** The host refuses connections (its sshd stopped), with this message. */
  unreachable?: string;
  /** The apply script fails at this step (1-based), printing `message` on stderr. */
  failAtStep?: { step: number; message: string };
  /** The addresses that answer an ARP probe from this host (a director). */
  arpAnswers?: string[];
  /** The doctor probe from this host (a director): the MACs that answer for a VIP (none unless named). */
  fluxAnswers?: Record<string, string[]>;
}

/** The lab's real servers and their RIPs, as stacks/Pulumi.lab.yaml says. */
export const labRips: Readonly<Record<string, string>> = Object.fromEntries(
  loadCluster({ stack: "lab", stacksDir: join(__dirname, "../../../stacks") }).realServers.map((r) => [r.name, r.rip]),
);

/**
 * The lab stack's hosts as captured fresh: the director and rs1 from their captures; rs2, rs3
 * and rsvm1 are rs1's capture with its RIP replaced by theirs (the only line of it that names
 * rs1's address). `changes` adjusts hosts (one unreachable, one failing, ...).
 */
export function capturedLab(changes: Partial<Record<string, Partial<FakeHost>>> = {}): Record<string, FakeHost> {
  const fixture = (name: string) => readFileSync(join(__dirname, "../../../test/fixtures/observe", name), "latin1");
  const rs1 = fixture("real-server.txt");
  const hosts: Record<string, FakeHost> = { director: { observations: [fixture("director.txt")], arpAnswers: Object.values(labRips) } };
  for (const [name, rip] of Object.entries(labRips)) hosts[name] = { observations: [rs1.replace(labRips.rs1!, rip)] };
  for (const [name, change] of Object.entries(changes)) hosts[name] = { ...hosts[name]!, ...change };
  return hosts;
}

export interface SentScript {
  host: string;
  kind: "observe" | "arp-probe" | "doctor-probe" | "apply";
  script: string;
  /** For a held apply script: what it was told on stdin ("go" or "stop"), and when. */
  told?: string;
  toldAt?: number;
  /** When it was sent and when it ended, on the transport's own clock (a count of events). */
  sentAt: number;
  endedAt?: number;
}

export class FakeTransport implements Transport {
  /** Every script sent, in the order the hosts received them. */
  readonly sent: SentScript[] = [];
  private readonly observed = new Map<string, number>();
  private clock = 0;

  constructor(private readonly hosts: Record<string, FakeHost>) {}

  async connect(host: string, _connection: Connection, _options?: ConnectOptions): Promise<HostSession> {
    const fake = this.hosts[host];
    if (!fake) throw new TransportError(host, "connect", "no such host in the fake transport");
    if (fake.unreachable !== undefined) throw new TransportError(host, "connect", fake.unreachable);
    return {
      host,
      hostKeyFingerprint: "SHA256:fake",
      runScript: (script, options) => this.run(host, fake, script, options),
      close: async () => undefined,
    };
  }

  private async run(host: string, fake: FakeHost, script: string, options: RunOptions = {}): Promise<ScriptResult> {
    if (script.includes(`echo '${marker} observe `)) {
      this.sent.push({ host, kind: "observe", script, sentAt: ++this.clock });
      const n = this.observed.get(host) ?? 0;
      this.observed.set(host, n + 1);
      return { code: 0, stdout: fake.observations[Math.min(n, fake.observations.length - 1)]!, stderr: "" };
    }
    if (script.includes(`echo '${marker} probe `)) {
      this.sent.push({ host, kind: "arp-probe", script, sentAt: ++this.clock });
      const targets = /for t in ([^;]*); do/.exec(script)?.[1]?.split(" ") ?? [];
      const answers = new Set(fake.arpAnswers ?? []);
      const lines = [`${marker} probe 1`, ...targets.map((t) => `${marker} arp ${t} ${answers.has(t) ? "ok" : "fail"}`), `${marker} end`];
      return { code: 0, stdout: `${lines.join("\n")}\n`, stderr: "" };
    }
    if (script.includes(`echo '${marker} doctor-probe `)) {
      this.sent.push({ host, kind: "doctor-probe", script, sentAt: ++this.clock });
      return { code: 0, stdout: doctorProbeAnswers(script, fake.fluxAnswers ?? {}), stderr: "" };
    }
    const sent: SentScript = { host, kind: "apply", script, sentAt: ++this.clock };
    this.sent.push(sent);
    const result = await this.apply(fake, sent, options);
    sent.endedAt = ++this.clock;
    return result;
  }

  private async apply(fake: FakeHost, sent: SentScript, options: RunOptions): Promise<ScriptResult> {
    if (options.input) {
      sent.told = (await options.input).trim();
      sent.toldAt = ++this.clock;
      if (`${sent.told}\n` !== holdAnswers.go) return { code: 0, stdout: `${marker} held back\n`, stderr: "" };
    }
    const script = sent.script;
    // The step lines the script would print, in order (echo'd one by one or printf'd in a batch).
    const steps = [...script.matchAll(new RegExp(`'(${marker} step \\d+/\\d+ [^']*)'`, "g"))].map((m) => m[1]!);
    const out: string[] = [];
    for (const [i, line] of steps.entries()) {
      out.push(line);
      options.onLine?.(line);
      if (fake.failAtStep?.step === i + 1) return { code: 1, stdout: `${out.join("\n")}\n`, stderr: `${fake.failAtStep.message}\n` };
    }
    return { code: 0, stdout: out.length ? `${out.join("\n")}\n` : "", stderr: "" };
  }
}

/** What the doctor probe prints, as Habets arping and ndisc6 would: the named MACs answer, every DR path answers. */
function doctorProbeAnswers(script: string, flux: Record<string, string[]>): string {
  const out = [`${marker} doctor-probe 1`];
  for (const m of script.matchAll(new RegExp(`'${marker} (flux4|flux6) ([^']+)'`, "g"))) {
    const [, kind, vip] = m as unknown as [string, string, string];
    const macs = flux[vip] ?? [];
    if (kind === "flux4")
      out.push(
        `${marker} flux4 ${vip} ${macs.length ? 0 : 1}`,
        `ARPING ${vip}`,
        ...(macs.length ? macs.map((mac, i) => `42 bytes from ${mac} (${vip}): index=${i} time=20.000 usec`) : ["Timeout", "Timeout"]),
      );
    else
      out.push(
        `${marker} flux6 ${vip} ${macs.length ? 0 : 2}`,
        `Soliciting ${vip} (${vip}) on eth0...`,
        ...(macs.length ? macs.map((mac) => `Target link-layer address: ${mac.toUpperCase()}`) : ["Timed out.", "Timed out.", "No response."]),
      );
  }
  for (const m of script.matchAll(new RegExp(`'${marker} path ([^' ]+) ([^' ]+)'`, "g"))) {
    out.push(`${marker} path ${m[1]} ${m[2]} 0`, `ARPING ${m[2]}`, `62 bytes from ${m[1]} (${m[2]}): icmp_seq=0 time=20.000 usec`);
  }
  return `${[...out, `${marker} end`].join("\n")}\n`;
}
