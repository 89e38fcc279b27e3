/**
 * The operations a plan is made of. Plain data: the plan layer decides which and in what
 * order, the render layer turns each into the command that does it.
 */
import type {
  DestinationState,
  InterfaceAddress,
  OwnershipRecord,
  RenderedFile,
  SysctlSetting,
  VirtualServiceState,
} from "./host-state";

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
  | { op: "record-ownership"; record: OwnershipRecord | null };

export type StepOp = Step["op"];

/** The waves a cluster change runs in; a wave finishes on every host before the next starts. */
export type Wave = "prepare-real-servers" | "directors" | "release-real-servers";
export const waveOrder: readonly Wave[] = ["prepare-real-servers", "directors", "release-real-servers"];

export interface HostWavePlan {
  host: string;
  wave: Wave;
  steps: Step[];
  /** For directors: the IPVS table fingerprint the plan was made from; the apply refuses if it changed. */
  expectedIpvsFingerprint: string | null;
  /** The same table as `ipvsadm -Sn` printed it, when known. */
  expectedIpvsListing: string | null;
}
