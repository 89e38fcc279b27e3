/**
 * The operations a plan is made of. Plain data: the plan layer decides which and in what
 * order, the render layer turns each into the command that does it.
 */
import type { DestinationState, HostStateCheck, IpvsTimeouts, InterfaceAddress, OwnershipRecord, RenderedFile, SysctlSetting, VirtualServiceState } from "./host-state";

export type Step =
  | { op: "set-sysctl"; sysctl: SysctlSetting; from: string | null }
  /** Put back the value a sysctl had before the tool set it. */
  | { op: "restore-sysctl"; sysctl: SysctlSetting }
  | { op: "add-address"; address: InterfaceAddress }
  | { op: "remove-address"; address: InterfaceAddress }
  | { op: "add-service"; service: VirtualServiceState }
  | { op: "edit-service"; service: VirtualServiceState }
  | { op: "remove-service"; service: VirtualServiceState }
  | { op: "add-destination"; destination: DestinationState }
  | { op: "edit-destination"; destination: DestinationState }
  /** Weight 0: no new connections, established ones continue. */
  | { op: "drain-destination"; destination: DestinationState }
  /** Wait until the drained destinations have no active connections, or the timeout passes. */
  | { op: "wait-drained"; destinations: DestinationState[]; timeoutSeconds: number; pollSeconds: number }
  | { op: "remove-destination"; destination: DestinationState }
  | { op: "write-file"; file: RenderedFile }
  | { op: "remove-file"; path: string }
  | { op: "record-ownership"; record: OwnershipRecord | null }
  /** Written beside the old one, checked by `keepalived -t`, then renamed over it: a bad file is never used. */
  | { op: "write-keepalived-config"; file: RenderedFile }
  /** Enable keepalived at boot, and reload it (start it if it is not running); restart only to rebuild a table changed by hand. */
  | { op: "reload-keepalived"; restart: boolean; daemonReload?: boolean; enable?: boolean }
  /** Wait until each service has a real server in, after its first check passed (or the sorry server). */
  | { op: "wait-keepalived-ready"; services: VirtualServiceState[]; timeoutSeconds: number }
  /** Wait until keepalived deleted services it no longer manages, so the tool can add them as its own. */
  | { op: "wait-keepalived-released"; services: VirtualServiceState[]; timeoutSeconds: number }
  /** A destination in one of keepalived's services that its configuration lacks; it may be gone already. */
  | { op: "remove-stray-destination"; destination: DestinationState }
  /**
   * Stop keepalived and disable it at boot. It lets go of its VIPs itself; `leftoverVips` are
   * removed after it if one is still there (a backup that took over as the other director stopped).
   */
  | { op: "stop-keepalived"; leftoverVips: InterfaceAddress[] }
  | { op: "set-ipvs-timeouts"; timeouts: IpvsTimeouts };

export type StepOp = Step["op"];

/** What a kind of step does to a host, decided once per kind so that a new kind must say. */
export interface StepKind {
  /** Changes the IPVS table by hand (ipvsadm); the table check before an apply guards these. */
  ipvs: boolean;
  /** Takes something away from live traffic or from a host. */
  takesAway: boolean;
}

export const stepKinds: Readonly<Record<StepOp, StepKind>> = {
  "set-sysctl": { ipvs: false, takesAway: false },
  "restore-sysctl": { ipvs: false, takesAway: true },
  "add-address": { ipvs: false, takesAway: false },
  "remove-address": { ipvs: false, takesAway: true },
  "add-service": { ipvs: true, takesAway: false },
  "edit-service": { ipvs: true, takesAway: false },
  "remove-service": { ipvs: true, takesAway: true },
  "add-destination": { ipvs: true, takesAway: false },
  "edit-destination": { ipvs: true, takesAway: false },
  "drain-destination": { ipvs: true, takesAway: true },
  "wait-drained": { ipvs: false, takesAway: false },
  "remove-destination": { ipvs: true, takesAway: true },
  "write-file": { ipvs: false, takesAway: false },
  "remove-file": { ipvs: false, takesAway: true },
  "record-ownership": { ipvs: false, takesAway: false },
  "write-keepalived-config": { ipvs: false, takesAway: false },
  "reload-keepalived": { ipvs: false, takesAway: false },
  "wait-keepalived-ready": { ipvs: false, takesAway: false },
  "wait-keepalived-released": { ipvs: false, takesAway: false },
  "remove-stray-destination": { ipvs: false, takesAway: true },
  "stop-keepalived": { ipvs: false, takesAway: true },
  "set-ipvs-timeouts": { ipvs: false, takesAway: false },
};

/** A step the apply script batches into one `ipvsadm -R`, and the table check guards. */
export function isIpvsStep(step: Step): boolean {
  return stepKinds[step.op].ipvs;
}

/** A step that takes something away from live traffic or from a host. */
export function takesAway(step: Step): boolean {
  return stepKinds[step.op].takesAway;
}

/** The waves a cluster change runs in; a wave finishes on every host before the next starts. */
export type Wave = "prepare-real-servers" | "directors" | "release-real-servers";
export const waveOrder: readonly Wave[] = ["prepare-real-servers", "directors", "release-real-servers"];

export interface HostWavePlan {
  host: string;
  wave: Wave;
  steps: Step[];
  /** For directors: the IPVS table fingerprint the plan was made from; the apply refuses if it changed. */
  expectedIpvsFingerprint: string | null;
  /** The same table as the check reads it (the kernel's listing without counters), when known. */
  expectedIpvsListing: string | null;
  /** On a host's first wave of a plan: the state it was planned from; the script refuses, changing nothing, if it differs. */
  expectedState?: HostStateCheck;
}
