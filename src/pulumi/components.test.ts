/**
 * The component graph under `pulumi.runtime.setMocks`, for the three example stacks: what is
 * registered (types, names, parents), the dependencies the engine would receive (real servers
 * before directors before releases), secrecy of the connections, and the outputs.
 */
import { resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings";
import { loadCluster, readClusterValue } from "../config/load";
import type { ClusterInput } from "../config/schema";
import { desiredOf, fieldsFromDesired, type HostResourceInputs } from "./state";

const REPO = resolve(__dirname, "../..");

interface Registered {
  type: string;
  name: string;
  urn: string;
  parent: string;
  dependencies: string[];
  secretOutputs: string[];
  /** The object exactly as sent to the engine, secrets still wrapped. */
  rawObject: Record<string, unknown>;
}

const registered: Registered[] = [];
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_SIG_KEY] === SECRET_SIG) return unwrapSecrets(obj.value);
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

function urnOf(type: string, name: string, parent: string): string {
  const parentType = parent ? parent.split("::")[2]!.split("$").pop()! + "$" : "";
  return `urn:pulumi:${pulumi.getStack()}::${pulumi.getProject()}::${parentType}${type}::${name}`;
}

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        // Play the provider's create without hosts: the outputs create returns are the desired fields.
        if (args.type.startsWith("pulumi-nodejs:dynamic/lvsdr:")) {
          // The engine strips secrets before calling a dynamic provider (it does not accept them).
          const inputs = unwrapSecrets(args.inputs) as HostResourceInputs;
          const fields = fieldsFromDesired(desiredOf(inputs).host);
          const outs = args.type.endsWith(":RealServerRelease") ? { addresses: fields.addresses } : fields;
          return { id: `${inputs.cluster.name}/${inputs.host}`, state: { ...args.inputs, ...outs } };
        }
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "lvs-dr",
    "test",
    false,
  );
  // Record what the engine would receive; the mocks' newResource does not see dependencies.
  const monitor = settings.getMonitor() as unknown as { registerResource: (req: RegisterRequest, cb: unknown) => unknown };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    registered.push({
      type: req.getType(),
      name: req.getName(),
      urn: urnOf(req.getType(), req.getName(), req.getParent()),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      secretOutputs: req.getAdditionalsecretoutputsList(),
      rawObject: (req.getObject()?.toJavaScript() ?? {}) as Record<string, unknown>,
    });
    return original(req, cb);
  };
});

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getObject(): { toJavaScript(): unknown } | undefined;
}

function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((ok) => output.apply((v) => ok(v)));
}

async function build(stack: string) {
  // Imported after setMocks, so the components register against the mock monitor.
  const { LvsDrCluster } = await import("./components");
  const raw = readClusterValue({ stack, stacksDir: resolve(REPO, "stacks") }).value as ClusterInput;
  const before = registered.length;
  const cluster = new LvsDrCluster(stack, { cluster: raw, baseDir: REPO });
  const [hosts, vips, services] = await Promise.all([promiseOf(cluster.hosts), promiseOf(cluster.vips), promiseOf(cluster.virtualServices)]);
  // Let every registration (releases wait on a promise of the directors) reach the monitor.
  await new Promise((r) => setTimeout(r, 50));
  return { cluster, hosts, vips, services, regs: registered.slice(before) };
}

const T = {
  cluster: "lvsdr:index:LvsDrCluster",
  group: "lvsdr:index:RealServerGroup",
  lvsDirector: "lvsdr:index:LvsDirector",
  realServer: "pulumi-nodejs:dynamic/lvsdr:RealServer",
  director: "pulumi-nodejs:dynamic/lvsdr:Director",
  release: "pulumi-nodejs:dynamic/lvsdr:RealServerRelease",
};

describe.each(["lab", "dev", "prod"])("LvsDrCluster for stacks/Pulumi.%s.yaml", (stack) => {
  let built: Awaited<ReturnType<typeof build>>;
  const spec = () => loadCluster({ stack, stacksDir: resolve(REPO, "stacks") });

  beforeAll(async () => {
    built = await build(stack);
  }, 60_000);

  const byType = (type: string) => built.regs.filter((r) => r.type === type);
  const one = (type: string, name: string) => {
    const found = built.regs.filter((r) => r.type === type && r.name === name);
    expect(found).toHaveLength(1);
    return found[0]!;
  };

  it("registers one component tree, resources named after hosts", () => {
    const c = spec();
    const rs = c.realServers.map((r) => r.name);
    const ds = c.directors.map((d) => d.name);
    expect(byType(T.cluster).map((r) => r.name)).toEqual([stack]);
    expect(byType(T.group).map((r) => r.name)).toEqual([`${stack}-real-servers`]);
    expect(
      byType(T.lvsDirector)
        .map((r) => r.name)
        .sort(),
    ).toEqual([...ds].sort());
    expect(
      byType(T.director)
        .map((r) => r.name)
        .sort(),
    ).toEqual([...ds].sort());
    expect(
      byType(T.realServer)
        .map((r) => r.name)
        .sort(),
    ).toEqual([...rs].sort());
    expect(
      byType(T.release)
        .map((r) => r.name)
        .sort(),
    ).toEqual(rs.map((n) => `${n}-release`).sort());
    expect(built.regs).toHaveLength(2 + 2 * ds.length + 2 * rs.length);
  });

  it("parents every child to its component", () => {
    const root = one(T.cluster, stack);
    const group = one(T.group, `${stack}-real-servers`);
    expect(group.parent).toBe(root.urn);
    for (const r of [...byType(T.realServer), ...byType(T.release)]) expect(r.parent).toBe(group.urn);
    for (const d of byType(T.lvsDirector)) {
      expect(d.parent).toBe(root.urn);
      expect(one(T.director, d.name).parent).toBe(d.urn);
    }
  });

  it("orders real servers -> directors -> releases as engine dependencies", () => {
    const rsUrns = byType(T.realServer)
      .map((r) => r.urn)
      .sort();
    const directorUrns = byType(T.director)
      .map((r) => r.urn)
      .sort();
    for (const d of byType(T.director)) {
      // dependsOn on the LvsDirector component reaches its child as every real server.
      expect([...d.dependencies].sort()).toEqual(rsUrns);
    }
    for (const rel of byType(T.release)) {
      const host = rel.name.replace(/-release$/, "");
      const own = byType(T.realServer).find((r) => r.name === host)!.urn;
      expect([...rel.dependencies].sort()).toEqual([own, ...directorUrns].sort());
    }
    for (const rs of byType(T.realServer)) expect(rs.dependencies).toEqual([]);
  });

  it("keeps every connection block secret and out of the plain spec", () => {
    for (const r of [...byType(T.realServer), ...byType(T.director), ...byType(T.release)]) {
      expect(r.secretOutputs).toEqual(["connections"]);
      expect((r.rawObject.connections as Record<string, unknown>)[SECRET_SIG_KEY]).toBe(SECRET_SIG);
      const plain = JSON.stringify(r.rawObject.cluster);
      expect(plain).not.toMatch(/connection|privateKey|hostKey|password|secure/);
    }
  });

  it("outputs per-host applied state, the VIPs and the virtual services", () => {
    const c = spec();
    expect(Object.keys(built.hosts).sort()).toEqual([...c.directors.map((d) => d.name), ...c.realServers.map((r) => r.name)].sort());
    expect(built.vips).toEqual([...new Set(c.virtualServices.map((s) => s.vip))].sort());
    expect(built.services.map((s) => s.name)).toEqual(c.virtualServices.map((s) => s.name));
    for (const rs of c.realServers) {
      const h = built.hosts[rs.name]!;
      expect(h.role).toBe("real-server");
      expect(h.sysctls[`net/ipv4/conf/all/arp_ignore`]).toBe("1");
      expect(h.sysctls[`net/ipv4/conf/${rs.interface}/arp_announce`]).toBe("2");
      const served = c.virtualServices.filter((s) => s.realServers.some((d) => d.name === rs.name)).map((s) => `lo/${s.vip}/32`);
      expect(h.addresses).toEqual([...new Set(served)].sort());
    }
    for (const d of c.directors) {
      const h = built.hosts[d.name]!;
      expect(h.role).toBe("director");
      const mine = c.virtualServices.filter((s) => (s.director ?? c.directors[0]!.name) === d.name);
      expect(Object.keys(h.destinations)).toHaveLength(mine.reduce((n, s) => n + s.realServers.length, 0));
    }
  });
});

describe("prod specifics", () => {
  it("carries weights, thresholds, persistence and the fwmark service into the director's outputs", async () => {
    const { hosts, services } = await build("prod");
    const lb1 = hosts["prod-lb1"]!.destinations as Record<string, { weight: number; upperThreshold: number }>;
    expect(lb1["tcp:203.0.113.100:443/203.0.113.21:443"]).toEqual({ forwarding: "dr", weight: 3, upperThreshold: 20000, lowerThreshold: 15000 });
    const lb2 = hosts["prod-lb2"]!.services as Record<string, unknown>;
    expect(lb2["fwmark:25"]).toEqual({ scheduler: "lc", flags: [], persistence: { timeout: 300, netmask: "255.255.255.255" } });
    expect(lb2["udp:203.0.113.53:53"]).toEqual({ scheduler: "sh", flags: ["sh-port"], persistence: null });
    expect(services.find((s) => s.name === "mail")).toEqual({
      name: "mail",
      director: "prod-lb2",
      directors: ["prod-lb2"],
      vip: "203.0.113.25",
      protocol: "fwmark",
      port: null,
      fwmark: 25,
      scheduler: "lc",
      realServers: [{ name: "prod-mail1", weight: 1 }],
    });
  }, 60_000);

  it("names resources after hosts, so reordering the lists changes no resource name", async () => {
    const { regs: a } = await build("prod");
    const { LvsDrCluster } = await import("./components");
    const raw = readClusterValue({ stack: "prod", stacksDir: resolve(REPO, "stacks") }).value as ClusterInput;
    const reordered: ClusterInput = { ...raw, realServers: [...(raw.realServers ?? [])].reverse(), directors: [...raw.directors].reverse() };
    const before = registered.length;
    new LvsDrCluster("prod", { cluster: reordered, baseDir: REPO });
    await new Promise((r) => setTimeout(r, 100));
    const b = registered.slice(before);
    const urns = (rs: Registered[]) => rs.map((r) => r.urn).sort();
    expect(urns(b)).toEqual(urns(a));
  }, 60_000);

  it("refuses an invalid spec before any resource exists, every problem with its path", async () => {
    const { LvsDrCluster } = await import("./components");
    const raw = readClusterValue({ stack: "prod", stacksDir: resolve(REPO, "stacks") }).value as ClusterInput;
    const broken = { ...raw, directors: "nope", virtualServices: [{ ...raw.virtualServices![0]!, port: 70000 }] } as unknown as ClusterInput;
    const before = registered.length;
    let thrown: unknown;
    try {
      new LvsDrCluster("broken", { cluster: broken });
    } catch (e) {
      thrown = e;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(thrown).toBeInstanceOf(pulumi.ResourceError);
    const message = (thrown as Error).message;
    expect(message).toMatch(/^cluster is not a valid cluster spec:/);
    expect(message).toMatch(/\n {2}directors: must be a list, not a string/);
    expect(message).toMatch(/\n {2}virtualServices\[0\]\.port: must be at most 65535/);
    expect(registered.slice(before).map((r) => r.type)).toEqual(["lvsdr:index:LvsDrCluster"]);
  });
});
