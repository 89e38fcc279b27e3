/**
 * Client traffic through the VIP, for the lab suites and benchmarks that break things while it
 * runs: a bounded request loop on the client and the figures read from its answers.
 */
import { labExecOk } from "./index";

export interface Answer {
  /** Seconds since the epoch, on the client (the runner's clock too: one machine). */
  t: number;
  /** The name of the real server that answered, or "FAILED". */
  body: string;
  /** curl's exit code: 0 answered, 28 no answer within the limit, 7 refused, 56 reset. */
  curlExit: number;
  /** Seconds the request took, as curl measured it. */
  seconds: number;
  /** The client's TCP port (0 if no connection was made). */
  localPort: number;
}

export interface RequestOptions {
  /** Seconds each request may take before it counts as failed (default 0.5). */
  limit?: number;
}

/**
 * Requests `http://<vip>/` from the client for `seconds`, as fast as a 20 ms pause allows, each
 * with a limit of 0.5 s unless told (an answer takes milliseconds here; the limit is how finely a
 * gap is measured); resolves with every answer once done. The clock is bash's own
 * (EPOCHREALTIME), not `date`: with the lab's emulated VMs busy, a process start costs 20-40 ms
 * here, and two fewer per request keep the loop above 10 requests a second. curl's exit code and
 * time are kept so that a failure says whether it was slow or refused.
 */
export async function labRequests(vip: string, seconds: number, options: RequestOptions = {}): Promise<Answer[]> {
  const limit = options.limit ?? 0.5;
  const loop = `end=$(( EPOCHSECONDS + ${Math.ceil(seconds)} )); while [ "$EPOCHSECONDS" -lt "$end" ]; do t=$EPOCHREALTIME; r=$(curl -s -m ${limit} -w " %{exitcode} %{time_total} %{local_port}" http://${vip}/ 2>/dev/null); echo "$t" $r; sleep 0.02; done`;
  const out = await labExecOk("client", `LC_ALL=C bash -c '${loop}'`, { timeoutMs: (seconds + 30) * 1000 });
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const words = l.split(" ").filter(Boolean);
      const localPort = Number(words.pop());
      const seconds = Number(words.pop());
      const curlExit = Number(words.pop());
      const body = curlExit === 0 && words.length === 2 ? words[1]! : "FAILED";
      return { t: Number(words[0]), body, curlExit, seconds, localPort };
    });
}

/** Seconds from `since` to the last failed request after it (0 when none failed). */
export function lastFailureAfter(answers: Answer[], since: number): number {
  const failed = answers.filter((a) => a.t >= since && a.body === "FAILED");
  return failed.length ? Math.max(...failed.map((a) => a.t)) - since : 0;
}

/**
 * The service's gap after `since` (a director killed, say): seconds until the first answer after
 * the last failure, or until the first answer at all if none failed. Null if it never came back.
 */
export function gapAfter(answers: Answer[], since: number): number | null {
  const after = answers.filter((a) => a.t >= since);
  const failed = after.filter((a) => a.body === "FAILED");
  const lastFailed = failed.length ? Math.max(...failed.map((a) => a.t)) : since;
  const back = after.find((a) => a.t > lastFailed && a.body !== "FAILED");
  return back ? back.t - since : null;
}
