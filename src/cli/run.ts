/** Opening a cluster run for a command: the spec, the SSH transport, and progress on the terminal. */
import { loadCluster } from "../config/load";
import type { Cluster } from "../config/schema";
import { ClusterRun, type ProgressEvent } from "../ops/engine";
import { SshTransport } from "../transport/ssh";
import { printable, type CliIo } from "./io";
import { specSource, type SourceOptions } from "./source";

export interface RunCommandOptions extends SourceOptions {
  concurrency?: string;
  host?: string[];
}

export function loadSpec(options: SourceOptions): Cluster {
  return loadCluster(specSource(options));
}

export function openRun(cluster: Cluster, options: RunCommandOptions, io: CliIo, onProgress?: (e: ProgressEvent) => void, signal?: AbortSignal): ClusterRun {
  const concurrency = options.concurrency !== undefined ? Number(options.concurrency) : undefined;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new Error(`--concurrency: must be a positive integer, got "${options.concurrency}"`);
  return new ClusterRun(cluster, {
    transport: io.transport ?? new SshTransport(),
    connectOptions: {
      baseDir: process.cwd(),
      onTrust: (host, fp, recordedIn) => io.err(`${host}: warning: trusted on first use: host key ${fp}, recorded in ${recordedIn}`),
      onWarning: (host, message) => io.err(`${host}: warning: ${message}`),
      onDialRetry: (d) => io.err(`${d.host}: connect attempt ${d.attempt} of ${d.attempts} failed: ${d.message}; trying again in ${(d.delayMs / 1000).toFixed(1)} s`),
    },
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(options.host?.length ? { hosts: options.host } : {}),
    ...(onProgress ? { onProgress } : {}),
    ...(signal ? { signal } : {}),
  });
}

/** Progress as plain lines, or one live line per event on a terminal. */
export function progressPrinter(io: CliIo, tty: boolean): { onProgress: (e: ProgressEvent) => void; done: () => void } {
  const frames = ["|", "/", "-", "\\"];
  let n = 0;
  let live = false;
  const clear = () => {
    if (live) process.stderr.write("\r\x1b[K");
    live = false;
  };
  return {
    onProgress: (e) => {
      if (e.kind === "step") {
        if (tty) {
          process.stderr.write(
            `\r\x1b[K${printable(`${frames[n++ % frames.length]} ${e.host}: ${e.index}/${e.total} ${e.description}`).slice(0, (process.stderr.columns ?? 100) - 1)}`,
          );
          live = true;
        } else io.err(`${e.host}: step ${e.index}/${e.total} ${e.description}`);
      } else if (e.kind === "wave-done") {
        clear();
        io.err(`${e.host}: done (${e.wave})`);
      } else if (e.kind === "warning" || e.kind === "failed") {
        clear();
        io.err(`${e.host}: ${e.kind === "failed" ? "FAILED" : "warning"}: ${e.message}`);
      }
    },
    done: clear,
  };
}
