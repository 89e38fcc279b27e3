/** Runs `fn` over items with at most `limit` in flight; one failure never hides the others. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export async function mapBounded<I, T>(items: readonly I[], limit: number, fn: (item: I, index: number) => Promise<T>): Promise<Settled<T>[]> {
  const results: Settled<T>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { ok: true, value: await fn(items[i] as I, i) };
      } catch (error) {
        results[i] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}
