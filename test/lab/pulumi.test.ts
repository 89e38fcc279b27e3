/**
 * The dynamic providers against real hosts, called as the Pulumi engine calls them:
 * check -> create (real servers, director, releases) -> read -> a hand change -> read shows it
 * in exactly that field -> diff/update -> read clean -> delete (reverse order) -> hosts as before.
 * The providers serialized and run by Pulumi's own dynamic-provider host are proven in
 * pulumi-runtime.test.ts.
 */
import { resolve } from "node:path";
import { LAB_ADDRESSES, labExecOk } from "../../lab";
import { loadCluster, readClusterValue } from "../../src/config/load";
import type { ClusterInput } from "../../src/config/schema";
import { ClusterRun } from "../../src/ops/engine";
import type { ResourceOutputs } from "../../src/pulumi/impl";
import { directorProvider, realServerProvider, realServerReleaseProvider } from "../../src/pulumi/providers";
import { splitConnections, type HostResourceInputs } from "../../src/pulumi/state";
import { SshTransport } from "../../src/transport/ssh";
import { hostSnapshots } from "./helpers";
import { describeLab } from "./lab-suite";

const REPO = resolve(__dirname, "../..");
const RS = ["rs1", "rs2", "rs3", "rsvm1"];
const VIP = LAB_ADDRESSES.vip;
type Provider = typeof realServerProvider;

function rawLab(): ClusterInput {
  return readClusterValue({ stack: "lab", stacksDir: resolve(REPO, "stacks") }).value as ClusterInput;
}

function news(host: string): HostResourceInputs {
  return { ...splitConnections(rawLab()), host, baseDir: REPO };
}

async function destroyAll(): Promise<void> {
  const run = new ClusterRun(loadCluster({ stack: "lab", stacksDir: resolve(REPO, "stacks") }), { transport: new SshTransport(), connectOptions: { baseDir: REPO } });
  try {
    await run.apply({ destroy: true });
  } finally {
    await run.close();
  }
}

async function snapshotAll(): Promise<Record<string, string>> {
  return hostSnapshots(["director", ...RS]);
}

/** Dotted paths whose values differ, as `pulumi refresh` would list them. */
function changedPaths(a: unknown, b: unknown, path = ""): string[] {
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => changedPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}["${k}"]` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

async function checked(provider: Provider, host: string): Promise<HostResourceInputs> {
  const result = await provider.check!({} as HostResourceInputs, news(host));
  expect(result.failures).toEqual([]);
  return result.inputs!;
}

describeLab("pulumi dynamic providers on real hosts", () => {
  let pristine: Record<string, string>;

  beforeAll(async () => {
    await destroyAll();
    pristine = await snapshotAll();
  }, 120_000);

  it("check refuses an invalid spec before any host is contacted", async () => {
    const bad = news("rs1");
    bad.cluster.virtualServices![0]!.port = 0;
    const result = await realServerProvider.check!({} as HostResourceInputs, bad);
    expect(result.failures).toEqual([{ property: "cluster.virtualServices[0].port", reason: expect.stringMatching(/>=1/) }]);
    expect(await snapshotAll()).toEqual(pristine);
  });

  it("create -> read -> drift by hand -> read names it -> update -> read clean -> delete -> hosts as before", async () => {
    const inputs: Record<string, HostResourceInputs> = {};
    const outs: Record<string, ResourceOutputs> = {};
    const ids: Record<string, string> = {};

    // pulumi up, in dependency order: every real server, then the director, then the releases.
    for (const rs of RS) {
      inputs[rs] = await checked(realServerProvider, rs);
      const r = await realServerProvider.create(inputs[rs]!);
      ids[rs] = r.id;
      outs[rs] = r.outs!;
    }
    expect(ids.rs1).toBe("lab/rs1");
    expect(await labExecOk("rs1", "cat /proc/sys/net/ipv4/conf/all/arp_ignore; ip -o addr show dev lo")).toContain(`${VIP}/32`);
    inputs.director = await checked(directorProvider, "director");
    const d = await directorProvider.create(inputs.director);
    outs.director = d.outs!;
    for (const rs of RS) await realServerReleaseProvider.create(await checked(realServerReleaseProvider, rs));
    const answers = (await labExecOk("client", `for i in $(seq 6); do curl -s -m 3 http://${VIP}/ || echo FAILED; done`)).split("\n").filter(Boolean);
    expect(new Set(answers)).toEqual(new Set(RS));

    // read equals what create returned.
    for (const rs of RS) expect((await realServerProvider.read!(ids[rs]!, outs[rs]!)).props).toEqual(outs[rs]);
    expect((await directorProvider.read!(d.id, outs.director!)).props).toEqual(outs.director);
    expect(outs.rs1).toMatchObject({ sysctls: { "net/ipv4/conf/all/arp_ignore": "1" }, addresses: [`lo/${VIP}/32`] });
    expect(Object.keys((outs.director as { destinations: object }).destinations)).toHaveLength(RS.length);
    // The connection data is an input (secret in Pulumi), never copied into the state fields.
    expect(JSON.stringify({ ...outs.rs1, connections: undefined })).not.toMatch(/id_ed25519|known_hosts/);

    // A hand change shows in exactly that field.
    await labExecOk("rs1", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    const drifted = (await realServerProvider.read!(ids.rs1!, outs.rs1!)).props!;
    expect(changedPaths(outs.rs1, drifted)).toEqual(['sysctls["net/ipv4/conf/all/arp_ignore"]']);
    expect((drifted as { sysctls: Record<string, string> }).sysctls["net/ipv4/conf/all/arp_ignore"]).toBe("0");
    await labExecOk("director", `ipvsadm -e -t ${VIP}:80 -r 198.51.100.11:80 -g -w 7`);
    const directorDrift = (await directorProvider.read!(d.id, outs.director!)).props!;
    expect(changedPaths(outs.director, directorDrift)).toEqual([`destinations["tcp:${VIP}:80/198.51.100.11:80"]["weight"]`]);

    // pulumi up after refresh: the diff sees the refreshed state differ from the spec; update repairs it.
    expect(await realServerProvider.diff!(ids.rs1!, drifted, inputs.rs1!)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    const updated = await realServerProvider.update!(ids.rs1!, drifted, inputs.rs1!);
    expect(updated.outs).toEqual(outs.rs1);
    expect(await directorProvider.diff!(d.id, directorDrift, inputs.director)).toMatchObject({ changes: true, replaces: [] });
    await directorProvider.update!(d.id, directorDrift, inputs.director);
    expect((await realServerProvider.read!(ids.rs1!, outs.rs1!)).props).toEqual(outs.rs1);
    expect((await directorProvider.read!(d.id, outs.director!)).props).toEqual(outs.director);
    expect(await realServerProvider.diff!(ids.rs1!, outs.rs1!, inputs.rs1!)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });

    // pulumi destroy, in reverse dependency order.
    for (const rs of RS) await realServerReleaseProvider.delete!(`lab/${rs}`, { ...inputs[rs]!, addresses: [] });
    await directorProvider.delete!(d.id, outs.director!);
    expect(await labExecOk("director", "ipvsadm -Sn")).not.toContain(VIP);
    for (const rs of RS) await realServerProvider.delete!(ids[rs]!, outs[rs]!);
    expect(await snapshotAll()).toEqual(pristine);
  }, 150_000);
});
