import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseCluster } from "../config/load";
import { desiredClusterState } from "../model/desired";
import { planCluster } from "../plan/cluster-plan";
import { blankCluster } from "../plan/testing/cluster";
import { labLikeSpec } from "../testing/specs";
import { runCli } from "./main";
import { planFileVersion, readPlanFile, specDigest, writePlanFile } from "./plan-file";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

function labCluster() {
  const parsed = parseCluster(labLikeSpec());
  if (!parsed.ok) throw new Error("the lab-like spec is invalid");
  return parsed.cluster;
}

describe("plan files", () => {
  const dir = mkdtempSync(join(tmpdir(), "lvsdr-planfile-"));
  const specPath = join(dir, "cluster.yaml");
  writeFileSync(specPath, stringify(labLikeSpec()));
  const cluster = labCluster();
  const desired = desiredClusterState(cluster);
  const plan = planCluster(desired, blankCluster(desired));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("are written for their owner only and read back as the same plan", () => {
    const path = join(dir, "a.plan");
    writePlanFile(path, { spec: { path: specPath, resolved: specPath, sha256: specDigest(cluster) }, destroy: false, hosts: null, plan });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const read = readPlanFile(path);
    expect(read).toMatchObject({ format: "lvsdr-plan", version: planFileVersion, destroy: false, hosts: null, spec: { path: specPath, sha256: specDigest(cluster) } });
    expect(read.plan).toEqual(JSON.parse(JSON.stringify(plan)));
  });

  it("say plainly what a file that is not one is, naming it as given and as resolved", () => {
    const notJson = join(dir, "notes.txt");
    writeFileSync(notJson, "hello");
    expect(() => readPlanFile(notJson)).toThrow(`plan file ${notJson}: not JSON`);
    const other = join(dir, "other.json");
    writeFileSync(other, JSON.stringify({ config: {} }));
    expect(() => readPlanFile(other)).toThrow("not an lvsdr plan (made by `lvsdr plan --out FILE`)");
    const newer = join(dir, "newer.plan");
    writeFileSync(newer, JSON.stringify({ format: "lvsdr-plan", version: planFileVersion + 1 }));
    expect(() => readPlanFile(newer)).toThrow(`format version ${planFileVersion + 1}; this lvsdr reads version ${planFileVersion}`);
    const broken = join(dir, "broken.plan");
    writeFileSync(
      broken,
      JSON.stringify({
        format: "lvsdr-plan",
        version: planFileVersion,
        createdAt: "now",
        spec: { path: "x", resolved: "x", sha256: "nope" },
        destroy: false,
        hosts: null,
        plan: {},
      }),
    );
    expect(() => readPlanFile(broken)).toThrow(/broken\.plan: spec\.sha256: /);
    expect(() => readPlanFile("no-such.plan")).toThrow(`plan file no-such.plan (${join(process.cwd(), "no-such.plan")}): cannot be read`);
  });

  it("are refused by apply, before any host is contacted, when the spec changed since", async () => {
    const path = join(dir, "stale.plan");
    writePlanFile(path, { spec: { path: specPath, resolved: specPath, sha256: "0".repeat(64) }, destroy: false, hosts: null, plan });
    const r = await cli("apply", path, "--yes");
    expect(r.code).toBe(1);
    expect(r.err).toContain(`the spec changed since the plan was made: ${specPath} (${specPath}); nothing was changed: make the plan again`);
    const mixed = await cli("apply", path, "--stack", "lab");
    expect(mixed.code).toBe(1);
    expect(mixed.err).toContain("a plan file names its spec and its hosts: give it without --stack, --file or --host");
  });
});
