/** How plans and drift read on a terminal and in JSON. Collect-then-print: these only format. */
import type { ClusterPlan, NotReached } from "../plan/cluster-plan";
import type { DriftItem, HostDrift } from "../plan/drift";
import { describeStep } from "../render/describe";
import { takesAway, type Step } from "../model/steps";
import type { RenderedFile } from "../model/host-state";
import type { ClusterHealth } from "../plan/health";

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatDrift(drift: HostDrift[]): string {
  const items = drift.flatMap((d) => d.items);
  const drifted = drift.filter((d) => !d.clean).map((d) => d.host);
  const lines: string[] = [];
  if (items.length) {
    lines.push(table([["HOST", "STATUS", "KIND", "ITEM", "EXPECTED", "ACTUAL"], ...items.map((i) => [i.host, i.status, i.kind, i.key, i.expected ?? "-", i.actual ?? "-"])]), "");
  }
  const unmanaged = items.filter((i) => i.status === "unmanaged").length;
  lines.push(
    drifted.length === 0
      ? `no drift on ${drift.length} host${drift.length === 1 ? "" : "s"}${unmanaged ? ` (${unmanaged} unmanaged item${unmanaged === 1 ? "" : "s"} left alone)` : ""}`
      : `drift on ${drifted.length} of ${drift.length} hosts: ${drifted.join(", ")}`,
  );
  return lines.join("\n");
}

/** The version of the `--json` output's shape; it changes only when a field changes meaning or goes away. */
export const jsonFormatVersion = 1;

/** Every command's `--json` document: the format version, the command, whether it succeeded, then its own fields. */
export function jsonDocument(command: string, ok: boolean, body: object): string {
  return JSON.stringify({ formatVersion: jsonFormatVersion, command, ok, ...body }, null, 2);
}

type HostDriftJson = { host: string; role: string; reached: true; clean: boolean; items: DriftItem[] } | { host: string; reached: false; error: string };

/** Every host's drift, and one entry per host not reached. */
export function driftJson(drift: HostDrift[], notReached: readonly NotReached[] = []): { clean: boolean; hosts: HostDriftJson[] } {
  return {
    clean: drift.every((d) => d.clean) && notReached.length === 0,
    hosts: [
      ...drift.map((d): HostDriftJson => ({ host: d.host, role: d.role, reached: true, clean: d.clean, items: d.items })),
      ...notReached.map((n): HostDriftJson => ({ host: n.host, reached: false, error: n.message })),
    ],
  };
}

/** The hosts not reached, one line per cause: the same cause on ten hosts is printed once, with their names. */
export function formatNotReached(notReached: readonly NotReached[]): string[] {
  const byCause = new Map<string, string[]>();
  for (const n of notReached) byCause.set(n.message, [...(byCause.get(n.message) ?? []), n.host]);
  return [...byCause].map(([message, hosts]) => `not reached: ${hosts.join(", ")}: ${message}`);
}

/** Steps that take something away from live traffic or a host. */
export function destructiveSteps(plan: ClusterPlan): { host: string; step: Step }[] {
  return plan.waves.flatMap((w) => w.hosts.flatMap((h) => h.steps.filter(takesAway).map((step) => ({ host: h.host, step }))));
}

/** "12 steps on 5 hosts" */
export function planSize(plan: ClusterPlan): string {
  const steps = plan.waves.reduce((n, w) => n + w.hosts.reduce((m, h) => m + h.steps.length, 0), 0);
  const hosts = new Set(plan.waves.flatMap((w) => w.hosts.map((h) => h.host))).size;
  return `${steps} step${steps === 1 ? "" : "s"} on ${hosts} host${hosts === 1 ? "" : "s"}`;
}

export function formatPlan(plan: ClusterPlan): string {
  if (plan.empty) return "nothing to do: every host already holds what the spec says";
  const lines: string[] = [];
  const waveTitle = { "prepare-real-servers": "1. real servers made ready", directors: "2. directors", "release-real-servers": "3. real servers released" };
  for (const wave of plan.waves) {
    lines.push(waveTitle[wave.wave]);
    for (const host of wave.hosts) {
      lines.push(`  ${host.host}`);
      for (const step of host.steps) lines.push(`    ${takesAway(step) ? "-" : "+"} ${describeStep(step)}`);
    }
  }
  lines.push("", `${planSize(plan)}; ${destructiveSteps(plan).length} take something away`);
  return lines.join("\n");
}

/** One line per destination a director did not register because its real server is not ready. */
export function formatHeldBack(plan: Pick<ClusterPlan, "heldBack">): string[] {
  return plan.heldBack.map((h) => `${h.director}: held back ${h.realServer} (${h.destination}): ${h.reason}; make ${h.realServer} ready first (apply it, or run without --host)`);
}

/** One line per host wave left out because a host it depends on was not reached. */
export function formatWithheld(plan: ClusterPlan): string[] {
  return plan.withheld.map((w) => `${w.host}: ${w.wave} held back: ${w.reason}`);
}

/** A file in a step's JSON: where and how, not what (keepalived's file holds the VRRP secret). */
function fileJson(file: RenderedFile): object {
  return "linkTarget" in file ? { path: file.path, linkTarget: file.linkTarget } : { path: file.path, mode: `0${file.mode.toString(8)}`, bytes: Buffer.byteLength(file.content) };
}

/** A step as data: its op, what it does in words, whether it takes something away, and the values it acts on. */
export function stepJson(step: Step): object {
  const common = { op: step.op, description: describeStep(step), takesAway: takesAway(step) };
  switch (step.op) {
    case "write-file":
    case "write-keepalived-config":
      return { ...common, file: fileJson(step.file) };
    default: {
      const { op: _op, ...fields } = step;
      return { ...common, ...fields };
    }
  }
}

export function planJson(plan: ClusterPlan): unknown {
  return {
    empty: plan.empty,
    heldBack: plan.heldBack,
    notReached: plan.notReached,
    withheld: plan.withheld,
    waves: plan.waves.map((w) => ({
      wave: w.wave,
      hosts: w.hosts.map((h) => ({ host: h.host, steps: h.steps.map(stepJson) })),
    })),
    drift: driftJson(plan.drift, plan.notReached),
  };
}

export function formatHealth(health: ClusterHealth): string {
  const lines: string[] = [];
  const rows: string[][] = [["SERVICE", "DIRECTOR", "BY", "REAL SERVER", "HEALTH", "WEIGHT", "ACTIVE", "INACTIVE"]];
  for (const s of health.services) {
    if (!s.present) rows.push([s.service, s.director, s.managedBy, "-", "service not in the IPVS table", "-", "-", "-"]);
    for (const r of s.realServers) {
      rows.push([
        s.service,
        s.director,
        s.managedBy,
        `${r.name ?? "?"} ${r.address}`,
        r.health,
        r.weight === null ? "-" : `${r.weight}/${r.configuredWeight}`,
        String(r.activeConnections),
        String(r.inactiveConnections),
      ]);
    }
    if (s.sorryServer)
      rows.push([
        s.service,
        s.director,
        s.managedBy,
        `${s.sorryServer.name ?? "?"} ${s.sorryServer.address}`,
        s.sorryServer.active ? "sorry server, serving" : "sorry server, idle",
        "-",
        "-",
        "-",
      ]);
  }
  lines.push(table(rows));
  if (health.groups.length) {
    lines.push(
      "",
      table([
        ["GROUP", "VIPS", "MASTER", "DIRECTORS"],
        ...health.groups.map((g) => [
          g.group,
          g.vips.join(",") || "-",
          g.master ?? (g.holders.length ? `SPLIT BRAIN: ${g.holders.join(", ")}` : "none (the VIPs are down)"),
          g.directors.map((d) => `${d.name} (priority ${d.priority}${d.keepalivedRunning === false ? ", keepalived stopped" : ""})`).join(", "),
        ]),
      ]),
    );
  }
  return lines.join("\n");
}
