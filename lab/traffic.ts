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
}

/**
 * Requests `http://<vip>/` from the client for `seconds`, as fast as a 20 ms pause allows, each
 * with a 0.5 s limit (an answer takes milliseconds here; the limit is how finely a gap is
 * measured); resolves with every answer once done. The clock is bash's own (EPOCHREALTIME), not
 * `date`: with the lab's emulated VMs busy, a process start costs 20-40 ms here, and two fewer per
 * request keep the loop above 10 requests a second.
 */
export async function labRequests(vip: string, seconds: number): Promise<Answer[]> {
  const loop = `end=$(( EPOCHSECONDS + ${Math.ceil(seconds)} )); while [ "$EPOCHSECONDS" -lt "$end" ]; do t=$EPOCHREALTIME; r=$(curl -s -m 0.5 http://${vip}/ 2>/dev/null) || r=FAILED; echo "$t $r"; sleep 0.02; done`;
  const out = await labExecOk("client", `LC_ALL=C bash -c '${loop}'`, { timeoutMs: (seconds + 30) * 1000 });
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [t, body] = l.split(" ");
      return { t: Number(t), body: body || "FAILED" };
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
