/**
 * Host operations for a whole cluster: connect once per host, observe every host in one
 * round trip each, check preflight, plan, and apply the plan wave by wave, each host's wave
 * as one locked script. Nothing here decides what to change: that is the plan's job.
 */
import type { Cluster } from "../config/schema";
import { desiredClusterState, type DesiredClusterState, type HostTarget } from "../model/desired";
import type { DesiredHostState, ObservedHostState } from "../model/host-state";
import type { HostWavePlan, Wave } from "../model/steps";
import { describeStep } from "../render/describe";
import { holdAnswers, marker, parseStepLine, refusalCodes } from "../model/script-protocol";
import { renderApplyScript } from "../render/apply-script";
import { travelsInline } from "../transport/invocation";
import { clusterPlanOf, planCluster, planClusterHost, type ClusterPlan, type NotReached } from "../plan/cluster-plan";
import type { HostPlan } from "../plan/host-plan";
import type { HostDrift } from "../plan/drift";
import { holdBackUnready, realServerNotReady, type HeldBack } from "../plan/hold-back";
import { asProblem, foreignOwnership, preflightHost, ripsToJudge, type PreflightProblem } from "../plan/preflight";
import { fluxAnswers, fluxFinding } from "../plan/doctor";
import type { DoctorProbeResult } from "../parse/doctor";
import type { DoctorProbeRequest } from "../render/doctor-probe";
import { runOnHosts, SessionPool, type Settled } from "../transport/pool";
import type { ConnectOptions, HostSession, Transport } from "../transport/types";
import { observeHost, probeArp, probeDoctor, type DoctorObserve } from "./observe";

export type ProgressEvent =
  | { host: string; kind: "connected" | "observed" }
  | { host: string; kind: "step"; wave: Wave; index: number; total: number; description: string }
  | { host: string; kind: "wave-done"; wave: Wave }
  | { host: string; kind: "warning"; message: string }
  | { host: string; kind: "failed"; message: string };

export interface EngineOptions {
  transport: Transport;
  /** Hosts worked on at once (observe, apply). */
  concurrency?: number;
  /** SSH handshakes in progress at once. */
  connectConcurrency?: number;
  connectOptions?: ConnectOptions;
  onProgress?: (event: ProgressEvent) => void;
  /** Only these hosts (by name); the others are neither contacted nor changed. */
  hosts?: string[];
  /**
   * Aborted: no host's script starts after this, the scripts already running finish (each is
   * one locked script on its host, so no lock stays held), and the apply rejects with
   * `InterruptedError`.
   */
  signal?: AbortSignal;
}

export class PreflightError extends Error {
  constructor(readonly problems: PreflightProblem[]) {
    super(`preflight failed, nothing was changed:\n${problems.map((p) => `  ${p.host}: ${p.check}: ${p.message}`).join("\n")}`);
    this.name = "PreflightError";
  }
}

export interface HostFailure {
  host: string;
  wave: Wave;
  message: string;
}

export class ApplyError extends Error {
  constructor(
    readonly failures: HostFailure[],
    readonly completed: HostApplyResult[],
  ) {
    super(`apply stopped:\n${failures.map((f) => `  ${f.host} (${f.wave}): ${f.message}`).join("\n")}`);
    this.name = "ApplyError";
  }
}

/** The run was interrupted (`signal`): what was done, what failed, and what was never started. */
export class InterruptedError extends Error {
  constructor(
    readonly completed: HostApplyResult[],
    readonly failures: HostFailure[],
    readonly notStarted: { host: string; wave: Wave }[],
  ) {
    super(`interrupted: ${completed.length} host wave(s) done, ${notStarted.length} not started${failures.length ? `, ${failures.length} failed` : ""}`);
    this.name = "InterruptedError";
  }
}

/** A host's script the run did not start because it was interrupted. */
const notStarted = new Error("not started: the run was interrupted");

export interface HostApplyResult {
  host: string;
  wave: Wave;
  steps: number;
  warnings: string[];
}

export interface ApplyReport {
  plan: ClusterPlan;
  applied: HostApplyResult[];
  /**
   * Real servers whose prepare script failed while the run went on without them, and the
   * destinations the directors then held back for it (planned again after that wave).
   */
  failures: HostFailure[];
  heldBack: HeldBack[];
  /** Where the time went, in milliseconds: observing (with connecting), planning (with the directors' ARP probes, if any), each wave. */
  timings: Record<string, number>;
}

/** A run against one cluster: sessions are opened once and reused for every round trip. */
export class ClusterRun {
  readonly desired: DesiredClusterState;
  /** The whole cluster, when `hosts` limits the run: the real servers outside it are checked before a director registers them. */
  private readonly cluster: DesiredClusterState;
  private readonly sessions: SessionPool;
  private readonly targets: Map<string, HostTarget>;
  private readonly concurrency: number;

  constructor(
    cluster: Cluster | DesiredClusterState,
    private readonly options: EngineOptions,
  ) {
    const desired = "hosts" in cluster && "targets" in cluster ? cluster : desiredClusterState(cluster as Cluster);
    const only = options.hosts ? new Set(options.hosts) : null;
    if (only) {
      const unknown = [...only].filter((h) => !desired.hosts.some((d) => d.host === h));
      if (unknown.length) throw new Error(`no such host in the cluster: ${unknown.join(", ")}`);
    }
    this.cluster = desired;
    this.desired = only ? { ...desired, hosts: desired.hosts.filter((h) => only.has(h.host)), targets: desired.targets.filter((t) => only.has(t.name)) } : desired;
    this.targets = new Map(desired.targets.map((t) => [t.name, t]));
    this.concurrency = Math.max(1, options.concurrency ?? 32);
    this.sessions = new SessionPool(options.transport, {
      connectConcurrency: options.connectConcurrency ?? 16,
      ...(options.connectOptions ? { connectOptions: options.connectOptions } : {}),
    });
  }

  private get interrupted(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  private emit(event: ProgressEvent): void {
    this.options.onProgress?.(event);
  }

  private async session(host: string): Promise<HostSession> {
    const target = this.targets.get(host);
    if (!target) throw new Error(`no such host ${host}`);
    const fresh = !this.sessions.hosts.includes(host);
    const session = await this.sessions.session(host, target.connection);
    if (fresh) this.emit({ host, kind: "connected" });
    return session;
  }

  /**
   * Observes every host, one round trip each; rejects with every host's failure named. With
   * `preflight`, hosts also report what preflight checks: their commands, and on directors the
   * routes to their RIPs and which of them answer ARP. A host for which `release` says that no
   * later round trip needs it closes its session as soon as it is observed, while slower hosts
   * still work, rather than with all the others at the end.
   */
  async observe(options: ObserveOptions = {}): Promise<Map<string, ObservedHostState>> {
    const { observed, notReached } = await this.observeEach(options);
    if (notReached.length) throw notObserved(notReached);
    return observed;
  }

  /** Observes every host it can: the hosts observed, and the others with why (`observe` rejects instead). */
  async observeEach(options: ObserveOptions = {}): Promise<{ observed: Map<string, ObservedHostState>; notReached: NotReached[] }> {
    const hosts = options.only ? this.desired.hosts.filter((h) => options.only!.includes(h.host)) : this.desired.hosts;
    const results = await runOnHosts(hosts, this.concurrency, async (host) => {
      const doctor = options.doctor?.(host);
      const observed = await observeHost(await this.session(host.host), host, {
        preflight: options.preflight ?? false,
        forPlan: options.forPlan ?? false,
        ...(doctor ? { doctor } : {}),
      });
      this.emit({ host: host.host, kind: "observed" });
      if (options.release?.(host, observed)) await this.sessions.release(host.host);
      return observed;
    });
    const observed = new Map<string, ObservedHostState>();
    const notReached: NotReached[] = [];
    results.forEach((r, i) => {
      const host = hosts[i]!.host;
      if (r.ok) observed.set(host, r.value);
      else notReached.push({ host, message: withoutHost(host, r.error) });
    });
    return { observed, notReached };
  }

  /**
   * The live ARP half of the same-broadcast-domain check (`ripsToJudge` says which RIPs count):
   * a RIP without a resolved neighbour entry is asked, in one more round trip to its director,
   * only when there is one.
   */
  private async judgeNewRealServers(plan: ClusterPlan, observed: Map<string, ObservedHostState>): Promise<void> {
    const directors = this.desired.hosts.filter((h) => h.role === "director" && observed.has(h.host));
    const results = await runOnHosts(directors, this.concurrency, async (director) => {
      const seen = observed.get(director.host)!;
      const steps = plan.waves.flatMap((w) => w.hosts.filter((h) => h.host === director.host).flatMap((h) => h.steps));
      const { answered, ask } = ripsToJudge(director, seen, steps);
      const replies = ask.length ? await probeArp(await this.session(director.host), director, ask) : {};
      seen.arpReplies = Object.fromEntries([...answered.map((rip) => [rip, true] as const), ...ask.map((rip) => [rip, replies[rip] === true] as const)]);
    });
    const failed = results.flatMap((r, i) => (r.ok ? [] : [`${directors[i]!.host}: ${withoutHost(directors[i]!.host, r.error)}`]));
    if (failed.length) throw new Error(`could not probe ARP from every director:\n  ${failed.join("\n  ")}`);
  }

  /**
   * Before a director takes a VIP (an add-address step in its plan): does another host already
   * answer ARP or neighbour discovery for it? One more round trip to that director only, which
   * asks once and waits up to 1 s for answers; a plan that adds no VIP costs nothing. A VIP VRRP adds is not
   * judged here (the doctor asks about every VIP).
   */
  private async fluxOfNewVips(plan: ClusterPlan, observed: Map<string, ObservedHostState>): Promise<PreflightProblem[]> {
    const asks = this.desired.hosts.flatMap((director) => {
      if (director.role !== "director" || !observed.has(director.host)) return [];
      const steps = plan.waves.flatMap((w) => w.hosts.filter((h) => h.host === director.host).flatMap((h) => h.steps));
      const vips = [...new Set(steps.flatMap((s) => (s.op === "add-address" && s.address.interface !== "lo" ? [s.address.address] : [])))];
      return vips.length ? [{ director, vips }] : [];
    });
    const results = await runOnHosts(asks, this.concurrency, async ({ director, vips }) =>
      this.doctorProbe(director.host, { interface: director.interface, dip: null, vips, paths: [], fluxRequests: 1 }),
    );
    const problems: PreflightProblem[] = [];
    const failed: string[] = [];
    results.forEach((r, i) => {
      const { director } = asks[i]!;
      if (!r.ok) return failed.push(`${director.host}: ${withoutHost(director.host, r.error)}`);
      // A probe that could not run (arping or ndisc6 missing) blocks nothing: the doctor says so.
      for (const flux of r.value.flux.filter((f) => f.error === null)) {
        for (const { mac, owner } of fluxAnswers(director, flux.vip, flux.answers, this.cluster, observed)) problems.push(asProblem(fluxFinding(director, flux.vip, mac, owner)));
      }
    });
    if (failed.length) throw new Error(`could not ask the segment about new VIPs from every director:\n  ${failed.join("\n  ")}`);
    return problems;
  }

  /** Runs the doctor's probe on a director (changing nothing). */
  async doctorProbe(director: string, request: DoctorProbeRequest): Promise<DoctorProbeResult> {
    return probeDoctor(await this.session(director), director, request);
  }

  /**
   * The real servers this run's directors serve that the run does not include, observed (read
   * only): RIP -> name and why each is not ready to be registered. Empty when the run has them all.
   */
  private async realServersNotReady(): Promise<Map<string, { realServer: string; reason: string }>> {
    const inRun = new Set(this.desired.hosts.map((h) => h.host));
    const rips = new Set(this.desired.hosts.filter((h) => h.role === "director").flatMap((h) => h.destinations.map((d) => d.address)));
    const outside = this.cluster.hosts.filter((h) => h.role === "real-server" && !inRun.has(h.host) && h.ownAddresses.some((a) => rips.has(a.address)));
    const results = await runOnHosts(outside, this.concurrency, async (host) => {
      const observed = await observeHost(await this.session(host.host), host, { preflight: false });
      await this.sessions.release(host.host);
      return realServerNotReady(host, observed);
    });
    const notReady = new Map<string, { realServer: string; reason: string }>();
    results.forEach((r, i) => {
      const host = outside[i]!;
      const reason = r.ok ? r.value : `it could not be observed: ${(r.error as Error).message}`;
      if (reason !== null) for (const rip of host.ownAddresses) notReady.set(rip.address, { realServer: host.host, reason });
    });
    return notReady;
  }

  /** Preflight on every host observed, from an observation made with `preflight`. */
  preflight(observed: ReadonlyMap<string, ObservedHostState>): PreflightProblem[] {
    return this.desired.hosts.flatMap((h) => (observed.has(h.host) ? preflightHost(h, observed.get(h.host)!) : []));
  }

  async drift(): Promise<HostDrift[]> {
    return planCluster(this.desired, await this.observe({ release: () => true })).drift;
  }

  /** Drift of every host reached, and the hosts not reached with why (`drift` rejects instead). */
  async driftEach(): Promise<{ drift: HostDrift[]; notReached: NotReached[] }> {
    const { observed, notReached } = await this.observeEach({ release: () => true });
    const reached = this.desired.hosts.filter((h) => observed.has(h.host));
    return {
      drift: clusterPlanOf(
        this.desired,
        reached.map((h) => planClusterHost(h, observed.get(h.host)!)),
        [],
        notReached,
      ).drift,
      notReached,
    };
  }

  /**
   * Observes every host and plans. With `partial`, a host that cannot be observed is left out and
   * named in `plan.notReached`: its directors do not register it (unless they already do), and
   * with a director not reached no real server is released. Without, it rejects.
   */
  async plan(
    options: { destroy?: boolean; partial?: boolean; notReady?: ReadonlyMap<string, { realServer: string; reason: string }> } = {},
  ): Promise<{ plan: ClusterPlan; observed: Map<string, ObservedHostState>; problems: PreflightProblem[]; timings: Record<string, number> }> {
    const destroy = options.destroy ?? false;
    const started = Date.now();
    // Each real server is planned as soon as it is observed (its plan depends on its own
    // observation only); one with nothing to do needs no session after that. Directors are
    // planned once every real server was reached or not.
    const hostPlans = new Map<string, HostPlan>();
    const notReady = destroy ? new Map<string, { realServer: string; reason: string }>() : await this.realServersNotReady();
    for (const [rip, why] of options.notReady ?? []) notReady.set(rip, why);
    const idle = (host: DesiredHostState, seen: ObservedHostState) => {
      if (host.role === "director") return false;
      const planned = planClusterHost(host, seen, { destroy });
      hostPlans.set(host.host, planned);
      return planned.waves.length === 0;
    };
    const { observed, notReached } = await this.observeEach({ preflight: !destroy, forPlan: true, release: idle });
    if (notReached.length && !options.partial) throw notObserved(notReached);
    const observedAt = Date.now();
    for (const n of notReached) {
      const host = this.desired.hosts.find((h) => h.host === n.host)!;
      // Held back by every RIP it has: a dual-stack real server is registered by each.
      if (host.role === "real-server" && !destroy)
        for (const rip of host.ownAddresses) notReady.set(rip.address, { realServer: host.host, reason: `it was not reached (${n.message})` });
    }
    const heldBack: HeldBack[] = [];
    for (const director of this.desired.hosts.filter((h) => h.role === "director" && observed.has(h.host))) {
      const seen = observed.get(director.host)!;
      const held = notReady.size ? holdBackUnready(director, seen, notReady) : { desired: director, heldBack: [] };
      heldBack.push(...held.heldBack);
      hostPlans.set(director.host, planClusterHost(held.desired, seen, { destroy }));
    }
    const reached = this.desired.hosts.filter((h) => observed.has(h.host));
    const plan = clusterPlanOf(
      this.desired,
      reached.map((h) => hostPlans.get(h.host)!),
      heldBack,
      notReached,
    );
    const timings: Record<string, number> = { observe: observedAt - started };
    const flux = destroy ? [] : (await Promise.all([this.judgeNewRealServers(plan, observed), this.fluxOfNewVips(plan, observed)]))[1];
    timings.plan = Date.now() - observedAt;
    // Destroy skips the checks a change needs, but never touches another cluster's host.
    const problems = destroy ? reached.flatMap((h) => foreignOwnership(h, observed.get(h.host)!, "destroy it")) : [...this.preflight(observed), ...flux];
    return { plan, observed, problems, timings };
  }

  /**
   * Observe, plan, preflight every host (with live ARP probes of new real servers), then run the waves. A failed
   * preflight on any host changes nothing on any host; a failed wave stops before the next.
   */
  async apply(options: { destroy?: boolean; waves?: readonly Wave[] } = {}): Promise<ApplyReport> {
    const { plan, problems, timings } = await this.plan({ destroy: options.destroy ?? false });
    if (problems.length) throw new PreflightError(problems);
    return this.applyPlanned(plan, { ...(options.waves ? { waves: options.waves } : {}), timings });
  }

  /**
   * Checks, one round trip per host and changing nothing, that every host the plan changes is
   * still as it was observed for the plan (its state digest, and a director's IPVS table): the
   * first script of each host, with no steps. Returns the hosts that changed, with why. Worth its
   * round trip when time passed since the plan (a question answered, a saved plan); the scripts
   * check again before they change anything.
   */
  async verifyPlanned(plan: ClusterPlan): Promise<{ host: string; message: string }[]> {
    const firsts = plan.hosts.flatMap((h) => (h.waves[0] ? [{ ...h.waves[0], steps: [] }] : []));
    const results = await runOnHosts(firsts, this.concurrency, async (check) => {
      const result = await (await this.session(check.host)).runScript(renderApplyScript(check), { timeoutMs: 60_000 });
      return result.code === 0 ? null : scriptFailure(check, result);
    });
    return results.flatMap((r, i) => {
      const host = firsts[i]!.host;
      if (!r.ok) return [{ host, message: (r.error as Error).message }];
      return r.value === null ? [] : [{ host, message: r.value }];
    });
  }

  /**
   * Runs a plan made before (by `plan`, in this run or a saved one): each host's first script
   * refuses, changing nothing there, if the host is no longer as the plan saw it. A failed wave
   * stops before the next. With `goOnWithoutFailed`, a failure in the real servers' prepare
   * does not: the directors are planned again without the real servers that failed (one they
   * already serve stays as it is), the run goes on, and the report names them.
   */
  async applyPlanned(plan: ClusterPlan, options: { waves?: readonly Wave[]; timings?: Record<string, number>; goOnWithoutFailed?: boolean } = {}): Promise<ApplyReport> {
    const timings = options.timings ?? {};
    const applied: HostApplyResult[] = [];
    // A caller that orders hosts itself (Pulumi resources with dependencies) runs one wave at a time.
    const waves = options.waves ? plan.waves.filter((w) => options.waves!.includes(w.wave)) : plan.waves;
    let started: HeldWave | null = null;
    for (const [k, wave] of waves.entries()) {
      // The directors' scripts start with the wave before theirs and wait, holding their lock,
      // until it succeeded: their round trip and checks overlap it (directors are few).
      const next = waves[k + 1];
      const nextHeld = next?.wave === "directors" && !next.hosts.some((h) => wave.hosts.some((w) => w.host === h.host)) ? this.startHeld(next, waveTimeoutMs(wave)) : null;
      const waveStarted = Date.now();
      const results = started
        ? await started.release(!this.interrupted)
        : await runOnHosts(wave.hosts, this.concurrency, (hostPlan) => (this.interrupted ? Promise.reject(notStarted) : this.applyHostWave(hostPlan)));
      started = nextHeld;
      timings[wave.wave] = Date.now() - waveStarted;
      const failures = results.flatMap((r, i) => (r.ok || r.error === notStarted ? [] : [{ host: wave.hosts[i]!.host, wave: wave.wave, message: (r.error as Error).message }]));
      for (const r of results) if (r.ok && r.value.steps > 0) applied.push(r.value);
      if (this.interrupted) {
        // Scripts already running finished (each host's wave is one locked script); nothing else starts.
        await started?.release(false);
        const done = new Set(applied.filter((a) => a.wave === wave.wave).map((a) => a.host));
        const failed = new Set(failures.map((f) => f.host));
        const left = [...wave.hosts.filter((h) => !done.has(h.host) && !failed.has(h.host)), ...waves.slice(k + 1).flatMap((w) => w.hosts)];
        throw new InterruptedError(
          applied,
          failures,
          left.map((h) => ({ host: h.host, wave: h.wave })),
        );
      }
      if (failures.length) {
        // The held scripts end without changing anything before the failure is reported.
        await started?.release(false);
        for (const f of failures) this.emit({ host: f.host, kind: "failed", message: f.message });
        if (options.goOnWithoutFailed && wave.wave === "prepare-real-servers" && k < waves.length - 1 && !options.waves) return this.goOnWithout(failures, applied, timings);
        throw new ApplyError(failures, applied);
      }
    }
    return { plan, applied, failures: [], heldBack: [], timings };
  }

  /**
   * After real servers failed their prepare: plans again from a fresh observation, with those
   * real servers held back by their directors, and runs what follows the prepare wave. Stops
   * instead if the new observation finds a problem the first did not.
   */
  private async goOnWithout(failures: HostFailure[], applied: HostApplyResult[], timings: Record<string, number>): Promise<ApplyReport> {
    const failed = new Map<string, { realServer: string; reason: string }>();
    for (const f of failures) {
      const host = this.desired.hosts.find((h) => h.host === f.host)!;
      for (const rip of host.ownAddresses) failed.set(rip.address, { realServer: f.host, reason: "its prepare failed" });
    }
    const again = await this.plan({ partial: true, notReady: failed });
    if (again.problems.length) throw new ApplyError(failures, applied);
    const failedHosts = new Set(failures.map((f) => f.host));
    const rest = {
      ...again.plan,
      waves: again.plan.waves.filter((w) => w.wave !== "prepare-real-servers").map((w) => ({ ...w, hosts: w.hosts.filter((h) => !failedHosts.has(h.host)) })),
    };
    const tail = await this.applyPlanned(rest, { timings });
    const heldForFailure = again.plan.heldBack.filter((h) => failedHosts.has(h.realServer));
    return { plan: again.plan, applied: [...applied, ...tail.applied], failures, heldBack: heldForFailure, timings };
  }

  /** Starts a wave's scripts held: each waits for `release` before changing anything. */
  private startHeld(wave: ClusterPlan["waves"][number], waitMs: number): HeldWave {
    let open: (go: boolean) => void = () => undefined;
    const gate = new Promise<boolean>((r) => (open = r));
    const results = runOnHosts(wave.hosts, this.concurrency, (hostPlan) => this.applyHostWave(hostPlan, { gate, waitMs }));
    return {
      release: (go) => {
        open(go);
        return results;
      },
    };
  }

  private async applyHostWave(hostPlan: HostWavePlan, hold?: { gate: Promise<boolean>; waitMs: number }): Promise<HostApplyResult> {
    const host = this.desired.hosts.find((h) => h.host === hostPlan.host) as DesiredHostState;
    const warnings: string[] = [];
    const heldBack: HostApplyResult = { host: host.host, wave: hostPlan.wave, steps: 0, warnings };
    let script = renderApplyScript(hostPlan, { held: hold !== undefined });
    const timeoutMs = waveTimeoutMs({ hosts: [hostPlan] }) + (hold?.waitMs ?? 0);
    let input: Promise<string> | undefined;
    if (hold && travelsInline(script, timeoutMs)) {
      input = hold.gate.then((go) => (go ? holdAnswers.go : holdAnswers.stop));
    } else if (hold) {
      // Too large to travel in the exec request: it reads itself from stdin, so it starts when released.
      if (!(await hold.gate)) return heldBack;
      script = renderApplyScript(hostPlan);
    }
    const session = await this.session(hostPlan.host);
    const result = await session.runScript(script, {
      timeoutMs,
      ...(input ? { input } : {}),
      onLine: (line) => {
        const step = parseStepLine(line);
        if (step) {
          this.emit({ host: host.host, kind: "step", wave: hostPlan.wave, ...step });
        } else if (line.startsWith(`${marker} warn `)) {
          const message = line.slice(`${marker} warn `.length);
          warnings.push(message);
          this.emit({ host: host.host, kind: "warning", message });
        }
      },
    });
    if (result.code !== 0) throw new Error(scriptFailure(hostPlan, result));
    if (result.stdout.includes(`${marker} held back`)) return heldBack;
    this.emit({ host: host.host, kind: "wave-done", wave: hostPlan.wave });
    return { host: host.host, wave: hostPlan.wave, steps: hostPlan.steps.length, warnings };
  }

  async close(): Promise<void> {
    await this.sessions.closeAll();
  }
}

interface HeldWave {
  /** Lets the held scripts go on (or end, changing nothing) and resolves with their results. */
  release(go: boolean): Promise<Settled<HostApplyResult>[]>;
}

/** The longest a wave's script may take: two minutes, and every drain wait it holds. */
function waveTimeoutMs(wave: { hosts: readonly HostWavePlan[] }): number {
  const waits = Math.max(0, ...wave.hosts.map((h) => h.steps.reduce((s, step) => s + (step.op === "wait-drained" ? step.timeoutSeconds : 0), 0)));
  return 120_000 + waits * 1000;
}

/** An error's message without the host a transport error leads with. */
function withoutHost(host: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.startsWith(`${host}: `) ? message.slice(host.length + 2) : message;
}

/** Every host's failure, named. */
function notObserved(notReached: readonly NotReached[]): Error {
  return new Error(`could not observe every host:\n  ${notReached.map((n) => `${n.host}: ${n.message}`).join("\n  ")}`);
}

interface ObserveOptions {
  preflight?: boolean;
  /** The observation a plan is made from: with the hosts' state digests. */
  forPlan?: boolean;
  /** True when the host needs no later round trip: its session is closed at once. */
  release?: (host: DesiredHostState, observed: ObservedHostState) => boolean;
  only?: string[];
  /** The doctor's extra reads for a host (listening sockets, offloads, forwarding settings). */
  doctor?: (host: DesiredHostState) => DoctorObserve;
}

/** Why an apply script failed: a refusal (nothing changed) by its exit code, or the step it stopped at. */
function scriptFailure(plan: HostWavePlan, result: { code: number; stdout: string; stderr: string }): string {
  switch (result.code) {
    case refusalCodes.lockHeld:
      return "another lvs-dr run holds the lock on this host";
    case refusalCodes.ipvsChanged:
      return "the IPVS table changed since it was observed; nothing was changed on this host: plan again";
    case refusalCodes.hostChanged:
      return "this host changed since the plan was made (its addresses, kernel settings or the tool's files); nothing was changed on it: plan again";
    case refusalCodes.lockUnsafe: {
      const why = result.stderr.trim().split("\n").slice(-1)[0]?.replace(`${marker} error `, "") ?? "";
      return `the lock on this host is not root's alone (another user could hold it and block every apply): ${why || "nothing was changed on this host"}`;
    }
    default:
      return lastStepFailure(plan, result.stdout, result.stderr, result.code);
  }
}

function lastStepFailure(plan: HostWavePlan, stdout: string, stderr: string, code: number): string {
  const steps = stdout.split("\n").filter((l) => l.startsWith(`${marker} step `));
  const last = steps[steps.length - 1];
  const index = last ? Number(/step (\d+)\//.exec(last)?.[1]) : 0;
  const step = index > 0 ? plan.steps[index - 1] : undefined;
  const err = stderr.trim().split("\n").slice(-3).join(" | ");
  return `exited ${code}${step ? ` at step ${index}/${plan.steps.length} (${describeStep(step)})` : " before the first step"}${err ? `: ${err}` : ""}`;
}

/** Convenience: one run, closed afterwards. */
export async function withClusterRun<T>(cluster: Cluster | DesiredClusterState, options: EngineOptions, fn: (run: ClusterRun) => Promise<T>): Promise<T> {
  const run = new ClusterRun(cluster, options);
  try {
    return await fn(run);
  } finally {
    await run.close();
  }
}
