/** The benchmark report: medians, ratios to the floor and peer/tool, a markdown table and an SVG chart. */
export interface Results {
  machine: { cores: number; cpu?: string; kernel: string; node: string; date: string; director?: string };
  concurrency: number;
  runs: number;
  /** Rounds in which the peers ran (the first ones), when fewer than `runs`. */
  peerRuns?: number;
  /** N -> figure -> seconds per run. */
  scale: Record<string, Record<string, number[]>>;
  /** destinations -> figure -> seconds per run. */
  table: Record<string, Record<string, number[]>>;
  /** N -> phase of the tool's apply from scratch -> seconds per run (where the time goes). */
  profile: Record<string, Record<string, number[]>>;
  /** What could not be measured, and why. */
  failures?: string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");

export function markdownReport(r: Results): string {
  const runs = r.peerRuns !== undefined && r.peerRuns < r.runs ? `Median of ${r.runs} runs for the tool and the floor, ${r.peerRuns} for the peers` : `Median of ${r.runs} runs`;
  const lines = [
    `# lvs-dr benchmarks`,
    "",
    `Machine: ${r.machine.cores} cores${r.machine.cpu ? ` (${r.machine.cpu})` : ""}, kernel ${r.machine.kernel}, Node ${r.machine.node}; ${r.machine.date}.${r.machine.director ? ` Director: ${r.machine.director}.` : ""} ${runs}, concurrency ${r.concurrency}. Seconds.`,
    "",
  ];
  const ns = Object.keys(r.scale);
  if (ns.length) {
    const figures = [...new Set(ns.flatMap((n) => Object.keys(r.scale[n]!)))];
    lines.push(`| figure | ${ns.map((n) => `N=${n}`).join(" | ")} |`, `|---|${ns.map(() => "---").join("|")}|`);
    for (const f of figures) {
      lines.push(
        `| ${f} | ${ns
          .map((n) => {
            const v = median(r.scale[n]![f] ?? []);
            const floor = median(r.scale[n]!.floor ?? []);
            return f === "floor" || !Number.isFinite(v) ? fmt(v) : `${fmt(v)} (${fmt(v / floor)}x floor)`;
          })
          .join(" | ")} |`,
      );
    }
    // Peer / tool, each peer at its best setting (Ansible: the better of its fork counts).
    const ratioRows: string[] = [];
    const jobs: [string, string, string][] = [
      ["apply from scratch", "tool: apply from scratch", ": apply from scratch"],
      ["drift check", "tool: observe (drift check)", ": drift check (--check)"],
    ];
    for (const [label, toolKey, suffix] of jobs) {
      const peerNames = [
        ...new Set(
          ns.flatMap((n) =>
            Object.keys(r.scale[n]!)
              .filter((k) => k.endsWith(suffix) && !k.startsWith("tool"))
              .map((k) => k.replace(/ \(.*\)/, "").replace(suffix, "")),
          ),
        ),
      ];
      for (const peer of peerNames) {
        ratioRows.push(
          `| ${peer}: ${label} | ${ns
            .map((n) => {
              const tool = median(r.scale[n]![toolKey] ?? []);
              const best = Math.min(
                ...Object.keys(r.scale[n]!)
                  .filter((k) => k.startsWith(peer) && k.endsWith(suffix))
                  .map((k) => median(r.scale[n]![k]!)),
              );
              return Number.isFinite(best) ? `${fmt(best / tool)}x (${fmt(best)} s)` : "-";
            })
            .join(" | ")} |`,
        );
      }
    }
    // A tool-only run (bench:ops) has no peers: no empty table.
    if (ratioRows.length)
      lines.push(
        "",
        "How many times longer the peers take than the tool (each at its best setting):",
        "",
        `| job | ${ns.map((n) => `N=${n}`).join(" | ")} |`,
        `|---|${ns.map(() => "---").join("|")}|`,
        ...ratioRows,
      );
  }
  const ps = Object.keys(r.profile ?? {});
  if (ps.length) {
    const phases = [...new Set(ps.flatMap((n) => Object.keys(r.profile[n]!)))];
    lines.push(
      "",
      "Where the tool's apply from scratch spends its time (seconds, medians):",
      "",
      `| phase | ${ps.map((n) => `N=${n}`).join(" | ")} |`,
      `|---|${ps.map(() => "---").join("|")}|`,
    );
    for (const ph of phases) lines.push(`| ${ph} | ${ps.map((n) => fmt(median(r.profile[n]![ph] ?? []))).join(" | ")} |`);
  }
  const ts = Object.keys(r.table);
  if (ts.length) {
    const figures = [...new Set(ts.flatMap((t) => Object.keys(r.table[t]!)))];
    lines.push("", "Director table (destinations):", "", `| figure | ${ts.join(" | ")} |`, `|---|${ts.map(() => "---").join("|")}|`);
    for (const f of figures) lines.push(`| ${f} | ${ts.map((t) => fmt(median(r.table[t]![f] ?? []))).join(" | ")} |`);
  }
  if (r.failures?.length) lines.push("", "Not measured:", "", ...r.failures.map((f) => `- ${f}`));
  return lines.join("\n") + "\n";
}

/** Apply-from-scratch time against N, one line per system, log scale on time. */
export function chartSvg(r: Results): string {
  const ns = Object.keys(r.scale).map(Number);
  const systems = [...new Set(ns.flatMap((n) => Object.keys(r.scale[String(n)]!)))].filter((k) => k === "floor" || k.endsWith("apply from scratch"));
  const W = 640,
    H = 360,
    L = 60,
    B = 40,
    T = 20,
    R = 200;
  const maxN = Math.max(...ns, 1);
  const values = systems.flatMap((s) => ns.map((n) => median(r.scale[String(n)]![s] ?? []))).filter(Number.isFinite);
  const lo = Math.log10(Math.max(0.01, Math.min(...values, 1)));
  const hi = Math.log10(Math.max(...values, 1)) + 0.1;
  const x = (n: number) => L + ((W - L - R) * n) / maxN;
  const y = (v: number) => T + (H - T - B) * (1 - (Math.log10(v) - lo) / (hi - lo));
  const colors = ["#555", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`);
  for (const n of ns) parts.push(`<text x="${x(n)}" y="${H - B + 14}" text-anchor="middle">${n}</text>`);
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++)
    parts.push(
      `<text x="${L - 6}" y="${y(10 ** e) + 4}" text-anchor="end">${10 ** e}s</text>`,
      `<line x1="${L}" y1="${y(10 ** e)}" x2="${W - R}" y2="${y(10 ** e)}" stroke="#ddd"/>`,
    );
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">real servers (N)</text>`, `<text x="${L}" y="${T - 6}">apply from scratch, seconds (log)</text>`);
  systems.forEach((s, i) => {
    const pts = ns.map((n) => [n, median(r.scale[String(n)]![s] ?? [])] as const).filter(([, v]) => Number.isFinite(v));
    const c = colors[i % colors.length];
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([n, v]) => `${x(n).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>`);
    parts.push(`<text x="${W - R + 10}" y="${T + 16 * (i + 1)}" fill="${c}">${s.replace(": apply from scratch", "")}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
