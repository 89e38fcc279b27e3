/** One line of plain words per step, for plans, progress and logs. */
import type { DestinationState, VirtualServiceState } from "../model/host-state";
import { destinationKey, serviceKey } from "../model/keys";
import type { Step } from "../model/steps";

/** A virtual service as one line: key, scheduler, flags, persistence. */
export function describeService(s: VirtualServiceState): string {
  const persistence = s.persistence ? `, persistent ${s.persistence.timeout}s mask ${s.persistence.netmask}` : "";
  const flags = s.flags.length ? ` (${s.flags.join(",")})` : "";
  return `${serviceKey(s)} scheduler ${s.scheduler}${flags}${persistence}`;
}

/** A destination as one line: key, forwarding, weight, thresholds. */
export function describeDestination(d: DestinationState): string {
  const thresholds = d.upperThreshold || d.lowerThreshold ? ` thresholds ${d.upperThreshold}/${d.lowerThreshold}` : "";
  return `${destinationKey(d)} ${d.forwarding} weight ${d.weight}${thresholds}`;
}

export function describeStep(step: Step): string {
  switch (step.op) {
    case "set-sysctl":
      return `set ${step.sysctl.key} = ${step.sysctl.value}${step.from !== null ? ` (was ${step.from})` : ""}`;
    case "restore-sysctl":
      return `restore ${step.sysctl.key} = ${step.sysctl.value}`;
    case "add-address":
      return `add ${step.address.address}/${step.address.prefix} to ${step.address.interface}`;
    case "remove-address":
      return `remove ${step.address.address}/${step.address.prefix} from ${step.address.interface}`;
    case "add-service":
      return `add virtual service ${describeService(step.service)}`;
    case "edit-service":
      return `change virtual service ${describeService(step.service)}`;
    case "remove-service":
      return `remove virtual service ${serviceKey(step.service)}`;
    case "add-destination":
      return `add real server ${describeDestination(step.destination)}`;
    case "edit-destination":
      return `change real server ${describeDestination(step.destination)}`;
    case "drain-destination":
      return `drain real server ${destinationKey(step.destination)} (weight 0)`;
    case "wait-drained":
      return `wait up to ${step.timeoutSeconds}s for ${step.destinations.map(destinationKey).join(", ")} to have no active connections`;
    case "remove-destination":
      return `remove real server ${destinationKey(step.destination)}`;
    case "write-file":
      return "linkTarget" in step.file ? `link ${step.file.path} -> ${step.file.linkTarget}` : `write ${step.file.path}`;
    case "remove-file":
      return `remove ${step.path}`;
    case "record-ownership":
      return step.record ? "record what lvs-dr manages on this host" : "forget this host (nothing managed here any more)";
    case "write-keepalived-config":
      return `write ${"linkTarget" in step.file ? step.file.path : step.file.path} (checked by keepalived -t first)`;
    case "reload-keepalived":
      return step.restart ? "restart keepalived (its IPVS table was changed by hand) and enable it at boot" : "reload keepalived (start it if stopped) and enable it at boot";
    case "wait-keepalived-ready":
      return `wait up to ${step.timeoutSeconds}s for a healthy real server in ${step.services.map(serviceKey).join(", ")}`;
    case "wait-keepalived-released":
      return `wait for keepalived to let go of ${step.services.map(serviceKey).join(", ")}`;
    case "remove-stray-destination":
      return `remove real server ${destinationKey(step.destination)} (not in keepalived's configuration)`;
    case "stop-keepalived":
      return step.leftoverVips.length
        ? `stop keepalived and disable it at boot; remove ${step.leftoverVips.map((a) => a.address).join(", ")} if it is left behind`
        : "stop keepalived and disable it at boot";
    case "set-ipvs-timeouts":
      return `set IPVS timeouts tcp ${step.timeouts.tcp}s, tcpfin ${step.timeouts.tcpFin}s, udp ${step.timeouts.udp}s`;
    default: {
      const never: never = step;
      return `unknown step ${JSON.stringify(never)}`;
    }
  }
}
