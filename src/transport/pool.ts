/**
 * Running work on many hosts with bounded concurrency, and one reused session per host, so a
 * run over 200 hosts neither opens 200 handshakes at once nor reconnects between observe and apply.
 */
import type { Connection } from "../config/connection";
import type { ConnectOptions, HostSession, Transport } from "./types";

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** A counting semaphore: at most `limit` holders at a time, FIFO. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency must be a positive integer, got ${limit}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter so `active` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * Calls `fn` for every item with at most `concurrency` calls in flight. Results are in input
 * order; a failure is recorded in its slot and never stops the others.
 */
export async function runOnHosts<I, T>(items: readonly I[], concurrency: number, fn: (item: I, index: number) => Promise<T>): Promise<Settled<T>[]> {
  const limiter = new Limiter(concurrency);
  return Promise.all(
    items.map((item, index) =>
      limiter.run(async (): Promise<Settled<T>> => {
        try {
          return { ok: true, value: await fn(item, index) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    ),
  );
}

export interface SessionPoolOptions {
  /** Most handshakes in progress at once. Default 16. */
  connectConcurrency?: number;
  /** Passed to every `transport.connect`. */
  connectOptions?: ConnectOptions;
}

/**
 * One session per host name, opened on first use and reused until `closeAll()`. A failed
 * connect is not cached, so a later `session()` call tries again.
 */
export class SessionPool {
  private readonly sessions = new Map<string, Promise<HostSession>>();
  private readonly limiter: Limiter;
  private readonly connectOptions: ConnectOptions;

  constructor(
    private readonly transport: Transport,
    options: SessionPoolOptions = {},
  ) {
    this.limiter = new Limiter(options.connectConcurrency ?? 16);
    this.connectOptions = options.connectOptions ?? {};
  }

  /** The session for `host`, connecting with `connection` if there is none yet. */
  session(host: string, connection: Connection): Promise<HostSession> {
    const existing = this.sessions.get(host);
    if (existing) return existing;
    const opening = this.limiter.run(() => this.transport.connect(host, connection, this.connectOptions));
    this.sessions.set(host, opening);
    opening.catch(() => {
      if (this.sessions.get(host) === opening) this.sessions.delete(host);
    });
    return opening;
  }

  /** Hosts with a session open or opening. */
  get hosts(): string[] {
    return [...this.sessions.keys()];
  }

  /**
   * Closes one host's session now, so that it does not wait for the slowest host to be closed;
   * a later `session()` opens a new one. A close failure is ignored: nothing more runs on it.
   */
  async release(host: string): Promise<void> {
    const opening = this.sessions.get(host);
    if (!opening) return;
    this.sessions.delete(host);
    try {
      await (await opening).close();
    } catch {
      /* never opened, or already gone */
    }
  }

  /** Closes every session. */
  async closeAll(): Promise<void> {
    await Promise.all(this.hosts.map((host) => this.release(host)));
  }
}
