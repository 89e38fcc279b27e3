/**
 * Hostile input, at random: specs with random and adversarial values in every field. The
 * validator never crashes and gives every issue a path; whatever it lets through renders into
 * scripts where each value is a quoted word (or a plain word of characters no shell treats
 * specially), or sits in a here-document body. Beside the layer that renders, since that is the
 * promise under test; the spec side is checked on the way.
 */
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { applyPlan, blankCluster } from "../plan/testing/cluster";
import { planCluster } from "../plan/cluster-plan";
import { renderKeepalivedConf } from "./keepalived";
import { labLikeSpec } from "../testing/specs";
import { renderApplyScript } from "./apply-script";

/** Marks a value the fuzzer wrote, so it can be found wherever it lands in a script. */
const canary = "qzx";

const adversarial = [
  `$(touch /tmp/${canary})`,
  `\`touch /tmp/${canary}\``,
  `${canary};reboot`,
  `${canary}' ; echo '`,
  `${canary}"$IFS"`,
  `${canary}\nreboot`,
  `${canary} && id`,
  `${canary}|sh`,
  `-${canary}`,
  `${canary}\\`,
  `${canary}\u202e`,
  `../../${canary}`,
  `/etc/${canary}`,
  `${canary}%0a`,
  `{rip}${canary}`,
  `LVSDR_EOF`,
];

/** Shaped to pass a field's own rule, so that something hostile gets through to rendering. */
const plausible = [
  canary,
  `${canary}-1`,
  `/${canary}$(id)`,
  `/${canary}?a=\`id\`&b=$HOME`,
  `/usr/bin/${canary}`,
  `${canary}.example.net`,
  `${canary}:8080`,
  `{rip}:${canary}`,
  `${canary}!x`,
  `x`.repeat(300) + canary,
];

/** A base spec that exercises every kind of value: static and checked services, commands, a failover group. */
function baseSpec(): Record<string, unknown> {
  return labLikeSpec({
    directors: [
      { name: "d1", interface: "eth0", dip: "198.51.100.2/24" },
      { name: "d2", interface: "eth0", dip: "198.51.100.3/24" },
    ],
    failoverGroups: [
      {
        name: "g",
        virtualRouterId: 7,
        authSecret: "s3cret",
        directors: [
          { name: "d1", priority: 150 },
          { name: "d2", priority: 100 },
        ],
      },
    ],
    virtualServices: [
      { name: "web", director: "d1", vip: "198.51.100.5", protocol: "tcp", port: 80, scheduler: "wrr", realServers: [{ name: "rs1" }, { name: "rs2", weight: 3 }] },
      {
        name: "api",
        failoverGroup: "g",
        vip: "198.51.100.6",
        protocol: "tcp",
        port: 443,
        healthCheck: { type: "http", path: "/health", host: "api.example.net" },
        realServers: [{ name: "rs1" }, { name: "rs3" }],
      },
      {
        name: "dns",
        director: "d1",
        vip: "198.51.100.7",
        protocol: "udp",
        port: 53,
        healthCheck: { type: "command", path: "/usr/local/bin/check-dns", args: ["{rip}", "{port}"] },
        realServers: [{ name: "rs2" }],
      },
    ],
  }) as unknown as Record<string, unknown>;
}

/** Every path to a leaf (string, number, boolean) in a value. */
function leafPaths(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leafPaths(v, [...at, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...at, k]));
  return [at];
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
}

const paths = leafPaths(baseSpec());

const hostileValue = fc.oneof(
  fc.constantFrom(...adversarial),
  fc.string().map((s) => `${s}${canary}`),
  fc.string({ unit: "binary" }),
  fc.jsonValue(),
  fc.constantFrom(undefined, null, -1, 0, 1e308, NaN, "", " ", "__proto__", "constructor"),
);

/** Mutations of the base spec: a few leaves replaced, and now and then a key added. */
const hostileSpec = fc
  .tuple(fc.array(fc.tuple(fc.constantFrom(...paths), hostileValue), { minLength: 1, maxLength: 4 }), fc.option(fc.tuple(fc.string(), fc.jsonValue())))
  .map(([changes, extra]) => {
    const spec = baseSpec();
    for (const [path, value] of changes) setAt(spec, path, value);
    if (extra) spec[extra[0]] = extra[1];
    return spec;
  });

/** One or two leaves replaced by values shaped to pass: hostile text that validation may let through. */
const plausibleSpec = fc.array(fc.tuple(fc.constantFrom(...paths), fc.constantFrom(...plausible)), { minLength: 1, maxLength: 2 }).map((changes) => {
  const spec = baseSpec();
  for (const [path, value] of changes) setAt(spec, path, value);
  return spec;
});

/**
 * Where the canary may stand in a script: inside single quotes, inside a here-document body, or in
 * a bare word of characters that no shell expands or splits on.
 */
function unsafeCanaries(script: string): string[] {
  const found: string[] = [];
  const words: string[] = [];
  let heredocEnd: string | null = null;
  // Quotes may span lines (a record written with printf '%s' '{...}'), so the state carries over.
  let quoted = false;
  let word = "";
  for (const line of script.split("\n")) {
    if (heredocEnd !== null) {
      if (line === heredocEnd) heredocEnd = null;
      continue;
    }
    for (const ch of line) {
      if (ch === "'") quoted = !quoted;
      else if (!quoted && /\s/.test(ch)) {
        if (word) words.push(word);
        word = "";
      } else word += quoted ? "\u0001" : ch;
    }
    if (quoted) continue;
    if (word) words.push(word);
    word = "";
    const opener = /<<'([A-Za-z0-9_]+)'\s*$/.exec(line);
    if (opener) heredocEnd = opener[1]!;
  }
  // Inside quotes every character became \u0001: a canary left in a word stood outside quotes.
  // A word may end in the shell's own separator ("dev eth0;"), never hold one inside ("eth0;reboot").
  // eslint-disable-next-line no-control-regex -- \u0001 stands for a quoted character
  for (const w of words) if (w.includes(canary) && !/^[A-Za-z0-9_./:=@%+,\u0001-]+[;&|)]*$/.test(w)) found.push(w);
  return found;
}

describe("hostile specs", () => {
  it("never crash the validator, and every issue has a path and plain words", () => {
    fc.assert(
      fc.property(fc.oneof(hostileSpec, plausibleSpec, fc.anything()), (spec) => {
        const result = parseCluster(spec);
        if (result.ok) return;
        expect(result.issues.length).toBeGreaterThan(0);
        for (const issue of result.issues) {
          expect(issue.path).toMatch(/\S/);
          expect(issue.message).toMatch(/\S/);
          if (!JSON.stringify(spec ?? null).includes("undefined")) expect(issue.message).not.toMatch(/\bundefined\b/);
        }
      }),
      { numRuns: 400 },
    );
  }, 60_000);

  it("that pass validation render every value quoted: scripts parse, and no written value stands outside quotes or a here-document", () => {
    let accepted = 0;
    fc.assert(
      fc.property(plausibleSpec, (spec) => {
        const result = parseCluster(spec);
        if (!result.ok) return;
        accepted++;
        const desired = desiredClusterState(result.cluster);
        const blank = blankCluster(desired);
        const plan = planCluster(desired, blank);
        const removal = planCluster(desired, applyPlan(plan, blank), { destroy: true });
        for (const wave of [...plan.waves, ...removal.waves]) {
          for (const host of wave.hosts) {
            const script = renderApplyScript(host);
            execFileSync("/bin/sh", ["-n"], { input: script });
            expect(unsafeCanaries(script)).toEqual([]);
          }
        }
        for (const host of desired.hosts)
          if (host.keepalived)
            expect(
              renderKeepalivedConf(host.keepalived)
                .split("\n")
                .filter((l) => l.trimStart().startsWith(canary)),
            ).toEqual([]);
      }),
      { numRuns: 300 },
    );
    // The property means something only if hostile specs do get through sometimes.
    expect(accepted).toBeGreaterThan(10);
  }, 120_000);

  it("the canary check itself sees a value outside quotes", () => {
    expect(unsafeCanaries(`ip addr add ${canary};reboot dev lo`)).toEqual([`${canary};reboot`]);
    expect(unsafeCanaries(`ip addr add '${canary};reboot' dev lo`)).toEqual([]);
    expect(unsafeCanaries(`cat <<'LVSDR_EOF'\n$(${canary})\nLVSDR_EOF`)).toEqual([]);
    expect(unsafeCanaries(`printf %s /etc/${canary}.conf`)).toEqual([]);
    expect(unsafeCanaries(`ip link set dev ${canary}; ip addr`)).toEqual([]);
    expect(unsafeCanaries(`ip link set dev ${canary}$(id); ip addr`)).toEqual([`${canary}$(id);`]);
    expect(unsafeCanaries(`printf '%s' '{\n"cluster": "${canary}"\n}' > f`)).toEqual([]);
    expect(unsafeCanaries(`printf '%s' '{\n"cluster": "x"\n}' "${canary}"`)).toEqual([`"${canary}"`]);
  });
});
