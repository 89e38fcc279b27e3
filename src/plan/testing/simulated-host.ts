/**
 * SimulatedHost applies steps to an ObservedHostState the way the kernel and the shell would,
 * and is as strict as they are: adding a service that exists, or a destination to a missing
 * service, fails; a sysctl on a missing interface fails. Used by the planner's property tests
 * to check that applying a plan converges. Real hosts are exercised by the lab suites.
 */
import { createHash } from "node:crypto";
import { textSha256, type ObservedHostState } from "../../model/host-state";
import { addressKey, destinationKey, serviceKey } from "../../model/keys";
import { hostPaths } from "../../model/paths";
import type { Step } from "../../model/steps";

export class SimulatedKernelError extends Error {}

export function blankHost(host: string, options: { role: "director" | "real-server"; nic?: string; address: string; prefix?: number }): ObservedHostState {
  const nic = options.nic ?? "eth0";
  const sysctls: Record<string, string | null> = {};
  for (const iface of ["all", "default", "lo", nic]) {
    sysctls[`net/ipv4/conf/${iface}/arp_ignore`] = "0";
    sysctls[`net/ipv4/conf/${iface}/arp_announce`] = "0";
    sysctls[`net/ipv4/conf/${iface}/rp_filter`] = "2";
  }
  // The kernel's IPVS defaults (they exist once ip_vs is loaded; the simulation loads it up front).
  if (options.role === "director") {
    Object.assign(sysctls, {
      "net/ipv4/vs/expire_nodest_conn": "0",
      "net/ipv4/vs/expire_quiescent_template": "0",
      "net/ipv4/vs/conn_reuse_mode": "1",
      "net/ipv4/vs/conntrack": "0",
    });
  }
  return {
    host,
    addresses: [
      { interface: "lo", address: "127.0.0.1", prefix: 8 },
      { interface: nic, address: options.address, prefix: options.prefix ?? 24 },
    ],
    interfaces: ["lo", nic],
    tools: ["ip", "flock", "grep", "sysctl", "sha256sum", ...(options.role === "director" ? ["ipvsadm", "modprobe", "awk"] : [])],
    ipvs:
      options.role === "director"
        ? { status: "not-loaded", fingerprint: null, listing: null, services: [], destinations: [], timeouts: null }
        : { status: "not-observed", fingerprint: null, listing: null, services: [], destinations: [], timeouts: null },
    sysctls,
    files: {},
    ownership: null,
    routes: [],
    neighbours: [],
    arpReplies: {},
    keepalived: options.role === "director" ? { installed: true, running: false, enabled: false } : null,
  };
}

function fingerprint(state: ObservedHostState): string {
  const table = {
    services: state.ipvs.services.map(serviceKey).sort(),
    destinations: state.ipvs.destinations.map((d) => `${destinationKey(d)} ${d.forwarding} ${d.weight}`).sort(),
  };
  return createHash("sha256").update(JSON.stringify(table)).digest("hex");
}

/** Applies steps in order to a copy of `state`; throws where a real host would fail. */
export function applySteps(state: ObservedHostState, steps: Step[], expectedFingerprint: string | null = null): ObservedHostState {
  const s: ObservedHostState = structuredClone(state);
  if (expectedFingerprint !== null && s.ipvs.status === "loaded" && fingerprint(s) !== expectedFingerprint) {
    throw new SimulatedKernelError("the IPVS table changed since it was observed");
  }
  const ensureIpvs = () => {
    if (s.ipvs.status === "not-loaded") {
      s.ipvs.status = "loaded";
      s.ipvs.timeouts ??= { tcp: 900, tcpFin: 120, udp: 300 };
    }
    if (s.ipvs.status !== "loaded") throw new SimulatedKernelError("ipvs is not available on this host");
  };
  // Keyed like the kernel's hash tables, so 10,000-entry plans apply in linear time.
  const services = new Map(s.ipvs.services.map((x) => [serviceKey(x), x]));
  const destinations = new Map(s.ipvs.destinations.map((x) => [destinationKey(x), x]));
  for (const step of steps) {
    switch (step.op) {
      case "set-sysctl":
      case "restore-sysctl":
        // IPVS parameters appear when the step loads ip_vs (it runs modprobe first).
        if (step.sysctl.key.startsWith("net/ipv4/vs/")) ensureIpvs();
        else if (!(step.sysctl.key in s.sysctls) || s.sysctls[step.sysctl.key] === null) throw new SimulatedKernelError(`no such sysctl ${step.sysctl.key}`);
        s.sysctls[step.sysctl.key] = step.sysctl.value;
        break;
      case "add-address": {
        if (!s.interfaces.includes(step.address.interface)) throw new SimulatedKernelError(`Cannot find device "${step.address.interface}"`);
        const key = addressKey(step.address);
        if (!s.addresses.some((a) => addressKey(a) === key)) s.addresses.push({ ...step.address });
        break;
      }
      case "remove-address": {
        const key = addressKey(step.address);
        s.addresses = s.addresses.filter((a) => addressKey(a) !== key);
        break;
      }
      case "add-service": {
        ensureIpvs();
        const key = serviceKey(step.service);
        if (services.has(key)) throw new SimulatedKernelError("Service already exists");
        services.set(key, structuredClone(step.service));
        break;
      }
      case "edit-service": {
        ensureIpvs();
        const key = serviceKey(step.service);
        if (!services.has(key)) throw new SimulatedKernelError("No such service");
        services.set(key, structuredClone(step.service));
        break;
      }
      case "remove-service": {
        ensureIpvs();
        const key = serviceKey(step.service);
        if (!services.delete(key)) throw new SimulatedKernelError("No such service");
        for (const [dk, d] of destinations) if (d.service === key) destinations.delete(dk);
        break;
      }
      case "add-destination": {
        ensureIpvs();
        const d = step.destination;
        const key = destinationKey(d);
        if (!services.has(d.service)) throw new SimulatedKernelError("Service not defined");
        if (destinations.has(key)) throw new SimulatedKernelError("Destination already exists");
        destinations.set(key, { ...d, activeConnections: 0, inactiveConnections: 0 });
        break;
      }
      case "edit-destination":
      case "drain-destination": {
        ensureIpvs();
        const d = step.destination;
        const key = destinationKey(d);
        const current = destinations.get(key);
        if (!current) throw new SimulatedKernelError("No such destination");
        destinations.set(key, { ...current, ...d, weight: step.op === "drain-destination" ? 0 : d.weight });
        break;
      }
      case "wait-drained":
        // Connections finish while we wait.
        for (const w of step.destinations) {
          const d = destinations.get(destinationKey(w));
          if (d) d.activeConnections = 0;
        }
        break;
      case "remove-destination": {
        ensureIpvs();
        if (!destinations.delete(destinationKey(step.destination))) throw new SimulatedKernelError("No such destination");
        break;
      }
      case "write-file":
        s.files[step.file.path] =
          "linkTarget" in step.file ? { isLink: true, target: step.file.linkTarget } : { isLink: false, sha256: textSha256(step.file.content), content: step.file.content };
        break;
      case "remove-file":
        s.files[step.path] = null;
        break;
      case "record-ownership":
        s.ownership = step.record ? structuredClone(step.record) : null;
        if (step.record) {
          const content = JSON.stringify(step.record, null, 2) + "\n";
          s.files[hostPaths.ownership] = { isLink: false, sha256: textSha256(content), content };
        } else s.files[hostPaths.ownership] = null;
        break;
      case "write-keepalived-config":
        s.files[step.file.path] =
          "linkTarget" in step.file ? { isLink: true, target: step.file.linkTarget } : { isLink: false, sha256: textSha256(step.file.content), content: step.file.content };
        break;
      case "reload-keepalived":
        if (!s.keepalived?.installed) throw new SimulatedKernelError("keepalived: command not found");
        s.keepalived = { installed: true, running: true, enabled: true };
        break;
      case "set-ipvs-timeouts":
        ensureIpvs();
        s.ipvs.timeouts = { ...step.timeouts };
        break;
      case "stop-keepalived":
        if (s.keepalived) s.keepalived = { ...s.keepalived, running: false, enabled: false };
        break;
      case "wait-keepalived-ready":
      case "wait-keepalived-released":
        break;
      case "remove-stray-destination":
        destinations.delete(destinationKey(step.destination));
        break;
      default: {
        const never: never = step;
        throw new Error(`unknown step ${JSON.stringify(never)}`);
      }
    }
  }
  s.ipvs.services = [...services.values()];
  s.ipvs.destinations = [...destinations.values()];
  if (s.ipvs.status === "loaded") s.ipvs.fingerprint = fingerprint(s);
  return s;
}

/** Marks the simulated table's fingerprint as observed (what the observe script reports). */
export function observe(state: ObservedHostState): ObservedHostState {
  const s = structuredClone(state);
  if (s.ipvs.status === "loaded") s.ipvs.fingerprint = fingerprint(s);
  return s;
}
