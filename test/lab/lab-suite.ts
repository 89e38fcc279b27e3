/**
 * Shared wiring for lab test files: `describeLab("name", (lab) => { ... })`.
 * - not root and CI != "true": the suite is skipped with a message saying `sudo npm run test:lab`;
 * - under CI=true it never skips: a missing capability fails loudly in beforeAll;
 * - beforeAll installs prerequisites (cached) and brings the default lab up (idempotent), so each
 *   lab test file works alone and in any order. `lab.hosts` is filled in by then.
 */
import { LabHosts, ensurePrerequisites, labCannotRunReason, labUp } from "../../lab";

export interface LabContext {
  hosts: LabHosts;
}

export const LAB_SETUP_TIMEOUT_MS = 900_000;

export function labSkipReason(): string | null {
  const reason = labCannotRunReason();
  if (reason === null || process.env.CI === "true") return null;
  return reason;
}

export function describeLab(name: string, body: (lab: LabContext) => void, opts: { realServers?: number; directors?: number } = {}): void {
  const skip = labSkipReason();
  if (skip !== null) {
    console.warn(`lab suite "${name}" skipped: ${skip}. Run it with: sudo npm run test:lab`);
    describe.skip(name, () => body({ hosts: undefined as unknown as LabHosts }));
    return;
  }
  describe(name, () => {
    const lab = {} as LabContext;
    beforeAll(async () => {
      const reason = labCannotRunReason();
      if (reason !== null) throw new Error(`lab cannot run: ${reason}`);
      await ensurePrerequisites();
      lab.hosts = await labUp({ realServers: opts.realServers ?? 3, directors: opts.directors ?? 1 });
    }, LAB_SETUP_TIMEOUT_MS);
    body(lab);
  });
}
