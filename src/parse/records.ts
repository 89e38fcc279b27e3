/**
 * Records keyed by text a host sent (sysctl keys, file paths, RIPs). A plain `{}` answers
 * `constructor`, `toString` and the like from its prototype, and `record["__proto__"] = v`
 * replaces the prototype instead of adding a key: a host naming a sysctl or a file that way
 * would read as holding something it does not, or lose an entry. So such records are built
 * without a prototype, and read by own keys only (a record may also come from JSON or a test).
 */

/** An empty record with no prototype: every key, `__proto__` included, is an ordinary key. */
export function hostRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** The value `record` itself holds under `key`; never one inherited from its prototype. */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
