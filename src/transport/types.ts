/**
 * The transport: how the tool reaches a host. A small interface in the domain's nouns, so the
 * host operations above it never see ssh2. One connection per host is opened once and reused
 * for observing and applying in a run.
 */
import type { Connection } from "../config/connection";

export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Fail after this long, closing the channel. */
  timeoutMs?: number;
  /**
   * Also kill the script on the host at the timeout (a watchdog in the script), for scripts
   * that change the host or hold its lock. Default true. A read-only script can do without:
   * closing the channel is enough, and the watchdog costs a process start per run.
   */
  killOnHost?: boolean;
  /**
   * What the script reads on stdin, written when this resolves (a script that waits for a
   * go-ahead). Only for a script small enough to travel in the exec request: a larger one
   * reads itself from stdin.
   */
  input?: Promise<string>;
  /** Called with each complete stdout line as it arrives (progress markers). */
  onLine?: (line: string) => void;
  /** What the script is, for errors about it: "observe", "apply". */
  what?: string;
}

/** An open session to one host. */
export interface HostSession {
  readonly host: string;
  /** The host key's SHA256 fingerprint as seen on this connection. */
  readonly hostKeyFingerprint: string;
  /**
   * Runs `script` in a POSIX shell on the host (through `sudo -n` when the connection says so)
   * and resolves with its exit code and output; rejects only on transport failure or timeout.
   */
  runScript(script: string, options?: RunOptions): Promise<ScriptResult>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Where relative paths (privateKeyPath, knownHostsFile) are resolved from. */
  baseDir?: string;
  /**
   * Reported when trust on first use accepts a host's key for the first time and records it, so
   * the user sees what was trusted and where the record is. A host it already knows is silent.
   */
  onTrust?: (host: string, fingerprint: string, recordedIn: string) => void;
  /** Something the user should fix that does not stop the connection (a private key file others can read). */
  onWarning?: (host: string, message: string) => void;
  /** Reported after each failed dial that will be tried again: the operator sees a host refuse or time out at once, not after every attempt. */
  onDialRetry?: (event: DialRetry) => void;
}

export interface DialRetry {
  /** The host, or `bastion <name>`. */
  host: string;
  /** The attempt that failed (1-based) and how many there will be at most. */
  attempt: number;
  attempts: number;
  message: string;
  /** The wait before the next attempt. */
  delayMs: number;
}

export interface Transport {
  connect(host: string, connection: Connection, options?: ConnectOptions): Promise<HostSession>;
}

/** Every transport failure names the host and the step that failed. */
export class TransportError extends Error {
  constructor(
    readonly host: string,
    readonly step: "resolve-credentials" | "connect" | "negotiate" | "host-key" | "authenticate" | "proxy" | "run" | "timeout" | "sudo",
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${host}: ${step}: ${message}`);
    this.name = "TransportError";
  }
}
